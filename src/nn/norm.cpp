// Normalization layers: BatchNorm1d/2d (with running statistics) and LayerNorm1d, on ops::batch_norm and
// ops::layer_norm.
#include <cmath>
#include <string_view>

#include "needle/core/array_ops.h"
#include "needle/nn/init.h"
#include "needle/nn/layers.h"
#include "needle/ops/ops.h"
#include "nn/layer_util.h"
#include "ops/batch_norm.h"

namespace needle::nn {

namespace {

double checked_eps(std::string_view layer, double eps) {
  NEEDLE_CHECK(eps >= 0.0 && std::isfinite(eps), ValueError, layer, ": eps must be finite and >= 0, got ", eps);
  return eps;
}

}  // namespace

BatchNorm::BatchNorm(std::int64_t num_features, double eps, double momentum, Device device, DType dtype,
                     std::int64_t input_ndim)
    : num_features_(num_features), eps_(eps), momentum_(momentum), input_ndim_(input_ndim) {
  detail::expect_positive(input_ndim == 2 ? "BatchNorm1d" : "BatchNorm2d", "num_features", num_features);
  set_eps(eps);
  set_momentum(momentum);
  register_parameter("weight", init::ones({num_features}, dtype, device));
  register_parameter("bias", init::zeros({num_features}, dtype, device));
  register_buffer("running_mean", init::zeros({num_features}, dtype, device));
  register_buffer("running_var", init::ones({num_features}, dtype, device));
}

void BatchNorm::set_eps(double eps) { eps_ = checked_eps(input_ndim_ == 2 ? "BatchNorm1d" : "BatchNorm2d", eps); }

void BatchNorm::set_momentum(double momentum) {
  NEEDLE_CHECK(momentum >= 0.0 && momentum <= 1.0, ValueError, input_ndim_ == 2 ? "BatchNorm1d" : "BatchNorm2d",
               ": momentum must lie in [0, 1], got ", momentum);
  momentum_ = momentum;
}

Tensor BatchNorm::forward(const Tensor& x) {
  detail::expect_ndim(name(), x, input_ndim_, input_ndim_ == 2 ? "(N, C)" : "(N, C, H, W)");
  detail::expect_dim(name(), x, 1, num_features_, "channels (dimension 1)");
  const Tensor weight = this->weight();
  const Tensor bias = this->bias();
  Tensor running_mean = this->running_mean();
  Tensor running_var = this->running_var();
  check_device(x, weight.device());
  if (!training()) {
    return ops::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/false, momentum_, eps_);
  }
  // The op normalizes with the batch statistics and hands them back; the running statistics are updated
  // here rather than by ops::batch_norm because Needle averages the biased batch variance into running_var
  // (the op follows PyTorch's unbiased one).
  NDArray batch_mean;
  NDArray batch_var;
  Tensor y = ops::detail::batch_norm_train(x, weight, bias, eps_, batch_mean, batch_var);
  running_mean.set_value(
      (running_mean.value() * Scalar(1.0 - momentum_) + batch_mean * Scalar(momentum_)).astype(running_mean.dtype()));
  running_var.set_value(
      (running_var.value() * Scalar(1.0 - momentum_) + batch_var * Scalar(momentum_)).astype(running_var.dtype()));
  return y;
}

LayerNorm1d::LayerNorm1d(std::int64_t dim, double eps, Device device, DType dtype)
    : dim_(dim), eps_(checked_eps("LayerNorm1d", eps)) {
  detail::expect_positive("LayerNorm1d", "dim", dim);
  register_parameter("weight", init::ones({dim}, dtype, device));
  register_parameter("bias", init::zeros({dim}, dtype, device));
}

void LayerNorm1d::set_eps(double eps) { eps_ = checked_eps("LayerNorm1d", eps); }

Tensor LayerNorm1d::forward(const Tensor& x) {
  NEEDLE_CHECK(x.ndim() >= 1 && x.shape().back() == dim_, ValueError,
               "LayerNorm1d: expected input with last dimension ", dim_, ", got shape ", shape_str(x.shape()));
  const Tensor weight = this->weight();
  check_device(x, weight.device());
  return ops::layer_norm(x, weight, bias(), eps_);
}

}  // namespace needle::nn
