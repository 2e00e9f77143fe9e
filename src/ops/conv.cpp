// 2-d convolution in NHWC layout (Needle's conv) as three ops that are each other's gradients:
//   conv(a, b)               forward: im2col (the input's patches, zeros for the padding) times the weight;
//   conv_input_grad(g, b)    d/da: the output gradient times the weight back to columns, then col2im;
//   conv_weight_grad(a, g)   d/db: the input's columns times the output gradient.
// Each is one array function of fused_ops.h (conv2d, conv2d_input_grad, conv2d_weight_grad): one kernel
// that works through blocks of output cells where the device has it, else that composition.
// Writing the backward this way costs the same as the forward for every stride (a convolution with a
// dilated gradient would multiply by stride^2 with zeros), and since <conv(a, b), g> is bilinear in all
// three, each op's gradient is one of the other two: gradients of gradients come for free.
#include "needle/core/fused_ops.h"
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::make;

namespace {

// Geometry shared by the three ops: input (N, H, W, C_in), kernel K x K, output (N, H_out, W_out, C_out).
struct ConvGeometry {
  std::int64_t n, h, w, c_in, k, c_out, stride, padding;
  [[nodiscard]] Shape input_shape() const { return {n, h, w, c_in}; }
};

Tensor conv2d(const Tensor& a, const Tensor& b, const ConvGeometry& geo);
Tensor conv_input_grad(const Tensor& g, const Tensor& b, const ConvGeometry& geo);
Tensor conv_weight_grad(const Tensor& a, const Tensor& g, const ConvGeometry& geo);

// a (N, H, W, C_in) * b (K, K, C_in, C_out) -> (N, H_out, W_out, C_out).
class ConvOp final : public SingleOutputOp {
 public:
  explicit ConvOp(const ConvGeometry& geo) : geo_(geo) {}
  std::string name() const override { return "conv"; }
  // Bilinear: each input's gradient reads the other input.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return detail::saves_the_other_input(needs_grad);
  }

  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::conv2d(in[0], in[1], geo_.stride, geo_.padding);
  }

  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    const Tensor& a = node.inputs()[0];
    const Tensor& b = node.inputs()[1];
    return {detail::grad_if(needs_grad[0], [&] { return conv_input_grad(g, b, geo_); }),
            detail::grad_if(needs_grad[1], [&] { return conv_weight_grad(a, g, geo_); })};
  }

 private:
  ConvGeometry geo_;
};

// g (N, H_out, W_out, C_out), b (K, K, C_in, C_out) -> (N, H, W, C_in): the adjoint of conv in its input.
class ConvInputGradOp final : public SingleOutputOp {
 public:
  explicit ConvInputGradOp(const ConvGeometry& geo) : geo_(geo) {}
  std::string name() const override { return "conv_input_grad"; }
  // Bilinear: each input's gradient reads the other input.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return detail::saves_the_other_input(needs_grad);
  }

  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::conv2d_input_grad(in[0], in[1], geo_.input_shape(), geo_.stride, geo_.padding);
  }

  std::vector<Tensor> gradient(const Tensor& h, const Tensor& node, const NeedsGrad& needs_grad) const override {
    // <input_grad(g, b), h> = <conv(h, b), g>.
    const Tensor& g = node.inputs()[0];
    const Tensor& b = node.inputs()[1];
    return {detail::grad_if(needs_grad[0], [&] { return conv2d(h, b, geo_); }),
            detail::grad_if(needs_grad[1], [&] { return conv_weight_grad(h, g, geo_); })};
  }

 private:
  ConvGeometry geo_;
};

// a (N, H, W, C_in), g (N, H_out, W_out, C_out) -> (K, K, C_in, C_out): the adjoint of conv in its weight.
class ConvWeightGradOp final : public SingleOutputOp {
 public:
  explicit ConvWeightGradOp(const ConvGeometry& geo) : geo_(geo) {}
  std::string name() const override { return "conv_weight_grad"; }
  // Bilinear: each input's gradient reads the other input.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return detail::saves_the_other_input(needs_grad);
  }

  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::conv2d_weight_grad(in[0], in[1], geo_.k, geo_.stride, geo_.padding);
  }

  std::vector<Tensor> gradient(const Tensor& h, const Tensor& node, const NeedsGrad& needs_grad) const override {
    // <weight_grad(a, g), h> = <conv(a, h), g>.
    const Tensor& a = node.inputs()[0];
    const Tensor& g = node.inputs()[1];
    return {detail::grad_if(needs_grad[0], [&] { return conv_input_grad(g, h, geo_); }),
            detail::grad_if(needs_grad[1], [&] { return conv2d(a, h, geo_); })};
  }

 private:
  ConvGeometry geo_;
};

Tensor conv2d(const Tensor& a, const Tensor& b, const ConvGeometry& geo) { return make<ConvOp>({a, b}, geo); }
Tensor conv_input_grad(const Tensor& g, const Tensor& b, const ConvGeometry& geo) {
  return make<ConvInputGradOp>({g, b}, geo);
}
Tensor conv_weight_grad(const Tensor& a, const Tensor& g, const ConvGeometry& geo) {
  return make<ConvWeightGradOp>({a, g}, geo);
}

}  // namespace

Tensor conv(const Tensor& input, const Tensor& weight, std::int64_t stride, std::int64_t padding) {
  const std::vector<Tensor> operands = detail::promoted({input, weight});
  const Tensor& a = operands[0];
  const Tensor& b = operands[1];
  const auto shapes = [&] { return str(shape_str(a.shape()), " and ", shape_str(b.shape())); };
  NEEDLE_CHECK(a.ndim() == 4 && b.ndim() == 4, ValueError,
               "conv: expected input (N, H, W, C_in) and weight (K, K, C_in, C_out), got shapes ", shapes());
  NEEDLE_CHECK(a.shape()[3] == b.shape()[2], ValueError, "conv: input channels ", a.shape()[3],
               " do not match weight's C_in ", b.shape()[2], " (shapes ", shapes(), ")");
  NEEDLE_CHECK(b.shape()[0] == b.shape()[1] && b.shape()[0] >= 1, ValueError,
               "conv: weight must be a square kernel (K, K, C_in, C_out) with K >= 1, got shapes ", shapes());
  NEEDLE_CHECK(stride >= 1, ValueError, "conv: stride must be >= 1, got ", stride, " (shapes ", shapes(), ")");
  NEEDLE_CHECK(padding >= 0, ValueError, "conv: padding must be >= 0, got ", padding, " (shapes ", shapes(), ")");
  const std::int64_t k = b.shape()[0];
  NEEDLE_CHECK(a.shape()[1] + 2 * padding >= k && a.shape()[2] + 2 * padding >= k, ValueError, "conv: kernel size ", k,
               " exceeds the padded input (padding ", padding, ", shapes ", shapes(), ")");
  detail::check_floating("conv", a);
  detail::check_same_device("conv", {a, b});
  const ConvGeometry geo{a.shape()[0], a.shape()[1], a.shape()[2], a.shape()[3], k, b.shape()[3], stride, padding};
  return conv2d(a, b, geo);
}

}  // namespace needle::ops
