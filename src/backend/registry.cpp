// Which backend runs the kernels of each device. A new device type adds its case here (behind its
// build option) and nowhere else.
#include "backend/cpu/cpu_backend.h"
#include "backend/ref/ref_backend.h"
#include "needle/backend/backend.h"
#include "needle/core/device.h"
#include "needle/core/error.h"

namespace needle {

namespace {

// Function-local statics: created on first use (thread-safe), never before main() needs them.
Backend& ref_backend() {
  static RefBackend backend;
  return backend;
}

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace

Backend& backend_for(Device device) {
  switch (device.type) {
    case DeviceType::Ref:
      return ref_backend();
    case DeviceType::Cpu:
      return cpu_backend();
    case DeviceType::Cuda:
      throw RuntimeError("cuda: Needle was built without CUDA support (NEEDLE_ENABLE_CUDA=OFF)");
  }
  throw RuntimeError("backend_for: invalid device type");
}

bool Device::enabled() const {
  switch (type) {
    case DeviceType::Ref:
    case DeviceType::Cpu:
      return true;
    case DeviceType::Cuda:
      return false;
  }
  return false;
}

}  // namespace needle
