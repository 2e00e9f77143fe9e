// Neural-network functions: (log-)softmax as primitive ops with stable forwards, and the losses,
// dropout and normalizations composed from ops (so their gradients, and the gradients of those, come
// from the pieces).
#include <algorithm>

#include "ops/op_helpers.h"

namespace needle::ops {

using detail::constant;
using detail::make;

namespace {

// a - max(a) along `axis`: the largest entry becomes 0, so exp() below cannot overflow for any finite
// logits (softmax and logsoftmax are invariant under this shift).
NDArray shift_by_max(const NDArray& a, std::int64_t axis) { return a - needle::max(a, {axis}, /*keepdims=*/true); }

class LogSoftmaxOp final : public Op {
 public:
  explicit LogSoftmaxOp(std::int64_t axis) : axis_(axis) {}
  std::string name() const override { return "logsoftmax"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray shifted = shift_by_max(in[0], axis_);
    // The sum includes exp(0) = 1, so the log is finite and >= 0.
    return shifted - needle::log(needle::sum(needle::exp(shifted), {axis_}, /*keepdims=*/true));
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node) const override {
    // d/dx: g - softmax(x) * sum(g); softmax from the output so the expression stays differentiable.
    return {g - exp(node) * summation(g, {axis_}, /*keepdims=*/true)};
  }

 private:
  std::int64_t axis_;  // normalized
};

class SoftmaxOp final : public Op {
 public:
  explicit SoftmaxOp(std::int64_t axis) : axis_(axis) {}
  std::string name() const override { return "softmax"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray e = needle::exp(shift_by_max(in[0], axis_));
    return e / needle::sum(e, {axis_}, /*keepdims=*/true);
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node) const override {
    // s * (g - sum(g * s)), with s the output.
    return {node * (g - summation(g * node, {axis_}, /*keepdims=*/true))};
  }

 private:
  std::int64_t axis_;  // normalized
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
  return make<LogSoftmaxOp>({a}, normalize_axis(axis, a.ndim(), "logsoftmax"));
}

Tensor softmax(const Tensor& a, std::int64_t axis) {
  detail::check_floating("softmax", a);
  return make<SoftmaxOp>({a}, normalize_axis(axis, a.ndim(), "softmax"));
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
  // A one-hot mask picks -log p[label]; `where` (not a product) keeps the other entries out even if
  // they are -inf.
  const NDArray classes_row = NDArray::arange(classes, labels.dtype(), labels.device()).reshape({1, classes});
  const Tensor picked = constant(needle::eq(labels.value().reshape({n, 1}), classes_row));
  const Tensor zero = detail::scalar_like(logits, Scalar(0.0));
  return negate(summation(where(picked, logsoftmax(logits, 1), zero))) * Scalar(1.0 / static_cast<double>(n));
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
  const Tensor centered = x - mean(x, {-1}, /*keepdims=*/true);
  // Biased variance (divides by dim), as PyTorch does.
  const Tensor var = mean(centered * centered, {-1}, /*keepdims=*/true);
  return scale_and_shift(centered / sqrt(var + Scalar(eps)), weight, bias, {dim});
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
  Axes axes;
  for (std::int64_t d = 0; d < x.ndim(); ++d) {
    if (d != 1) axes.push_back(d);
  }
  const std::int64_t count = x.size() / std::max<std::int64_t>(channels, 1);

  Tensor mean_c;
  Tensor var_c;
  if (training) {
    NEEDLE_CHECK(count > 1, ValueError, "batch_norm: training needs more than 1 value per channel, got input shape ",
                 shape_str(x.shape()));
    mean_c = mean(x, axes, /*keepdims=*/true);
    const Tensor centered = x - mean_c;
    var_c = mean(centered * centered, axes, /*keepdims=*/true);  // biased: normalizes
    if (running_mean.defined()) {
      // The running statistics are buffers, not part of the graph: update their values directly, with the
      // unbiased variance (PyTorch's convention).
      const NDArray batch_mean = mean_c.value().reshape({channels}).astype(running_mean.dtype());
      const NDArray batch_var =
          (var_c.value().reshape({channels}) * Scalar(static_cast<double>(count) / static_cast<double>(count - 1)))
              .astype(running_var.dtype());
      Tensor(running_mean).set_value(running_mean.value() * Scalar(1.0 - momentum) + batch_mean * Scalar(momentum));
      Tensor(running_var).set_value(running_var.value() * Scalar(1.0 - momentum) + batch_var * Scalar(momentum));
    }
    return scale_and_shift(centered / sqrt(var_c + Scalar(eps)), weight, bias, channel_shape);
  }
  NEEDLE_CHECK(running_mean.defined(), ValueError,
               "batch_norm: eval mode needs running_mean and running_var, got undefined tensors for input of shape ",
               shape_str(x.shape()));
  const Tensor y = (x - reshape(running_mean, channel_shape)) / sqrt(reshape(running_var, channel_shape) + Scalar(eps));
  return scale_and_shift(y, weight, bias, channel_shape);
}

}  // namespace needle::ops
