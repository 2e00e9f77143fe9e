// all_reduce_sum as an op, and SyncBatchNorm composed from it and ordinary ops (so its gradient is
// autograd's, with the cross-rank terms coming from all_reduce_sum's own gradient).
#include "needle/dist/sync_batch_norm.h"

#include "needle/autograd/op.h"
#include "needle/core/array_ops.h"
#include "needle/core/error.h"
#include "needle/nn/init.h"
#include "needle/ops/ops.h"

namespace needle::dist {

namespace {

class AllReduceSumOp final : public SingleOutputOp {
 public:
  explicit AllReduceSumOp(ProcessGroup& group) : group_(group) {}
  [[nodiscard]] std::string name() const override { return "all_reduce"; }
  [[nodiscard]] NDArray compute(const std::vector<NDArray>& inputs) const override {
    NDArray sum = inputs[0].copy();
    group_.all_reduce(sum, ReduceOp::Sum);
    return sum;
  }
  [[nodiscard]] std::vector<Tensor> gradient(const Tensor& out_grad, const Tensor& /*node*/,
                                             const NeedsGrad& /*needs_grad*/) const override {
    return {all_reduce_sum(out_grad, group_)};
  }
  [[nodiscard]] SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }

 private:
  ProcessGroup& group_;
};

}  // namespace

Tensor all_reduce_sum(const Tensor& x, ProcessGroup& group) {
  return Tensor::from_op(std::make_shared<AllReduceSumOp>(group), {x});
}

SyncBatchNorm::SyncBatchNorm(std::int64_t num_features, double eps, double momentum, Device device, DType dtype,
                             ProcessGroup* group)
    : num_features_(num_features), eps_(eps), momentum_(momentum), group_(group) {
  NEEDLE_CHECK(num_features > 0, ValueError, "SyncBatchNorm: num_features must be positive, got ", num_features);
  NEEDLE_CHECK(eps >= 0, ValueError, "SyncBatchNorm: eps must be >= 0, got ", eps);
  NEEDLE_CHECK(momentum >= 0 && momentum <= 1, ValueError, "SyncBatchNorm: momentum must be in [0, 1], got ", momentum);
  register_parameter("weight", nn::init::ones({num_features}, dtype, device));
  register_parameter("bias", nn::init::zeros({num_features}, dtype, device));
  register_buffer("running_mean", nn::init::zeros({num_features}, dtype, device));
  register_buffer("running_var", nn::init::ones({num_features}, dtype, device));
}

Tensor SyncBatchNorm::forward(const Tensor& x) {
  NEEDLE_CHECK(x.ndim() >= 2 && x.shape()[1] == num_features_, ValueError, "SyncBatchNorm: expected input (N, ",
               num_features_, ") or (N, ", num_features_, ", ...), got shape ", shape_str(x.shape()));
  const Tensor weight = parameter("weight");
  check_device(x, weight.device());
  // Per-channel statistics broadcast back to x's layout: (1, C, 1, ...).
  Shape stat_shape(static_cast<std::size_t>(x.ndim()), 1);
  stat_shape[1] = num_features_;
  ops::Axes reduce_axes;
  for (std::int64_t axis = 0; axis < x.ndim(); ++axis) {
    if (axis != 1) reduce_axes.push_back(axis);
  }
  const auto per_channel = [&](const Tensor& t) { return ops::broadcast_to(ops::reshape(t, stat_shape), x.shape()); };
  Tensor mean;
  Tensor var;
  if (training()) {
    ProcessGroup& group = group_ != nullptr ? *group_ : world();
    // The global count: every rank's share of the batch may differ in size.
    NDArray count = NDArray::full({1}, Scalar(static_cast<double>(x.size()) / static_cast<double>(num_features_)),
                                  DType::Float64, Device{});
    group.all_reduce(count, ReduceOp::Sum);
    const double total = count.to_vector<double>()[0];
    NEEDLE_CHECK(total > 0, ValueError, "SyncBatchNorm: the global batch is empty");
    mean = all_reduce_sum(ops::summation(x, reduce_axes), group) / Scalar(total);
    const Tensor centered = x - per_channel(mean);
    var = all_reduce_sum(ops::summation(centered * centered, reduce_axes), group) / Scalar(total);
    Tensor running_mean = buffer("running_mean");
    Tensor running_var = buffer("running_var");
    running_mean.set_value((running_mean.value() * Scalar(1.0 - momentum_) + mean.value() * Scalar(momentum_))
                               .astype(running_mean.dtype()));
    running_var.set_value(
        (running_var.value() * Scalar(1.0 - momentum_) + var.value() * Scalar(momentum_)).astype(running_var.dtype()));
  } else {
    mean = buffer("running_mean").detach();
    var = buffer("running_var").detach();
  }
  const Tensor inv_std = ops::power_scalar(var + Scalar(eps_), Scalar(-0.5));
  return (x - per_channel(mean)) * per_channel(inv_std) * per_channel(weight) + per_channel(parameter("bias"));
}

}  // namespace needle::dist
