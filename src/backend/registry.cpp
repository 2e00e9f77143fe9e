// Which backend runs the kernels of each device. A new device type adds its case here (behind its
// build option) and nowhere else.
#include <array>
#include <atomic>
#include <tuple>

#include "backend/cpu/cpu_backend.h"
#include "backend/ref/ref_backend.h"
#ifdef NEEDLE_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "needle/backend/backend.h"
#include "needle/backend/cuda.h"
#include "needle/core/device.h"
#include "needle/core/error.h"

namespace needle {

namespace {

// Created on first use (thread-safe) and never destroyed: arrays that outlive main() (globals, objects
// the Python interpreter frees late) still find their backend to release their storage.
Backend& ref_backend() {
  static Backend* const backend = new RefBackend();
  return *backend;
}

Backend& cpu_backend() {
  static Backend* const backend = new CpuBackend();
  return *backend;
}

// Overrides installed by set_backend_override, per device type (debugging tools and tests).
std::array<std::atomic<Backend*>, 3> backend_overrides{};

std::string_view backend_name(const Backend& backend) { return backend.name(); }

}  // namespace

// An optional kernel reached on a backend without it: the array layer asks implements() first, so only a
// caller that skipped that check gets here.
#define NEEDLE_OPTIONAL(kernel, params, args, Layout, check, outputs, trace_name, flops)        \
  void Backend::kernel##_kernel(const kernels::Layout& /*layout*/, NEEDLE_KERNEL_ARGS params) { \
    std::ignore = std::forward_as_tuple args;                                                   \
    throw RuntimeError(str(#kernel, ": the ", backend_name(*this),                              \
                           " backend has no such kernel (it is optional: "                      \
                           "check Backend::implements first)"));                                \
  }
#include "needle/backend/kernels.def"
#undef NEEDLE_OPTIONAL

Backend& backend_for(Device device) {
  // Acquire pairs with the release in set_backend_override, so the override is seen fully constructed.
  Backend* const interposed =
      backend_overrides.at(static_cast<std::size_t>(device.type)).load(std::memory_order_acquire);
  if (interposed != nullptr) [[unlikely]] {
    return *interposed;
  }
  return builtin_backend_for(device);
}

Backend* set_backend_override(DeviceType type, Backend* backend) {
  return backend_overrides.at(static_cast<std::size_t>(type)).exchange(backend, std::memory_order_acq_rel);
}

Backend& builtin_backend_for(Device device) {
  switch (device.type) {
    case DeviceType::Ref:
      return ref_backend();
    case DeviceType::Cpu:
      return cpu_backend();
    case DeviceType::Cuda:
#ifdef NEEDLE_HAS_CUDA
      return cuda_backend(device.index);
#else
      throw RuntimeError("cuda: Needle was built without CUDA support (NEEDLE_ENABLE_CUDA=OFF)");
#endif
  }
  throw RuntimeError("backend_for: invalid device type");
}

bool Device::enabled() const {
  switch (type) {
    case DeviceType::Ref:
    case DeviceType::Cpu:
      return true;
    case DeviceType::Cuda:
      return index >= 0 && index < cuda_device_count();
  }
  return false;
}

}  // namespace needle
