// Training-mode batch normalization as one op whose forward is the backend's fused batch_norm kernel and
// whose gradient is its fused batch_norm_backward kernel (or, while a graph of the gradient is recorded,
// the same formula in differentiable ops), instead of a chain of mean, subtract, multiply, sqrt, divide
// and add ops (each a pass over the data, and as many again backward).
#include "ops/batch_norm.h"

#include <algorithm>
#include <memory>

#include "needle/autograd/grad_mode.h"
#include "needle/core/fused_ops.h"
#include "ops/op_helpers.h"

namespace needle::ops::detail {

namespace {

// How x (N, C, ...) is handed to the kernels, which read contiguous (N', C, S) memory. A channels-last
// array (the convolution layer's NHWC output seen as NCHW) is already (N * H * W, C, 1) in memory and goes
// as it is; anything else is made contiguous as (N, C, S), S the product of the remaining dimensions. The
// gradient g and the kernels' outputs take the same layout, so the input gradient of a channels-last x is
// channels-last too, the layout the convolution's backward reads.
class KernelLayout {
 public:
  explicit KernelLayout(const NDArray& x) : shape_(x.shape()) {
    const auto ndim = static_cast<std::int64_t>(shape_.size());
    // to_last_: (0, 2, ..., ndim - 1, 1) moves the channels last; from_last_ moves them back.
    to_last_.push_back(0);
    for (std::int64_t d = 2; d < ndim; ++d) to_last_.push_back(d);
    to_last_.push_back(1);
    from_last_ = {0, ndim - 1};
    for (std::int64_t d = 1; d < ndim - 1; ++d) from_last_.push_back(d);
    channels_last_ = ndim > 2 && !x.is_compact() && x.permute(to_last_).is_compact();
  }

  // `a` (x's shape) as the kernels read it: a view when its layout allows, else a contiguous copy.
  [[nodiscard]] NDArray to_kernel(const NDArray& a) const {
    const std::int64_t channels = shape_[1];
    if (channels_last_) {
      const NDArray last = a.permute(to_last_).compact();
      return last.reshape({last.size() / std::max<std::int64_t>(channels, 1), channels, 1});
    }
    std::int64_t spatial = 1;
    for (std::size_t d = 2; d < shape_.size(); ++d) spatial *= shape_[d];
    return a.compact().reshape({shape_[0], channels, spatial});
  }
  // A kernel output back in x's shape (a view).
  [[nodiscard]] NDArray from_kernel(const NDArray& k) const {
    if (!channels_last_) return k.reshape(shape_);
    Shape last_shape;
    for (const std::int64_t d : to_last_) last_shape.push_back(shape_[static_cast<std::size_t>(d)]);
    return k.reshape(last_shape).permute(from_last_);
  }

 private:
  Shape shape_;
  Axes to_last_;
  Axes from_last_;
  bool channels_last_ = false;
};

// The axes every statistic is taken over (all but 1), and the (1, C, 1, ...) shape it broadcasts as.
Axes reduced_axes(std::int64_t ndim) {
  Axes axes;
  for (std::int64_t d = 0; d < ndim; ++d) {
    if (d != 1) axes.push_back(d);
  }
  return axes;
}
Shape channel_shape(const Shape& shape) {
  Shape out(shape.size(), 1);
  out[1] = shape[1];
  return out;
}

// Inputs: x (N, C, ...), weight (C,), bias (C,), all of one floating dtype. Three outputs: y (x's shape) and
// the batch mean and biased variance (C,), which the layers fold into their running statistics and the
// backward kernel reads instead of computing them again.
class BatchNormOp final : public Op {
 public:
  explicit BatchNormOp(double eps) : eps_(eps) {}
  std::string name() const override { return "batch_norm"; }
  // x, the weight and the batch statistics (outputs); the bias's gradient is a sum of g alone.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override {
    return SavedTensors{}.input(0).input(1).outputs();
  }
  std::size_t num_outputs() const override { return 3; }
  std::vector<NDArray> compute_outputs(const std::vector<NDArray>& in) const override {
    const KernelLayout layout(in[0]);
    const BatchNormResult r = needle::batch_norm(layout.to_kernel(in[0]), in[1], in[2], eps_);
    // Handed on in the kernel's layout: a channels-last y stays channels-last through the element-wise ops
    // that follow (ReLU, and its gradient, keep a dense layout), max pooling and the next convolution,
    // which all read it in place.
    return {layout.from_kernel(r.y), r.mean, r.var};
  }
  std::vector<Tensor> gradient_outputs(const std::vector<Tensor>& out_grads, const std::vector<Tensor>& outputs,
                                       const std::vector<Tensor>& inputs, const NeedsGrad& needs_grad) const override;

 private:
  double eps_;
};

// Only y carries a gradient: the statistics leave the graph as arrays (running statistics).
std::vector<Tensor> BatchNormOp::gradient_outputs(const std::vector<Tensor>& out_grads,
                                                  const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                                                  const NeedsGrad& needs_grad) const {
  const Tensor& g = out_grads[0];
  const Tensor& x = inputs[0];
  const Tensor& weight = inputs[1];
  if (!g.defined()) return {Tensor(), Tensor(), Tensor()};
  if (grad_enabled()) {
    // A graph of the gradient is being recorded (create_graph): the formula of batch_norm_backward in
    // differentiable ops, so that gradients of this gradient work.
    const Axes axes = reduced_axes(x.ndim());
    const Shape param_shape = channel_shape(x.shape());
    const Tensor centered = x - mean(x, axes, /*keepdims=*/true);
    const Tensor invstd = Scalar(1.0) / sqrt(mean(centered * centered, axes, /*keepdims=*/true) + Scalar(eps_));
    const Tensor xhat = centered * invstd;
    const Tensor g_xhat = g * xhat;
    return {needs_grad[0] ? reshape(weight, param_shape) * invstd *
                                (g - mean(g, axes, /*keepdims=*/true) - xhat * mean(g_xhat, axes, /*keepdims=*/true))
                          : Tensor(),
            needs_grad[1] ? summation(g_xhat, axes) : Tensor(), needs_grad[2] ? summation(g, axes) : Tensor()};
  }
  // Plain backward: one fused kernel gives all three gradients from the batch statistics.
  const KernelLayout layout(x.value());
  const NDArray xv = layout.to_kernel(x.value());
  const BatchNormGrads grads = needle::batch_norm_backward(
      layout.to_kernel(g.value().astype(xv.dtype())), xv, outputs[1].value(), outputs[2].value(), weight.value(), eps_);
  return {needs_grad[0] ? constant(layout.from_kernel(grads.dx)) : Tensor(),
          needs_grad[1] ? constant(grads.dweight) : Tensor(), needs_grad[2] ? constant(grads.dbias) : Tensor()};
}

}  // namespace

Tensor batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, NDArray& batch_mean,
                        NDArray& batch_var) {
  const std::int64_t channels = x.shape()[1];
  const std::int64_t count = x.size() / std::max<std::int64_t>(channels, 1);
  NEEDLE_CHECK(count > 1, ValueError, "batch_norm: training needs more than 1 value per channel, got input shape ",
               shape_str(x.shape()));
  const DType dtype = x.dtype();
  const bool same_dtype = (!weight.defined() || weight.dtype() == dtype) && (!bias.defined() || bias.dtype() == dtype);
  if (!same_dtype) {
    // Mixed dtypes promote like the element-wise ops they stand for; the fused kernel takes one dtype.
    const Axes axes = reduced_axes(x.ndim());
    const Shape param_shape = channel_shape(x.shape());
    const Tensor mean_c = mean(x, axes, /*keepdims=*/true);
    const Tensor centered = x - mean_c;
    const Tensor var_c = mean(centered * centered, axes, /*keepdims=*/true);
    batch_mean = mean_c.value().reshape({channels});
    batch_var = var_c.value().reshape({channels});
    Tensor y = centered / sqrt(var_c + Scalar(eps));
    if (weight.defined()) y = y * reshape(weight, param_shape);
    if (bias.defined()) y = y + reshape(bias, param_shape);
    return y;
  }
  // The kernel always applies weight and bias: absent ones are the identity, as constants.
  const Tensor w = weight.defined() ? weight : constant(NDArray::ones({channels}, dtype, x.device()));
  const Tensor b = bias.defined() ? bias : constant(NDArray::zeros({channels}, dtype, x.device()));
  const std::vector<Tensor> outputs = Tensor::from_op_outputs(std::make_shared<const BatchNormOp>(eps), {x, w, b});
  batch_mean = outputs[1].value();
  batch_var = outputs[2].value();
  return outputs[0];
}

}  // namespace needle::ops::detail
