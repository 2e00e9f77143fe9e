// Which backend runs the kernels of each device. A new device type adds its case here (behind its
// build option) and nowhere else.
#include "backend/cpu/cpu_backend.h"
#include "backend/ref/ref_backend.h"
#include "needle/backend/backend.h"
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
