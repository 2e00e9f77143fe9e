// Inference with int8 weights: the quantized linear map and the statically quantized convolution. Each is
// one op (so traces and graphs show it like any other) whose forward quantizes the activations, runs the
// int8 GEMM with the scales applied to its output (needle::quantized_matmul) and returns float. There is no
// gradient: rounding has none worth following, and quantized layers are for running trained models.
#include <string>
#include <vector>

#include "needle/core/fused_ops.h"
#include "ops/op_helpers.h"

namespace needle::ops {

namespace {

// The int8 activations of rows (M, K) and their per-row scales: from each row's largest magnitude
// (dynamic), or one calibrated scale for every row (static, input_scale > 0).
QuantizedRows quantize_activations(const NDArray& rows, double input_scale) {
  if (input_scale <= 0.0) return quantize_rows(rows);
  return {quantize_with_scale(rows, input_scale),
          NDArray::full({rows.shape()[0]}, Scalar(static_cast<double>(static_cast<float>(input_scale))), DType::Float32,
                        rows.device())};
}

// out (M, N) = dequantized int8 product of the rows and the weight (N, K), plus bias, in float32.
NDArray int8_linear(const NDArray& rows, const NDArray& weight, const NDArray& weight_scale, const NDArray* bias,
                    double input_scale) {
  const QuantizedRows a = quantize_activations(rows, input_scale);
  return quantized_matmul(a.values, a.scale, weight, weight_scale, bias);
}

// Inputs: x, weight (int8), weight_scale, and bias when present.
class QuantizedLinearOp final : public SingleOutputOp {
 public:
  explicit QuantizedLinearOp(double input_scale) : input_scale_(input_scale) {}
  std::string name() const override { return "quantized_linear"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray& x = in[0];
    const std::int64_t features = x.shape().back();
    const NDArray rows = x.astype(DType::Float32).compact().reshape({x.size() / features, features});
    const NDArray out = int8_linear(rows, in[1], in[2], in.size() > 3 ? &in[3] : nullptr, input_scale_);
    Shape shape = x.shape();
    shape.back() = in[1].shape()[0];
    return out.reshape(shape).astype(x.dtype());
  }
  std::vector<Tensor> gradient(const Tensor& /*g*/, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    throw RuntimeError("quantized_linear: int8 layers are for inference and have no gradient");
  }

 private:
  double input_scale_;
};

// Inputs as QuantizedLinearOp's, x (N, C, H, W) and weight (C_out, K * K * C) in im2col's (i, j, c) order.
class QuantizedConvOp final : public SingleOutputOp {
 public:
  QuantizedConvOp(std::int64_t kernel, std::int64_t stride, std::int64_t padding, double input_scale)
      : kernel_(kernel), stride_(stride), padding_(padding), input_scale_(input_scale) {}
  std::string name() const override { return "quantized_conv"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray& x = in[0];
    // im2col reads the NCHW input through a permuted (NHWC) view; its columns (N, H_out, W_out, K, K, C)
    // are the rows of one GEMM with the weight.
    const NDArray cols = im2col(x.astype(DType::Float32).permute({0, 2, 3, 1}), kernel_, stride_, padding_);
    const Shape& c = cols.shape();
    const NDArray rows = cols.reshape({c[0] * c[1] * c[2], c[3] * c[4] * c[5]});
    const NDArray out = int8_linear(rows, in[1], in[2], in.size() > 3 ? &in[3] : nullptr, input_scale_);
    return out.reshape({c[0], c[1], c[2], in[1].shape()[0]}).permute({0, 3, 1, 2}).compact().astype(x.dtype());
  }
  std::vector<Tensor> gradient(const Tensor& /*g*/, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    throw RuntimeError("quantized_conv: int8 layers are for inference and have no gradient");
  }

 private:
  std::int64_t kernel_;
  std::int64_t stride_;
  std::int64_t padding_;
  double input_scale_;
};

std::vector<Tensor> operands(const Tensor& x, const Tensor& weight, const Tensor& weight_scale, const Tensor& bias) {
  std::vector<Tensor> in{x, weight, weight_scale};
  if (bias.defined()) in.push_back(bias);
  return in;
}

void check_quantized_weight(std::string_view op, const Tensor& x, const Tensor& weight, const Tensor& weight_scale,
                            const Tensor& bias) {
  detail::check_floating(op, x);
  detail::check_same_device(op, bias.defined() ? std::vector<Tensor>{x, weight, weight_scale, bias}
                                               : std::vector<Tensor>{x, weight, weight_scale});
  NEEDLE_CHECK(weight.dtype() == DType::Int8 && weight.ndim() == 2, TypeError, op,
               ": weight must be an int8 (out, in) array, got ", dtype_name(weight.dtype()), " of shape ",
               shape_str(weight.shape()));
}

}  // namespace

Tensor quantized_linear(const Tensor& x, const Tensor& weight, const Tensor& weight_scale, const Tensor& bias,
                        double input_scale) {
  constexpr std::string_view op = "quantized_linear";
  check_quantized_weight(op, x, weight, weight_scale, bias);
  NEEDLE_CHECK(x.ndim() >= 1 && x.shape().back() == weight.shape()[1], ValueError, op,
               ": expected input with last dimension ", weight.shape()[1], ", got shape ", shape_str(x.shape()));
  return detail::make<QuantizedLinearOp>(operands(x, weight, weight_scale, bias), input_scale);
}

Tensor quantized_conv(const Tensor& x, const Tensor& weight, const Tensor& weight_scale, const Tensor& bias,
                      std::int64_t kernel, std::int64_t stride, std::int64_t padding, double input_scale) {
  constexpr std::string_view op = "quantized_conv";
  check_quantized_weight(op, x, weight, weight_scale, bias);
  NEEDLE_CHECK(x.ndim() == 4 && weight.shape()[1] == kernel * kernel * x.shape()[1], ValueError, op,
               ": expected input (N, C, H, W) with C * ", kernel, " * ", kernel, " = ", weight.shape()[1],
               ", got shape ", shape_str(x.shape()));
  return detail::make<QuantizedConvOp>(operands(x, weight, weight_scale, bias), kernel, stride, padding, input_scale);
}

}  // namespace needle::ops
