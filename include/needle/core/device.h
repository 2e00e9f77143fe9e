// Devices: where an array's storage lives and which backend runs its kernels.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace needle {

enum class DeviceType : std::uint8_t {
  Ref,   // plain scalar C++ loops: the readable baseline every other backend is tested against
  Cpu,   // the fast default CPU backend
  Cuda,  // NVIDIA GPUs (built only with NEEDLE_ENABLE_CUDA)
};

struct Device {
  DeviceType type = DeviceType::Cpu;
  int index = 0;

  // "cpu", "ref", "cuda" (with ":index" for CUDA devices other than 0).
  [[nodiscard]] std::string name() const;
  // True when the device's backend is compiled in and usable on this machine.
  [[nodiscard]] bool enabled() const;
  // True when storage on this device is ordinary host memory (NumPy can view it without a copy).
  [[nodiscard]] bool is_host() const { return type == DeviceType::Ref || type == DeviceType::Cpu; }

  friend bool operator==(const Device&, const Device&) = default;
};

inline Device ref_device() { return {DeviceType::Ref, 0}; }
inline Device cpu_device() { return {DeviceType::Cpu, 0}; }
inline Device cuda_device(int index = 0) { return {DeviceType::Cuda, index}; }

// The device new arrays go to when none is given (cpu).
Device default_device();

// Parses "cpu", "ref", "cuda", "cuda:1"; throws ValueError otherwise.
Device device_from_name(const std::string& name);

std::ostream& operator<<(std::ostream& out, const Device& device);

}  // namespace needle
