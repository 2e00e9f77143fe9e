// Moving a tensor between devices, differentiably.
#include "ops/op_helpers.h"

namespace needle::ops {

namespace {

class ToDeviceOp final : public SingleOutputOp {
 public:
  explicit ToDeviceOp(Device device) : device_(device) {}
  std::string name() const override { return "to_device"; }
  // Reads only the input's device.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0].to(device_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    return {to_device(g, node.inputs()[0].device())};
  }

 private:
  Device device_;
};

}  // namespace

Tensor to_device(const Tensor& a, Device device) {
  return a.device() == device ? a : detail::make<ToDeviceOp>({a}, device);
}

}  // namespace needle::ops
