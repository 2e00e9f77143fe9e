#include "needle/core/device.h"

#include "needle/core/error.h"

namespace needle {

std::string Device::name() const {
  switch (type) {
    case DeviceType::Ref:
      return "ref";
    case DeviceType::Cpu:
      return "cpu";
    case DeviceType::Cuda:
      return index == 0 ? "cuda" : "cuda:" + std::to_string(index);
  }
  return "invalid";
}

Device default_device() { return cpu_device(); }

Device device_from_name(const std::string& name) {
  if (name == "cpu") return cpu_device();
  if (name == "ref" || name == "cpu_numpy") return ref_device();
  if (name == "cuda") return cuda_device(0);
  if (name.rfind("cuda:", 0) == 0) {
    const std::string digits = name.substr(5);
    if (!digits.empty() && digits.size() < 4 && digits.find_first_not_of("0123456789") == std::string::npos) {
      return cuda_device(std::stoi(digits));
    }
  }
  throw ValueError(str("unknown device '", name, "' (expected cpu, ref, cuda or cuda:N)"));
}

std::ostream& operator<<(std::ostream& out, const Device& device) { return out << device.name(); }

}  // namespace needle
