// Neural-network functions: (log-)softmax and layer normalization as primitive ops whose forwards and
// backwards run the backend's fused row kernels, and the losses, dropout and batch normalization
// composed from ops (so their gradients, and the gradients of those, come from the pieces). The
// gradients of the fused ops are ops too, written with differentiable expressions, so gradients of
// gradients still work.
#include <algorithm>

#include "needle/autograd/grad_mode.h"
#include "needle/core/fused_ops.h"
#include "ops/batch_norm.h"
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::constant;
using detail::grad_if;
using detail::make;

namespace {

// Stable softmax: the fused kernel shifts every row by its maximum, so exp() cannot overflow.
class SoftmaxOp final : public SingleOutputOp {
 public:
  SoftmaxOp(std::int64_t axis, bool log) : axis_(axis), log_(log) {}
  std::string name() const override { return log_ ? "logsoftmax" : "softmax"; }
  // The gradient is computed from the output.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.outputs(); }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::softmax(in[0], axis_, log_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override;

 private:
  std::int64_t axis_;  // normalized
  bool log_;
};

// The vector-Jacobian product of (log-)softmax from its output: inputs g (the output's gradient) and
// y (the output). softmax: y * (g - sum(g * y)); log-softmax: g - exp(y) * sum(g), sums along the axis.
class SoftmaxGradOp final : public SingleOutputOp {
 public:
  SoftmaxGradOp(std::int64_t axis, bool log) : axis_(axis), log_(log) {}
  std::string name() const override { return log_ ? "logsoftmax_backward" : "softmax_backward"; }
  // Both gradients read y; y's also reads g.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return SavedTensors{}.input(1).input(0, needs_grad[1]);
  }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::softmax_backward(in[0], in[1], axis_, log_);
  }
  std::vector<Tensor> gradient(const Tensor& h, const Tensor& node, const NeedsGrad& needs_grad) const override {
    const Tensor& g = node.inputs()[0];
    const Tensor& y = node.inputs()[1];
    const Axes axis{axis_};
    if (log_) {
      // f = g - exp(y) * sum(g): df/dg^T h = h - sum(h * exp(y)); df/dy^T h = -h * exp(y) * sum(g).
      const Tensor p = exp(y);
      return {grad_if(needs_grad[0], [&] { return h - summation(h * p, axis, /*keepdims=*/true); }),
              grad_if(needs_grad[1], [&] { return negate(h * p * summation(g, axis, /*keepdims=*/true)); })};
    }
    // f = y * (g - sum(g * y)): its Jacobian in g is symmetric, so df/dg^T h = f(h, y);
    // df/dy^T h = h * (g - sum(g * y)) - g * sum(h * y).
    return {grad_if(needs_grad[0],
                    [&] {
                      return make<SoftmaxGradOp>({h, y}, axis_, false);
                    }),
            grad_if(needs_grad[1], [&] {
              return h * (g - summation(g * y, axis, /*keepdims=*/true)) -
                     g * summation(h * y, axis, /*keepdims=*/true);
            })};
  }

 private:
  std::int64_t axis_;  // normalized
  bool log_;
};

std::vector<Tensor> SoftmaxOp::gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const {
  return {make<SoftmaxGradOp>({g, node}, axis_, log_)};
}

// (x - mean) / sqrt(var + eps) along the last axis (biased variance, as PyTorch), by the fused kernel.
class NormalizeOp final : public SingleOutputOp {
 public:
  explicit NormalizeOp(double eps) : eps_(eps) {}
  std::string name() const override { return "normalize"; }
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.input(0); }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::layer_norm(in[0], eps_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override;

 private:
  double eps_;
};

// The vector-Jacobian product of NormalizeOp: inputs g (the output's gradient) and x (its input);
// rstd * (g - mean(g) - xhat * mean(g * xhat)) along the last axis, by the fused kernel.
class NormalizeGradOp final : public SingleOutputOp {
 public:
  explicit NormalizeGradOp(double eps) : eps_(eps) {}
  std::string name() const override { return "normalize_backward"; }
  // Both gradients read x; x's also reads g and the output.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return SavedTensors{}.input(1).input(0, needs_grad[1]).outputs(needs_grad[1]);
  }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::layer_norm_backward(in[0], in[1], eps_);
  }
  std::vector<Tensor> gradient(const Tensor& h, const Tensor& node, const NeedsGrad& needs_grad) const override {
    // f(g, x) = J(x)^T g with J the Jacobian of normalize, which is symmetric: df/dg^T h = f(h, x).
    // With n the row length, s = rstd, xhat = (x - mean) * s, a = mean(g * xhat), b = mean(h * xhat):
    // d<h, f>/dx = -s * (s * xhat * (mean(h * g) - mean(h) * mean(g) - a * b) + b * f(g, x) + a * f(h, x)).
    const Tensor& g = node.inputs()[0];
    const Tensor& x = node.inputs()[1];
    const Tensor f_h = make<NormalizeGradOp>({h, x}, eps_);
    if (!needs_grad[1]) return {needs_grad[0] ? f_h : Tensor(), Tensor()};
    const Axes last{-1};
    const Tensor centered = x - mean(x, last, /*keepdims=*/true);
    const Tensor rstd = Scalar(1.0) / sqrt(mean(centered * centered, last, /*keepdims=*/true) + Scalar(eps_));
    const Tensor xhat = centered * rstd;
    const Tensor a = mean(g * xhat, last, /*keepdims=*/true);
    const Tensor b = mean(h * xhat, last, /*keepdims=*/true);
    const Tensor covariance =
        mean(h * g, last, /*keepdims=*/true) - mean(h, last, /*keepdims=*/true) * mean(g, last, /*keepdims=*/true);
    return {f_h, negate(rstd * (rstd * xhat * (covariance - a * b) + b * node + a * f_h))};
  }

 private:
  double eps_;
};

std::vector<Tensor> NormalizeOp::gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const {
  return {make<NormalizeGradOp>({g, node.inputs()[0]}, eps_)};
}

// normalize(x) * weight + bias along the last axis (weight and bias of shape (dim,)) as one node. As
// normalize, multiply and add, the normalized rows and their scaled copy would both stay alive until backward
// (held by the next nodes as inputs): two arrays of x's size per layer norm. This node keeps only x and the
// weight and recomputes the normalized rows in backward, as PyTorch's layer_norm does from its statistics.
class AffineNormalizeOp final : public SingleOutputOp {
 public:
  explicit AffineNormalizeOp(double eps) : eps_(eps) {}
  std::string name() const override { return "layer_norm"; }
  // dx and dweight read x; dx also reads the weight; dbias reads nothing.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return SavedTensors{}.input(0, needs_grad[0] || needs_grad[1]).input(1, needs_grad[0]);
  }
  NDArray compute(const std::vector<NDArray>& in) const override {
    NDArray out = needle::layer_norm(in[0], eps_);
    binary_in_place(BinaryOp::Mul, out, in[1]);
    binary_in_place(BinaryOp::Add, out, in[2]);
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    const Tensor& x = node.inputs()[0];
    const Tensor& weight = node.inputs()[1];
    const Tensor& bias = node.inputs()[2];
    std::vector<Tensor> grads(3);
    if (!grad_enabled()) {
      // A plain backward records nothing, so one fused kernel computes all three in one pass over the rows.
      const AffineLayerNormGrads fused = needle::layer_norm_affine_backward(g.value(), x.value(), weight.value(), eps_);
      if (needs_grad[0]) grads[0] = constant(fused.dx);
      if (needs_grad[1]) grads[1] = constant(fused.dweight);
      if (needs_grad[2]) grads[2] = constant(fused.dbias);
      return grads;
    }
    // backward(create_graph=true): gradients written with ops, so they can be differentiated again.
    if (needs_grad[0]) grads[0] = make<NormalizeGradOp>({g * weight, x}, eps_);
    if (needs_grad[1]) grads[1] = sum_to_shape(g * make<NormalizeOp>({x}, eps_), weight.shape());
    if (needs_grad[2]) grads[2] = sum_to_shape(g, bias.shape());
    return grads;
  }

 private:
  double eps_;
};

// x / sqrt(mean(x^2) + eps) along the last axis, by the fused kernel where the device has one. With
// r = 1 / sqrt(mean(x^2) + eps) and y the output x * r, the gradient is r * (g - y * mean(g * y)), composed
// of ops so that it is differentiable again.
class RmsNormOp final : public SingleOutputOp {
 public:
  explicit RmsNormOp(double eps) : eps_(eps) {}
  std::string name() const override { return "rms_norm"; }
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override {
    return SavedTensors{}.input(0).outputs();
  }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::rms_norm(in[0], eps_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    const Tensor& x = node.inputs()[0];
    const Axes last{-1};
    const Tensor r = Scalar(1.0) / sqrt(mean(x * x, last, /*keepdims=*/true) + Scalar(eps_));
    return {r * (g - node * mean(g * node, last, /*keepdims=*/true))};
  }

 private:
  double eps_;
};

void check_vector_param(std::string_view op, std::string_view what, const Tensor& param, const Tensor& x,
                        std::int64_t size) {
  if (!param.defined()) return;
  NEEDLE_CHECK(param.ndim() == 1 && param.shape()[0] == size, ValueError, op, ": ", what, " must have shape (", size,
               ",) for input of shape ", shape_str(x.shape()), ", got ", shape_str(param.shape()));
  detail::check_floating(op, param);
}

// y * weight + bias with weight and bias (each optional) reshaped to `param_shape` for broadcasting.
Tensor scale_and_shift(Tensor y, const Tensor& weight, const Tensor& bias, const Shape& param_shape) {
  const auto as_param = [&](const Tensor& t) { return t.shape() == param_shape ? t : reshape(t, param_shape); };
  if (weight.defined()) y = y * as_param(weight);
  if (bias.defined()) y = y + as_param(bias);
  return y;
}

}  // namespace

Tensor logsoftmax(const Tensor& a, std::int64_t axis) {
  detail::check_floating("logsoftmax", a);
  return make<SoftmaxOp>({a}, normalize_axis(axis, a.ndim(), "logsoftmax"), true);
}

Tensor softmax(const Tensor& a, std::int64_t axis) {
  detail::check_floating("softmax", a);
  return make<SoftmaxOp>({a}, normalize_axis(axis, a.ndim(), "softmax"), false);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  NEEDLE_CHECK(logits.ndim() == 2 && labels.ndim() == 1 && labels.shape()[0] == logits.shape()[0], ValueError,
               "cross_entropy: expected logits (N, C) and labels (N,), got shapes ", shape_str(logits.shape()), " and ",
               shape_str(labels.shape()));
  detail::check_floating("cross_entropy", logits);
  NEEDLE_CHECK(!is_floating(labels.dtype()) && labels.dtype() != DType::Bool, TypeError,
               "cross_entropy: labels must be integers, got dtype ", dtype_name(labels.dtype()));
  detail::check_same_device("cross_entropy", {logits, labels});
  const std::int64_t n = logits.shape()[0];
  const std::int64_t classes = logits.shape()[1];
  if (n > 0) {
    const auto lowest = needle::min(labels.value()).item().to<std::int64_t>();
    const auto highest = needle::max(labels.value()).item().to<std::int64_t>();
    NEEDLE_CHECK(lowest >= 0 && highest < classes, IndexError, "cross_entropy: labels must lie in [0, ", classes,
                 ") for logits of shape ", shape_str(logits.shape()), ", got ", lowest < 0 ? lowest : highest);
  }
  // Gathering log p[label] reads one entry per row (its gradient scatters into zeros), however many
  // classes there are, and never touches the other entries even if they are -inf.
  const Tensor label_column = constant(labels.value().astype(DType::Int64).reshape({n, 1}));
  const Tensor picked = gather(logsoftmax(logits, 1), 1, label_column);
  return negate(summation(picked)) * Scalar(1.0 / static_cast<double>(n));
}

Tensor mse_loss(const Tensor& prediction, const Tensor& target) {
  NEEDLE_CHECK(prediction.shape() == target.shape(), ValueError,
               "mse_loss: prediction and target must have the same shape, got ", shape_str(prediction.shape()), " and ",
               shape_str(target.shape()));
  detail::check_floating("mse_loss", prediction);
  detail::check_same_device("mse_loss", {prediction, target});
  const Tensor diff = prediction - target;
  return mean(diff * diff);
}

Tensor dropout(const Tensor& a, double p, bool training) {
  NEEDLE_CHECK(p >= 0.0 && p < 1.0, ValueError, "dropout: p must lie in [0, 1), got ", p);
  if (!training || p == 0.0) return a;
  detail::check_floating("dropout", a);
  // Keep each element with probability 1 - p and scale the kept ones so the expectation is unchanged.
  const NDArray keep = needle::randb(a.shape(), 1.0 - p, a.dtype(), a.device());
  return a * constant(keep * Scalar(1.0 / (1.0 - p)));
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  NEEDLE_CHECK(x.ndim() >= 1, ValueError, "layer_norm: input must have at least 1 dimension, got shape ",
               shape_str(x.shape()));
  detail::check_floating("layer_norm", x);
  const std::int64_t dim = x.shape().back();
  check_vector_param("layer_norm", "weight", weight, x, dim);
  check_vector_param("layer_norm", "bias", bias, x, dim);
  // Both parameters of x's dtype and device (a layer's): one node. Otherwise the composition, which promotes
  // mixed dtypes and reports mixed devices as multiply and add do.
  if (weight.defined() && bias.defined() && weight.dtype() == x.dtype() && bias.dtype() == x.dtype() &&
      weight.device() == x.device() && bias.device() == x.device()) {
    return make<AffineNormalizeOp>({x, weight, bias}, eps);
  }
  return scale_and_shift(make<NormalizeOp>({x}, eps), weight, bias, {dim});
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, std::optional<double> eps) {
  NEEDLE_CHECK(x.ndim() >= 1, ValueError, "rms_norm: input must have at least 1 dimension, got shape ",
               shape_str(x.shape()));
  detail::check_floating("rms_norm", x);
  const std::int64_t dim = x.shape().back();
  check_vector_param("rms_norm", "weight", weight, x, dim);
  const double epsilon = eps.value_or(x.dtype() == DType::Float32 ? 0x1.0p-23 : 0x1.0p-52);
  NEEDLE_CHECK(epsilon >= 0.0, ValueError, "rms_norm: eps must be >= 0, got ", epsilon);
  return scale_and_shift(make<RmsNormOp>({x}, epsilon), weight, Tensor(), {dim});
}

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  NEEDLE_CHECK(x.ndim() >= 2, ValueError, "batch_norm: input must be (N, C) or (N, C, ...), got shape ",
               shape_str(x.shape()));
  detail::check_floating("batch_norm", x);
  const std::int64_t channels = x.shape()[1];
  check_vector_param("batch_norm", "weight", weight, x, channels);
  check_vector_param("batch_norm", "bias", bias, x, channels);
  check_vector_param("batch_norm", "running_mean", running_mean, x, channels);
  check_vector_param("batch_norm", "running_var", running_var, x, channels);
  NEEDLE_CHECK(running_mean.defined() == running_var.defined(), ValueError,
               "batch_norm: running_mean and running_var must both be given or both be undefined");

  // Per-channel statistics broadcast as (1, C, 1, ...).
  Shape channel_shape(static_cast<std::size_t>(x.ndim()), 1);
  channel_shape[1] = channels;

  if (training) {
    NDArray batch_mean;
    NDArray batch_var;  // biased: normalizes
    Tensor y = detail::batch_norm_train(x, weight, bias, eps, batch_mean, batch_var);
    if (running_mean.defined()) {
      // The running statistics are buffers, not part of the graph: update their values directly, with the
      // unbiased variance (PyTorch's convention).
      const std::int64_t count = x.size() / std::max<std::int64_t>(channels, 1);
      const NDArray mean_value = batch_mean.astype(running_mean.dtype());
      const NDArray var_value =
          (batch_var * Scalar(static_cast<double>(count) / static_cast<double>(count - 1))).astype(running_var.dtype());
      Tensor(running_mean).set_value(running_mean.value() * Scalar(1.0 - momentum) + mean_value * Scalar(momentum));
      Tensor(running_var).set_value(running_var.value() * Scalar(1.0 - momentum) + var_value * Scalar(momentum));
    }
    return y;
  }
  NEEDLE_CHECK(running_mean.defined(), ValueError,
               "batch_norm: eval mode needs running_mean and running_var, got undefined tensors for input of shape ",
               shape_str(x.shape()));
  const Tensor y = (x - reshape(running_mean, channel_shape)) / sqrt(reshape(running_var, channel_shape) + Scalar(eps));
  return scale_and_shift(y, weight, bias, channel_shape);
}

}  // namespace needle::ops
