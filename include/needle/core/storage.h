// A reference-counted block of device memory. Views of one array share one Storage.
#pragma once

#include <cstddef>
#include <memory>

#include "needle/core/device.h"

namespace needle {

class Storage {
 public:
  // Bytes currently held by live Storage objects on devices of `device`'s type (all indices together).
  static std::size_t live_bytes(Device device);
  // Number of live Storage objects on devices of `device`'s type.
  static std::size_t live_count(Device device);
  // The most live_bytes(device) reached since reset_peak_bytes(device) (or since the process started).
  static std::size_t peak_bytes(Device device);
  // Restarts the peak at the current live bytes.
  static void reset_peak_bytes(Device device);

  // Allocates `nbytes` on `device` through its backend (throws RuntimeError if the device is disabled,
  // MemoryError when the memory cannot be had).
  static std::shared_ptr<Storage> allocate(Device device, std::size_t nbytes);

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Device address of the first byte (a host pointer only when device().is_host()).
  [[nodiscard]] void* data() const { return data_; }
  [[nodiscard]] std::size_t nbytes() const { return nbytes_; }
  [[nodiscard]] Device device() const { return device_; }

 private:
  Storage(Device device, void* data, std::size_t nbytes) : device_(device), data_(data), nbytes_(nbytes) {}

  Device device_;
  void* data_;
  std::size_t nbytes_;
};

}  // namespace needle
