// The array layer's int8 quantization (fused_ops.h, "int8 quantization"): check what a user can get wrong,
// naming the function, the shapes and the dtypes; compact the operands; allocate; call one kernel.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/array_checks.h"
#include "needle/backend/layouts.h"
#include "needle/core/array_ops.h"
#include "needle/core/fused_ops.h"

namespace needle {

namespace {

using detail::backend_of;
using detail::check_same_device;

void check_dtype(std::string_view op, std::string_view name, const NDArray& a, DType expected) {
  NEEDLE_CHECK(a.dtype() == expected, TypeError, op, ": ", name, " must be ", dtype_name(expected), ", got ",
               dtype_name(a.dtype()), " of shape ", shape_str(a.shape()));
}

// a (M, K) and w (N, K), both int8, with K small enough for exact int32 sums.
void check_int8_operands(std::string_view op, const NDArray& a, const NDArray& w) {
  check_same_device(op, {&a, &w});
  check_dtype(op, "a", a, DType::Int8);
  check_dtype(op, "w", w, DType::Int8);
  NEEDLE_CHECK(a.ndim() == 2 && w.ndim() == 2 && a.shape()[1] == w.shape()[1], ValueError, op,
               ": expected a (M, K) and w (N, K), got shapes ", shape_str(a.shape()), " and ", shape_str(w.shape()));
  NEEDLE_CHECK(a.shape()[1] <= kernels::kMaxInt8Depth, ValueError, op, ": depth K = ", a.shape()[1], " exceeds ",
               kernels::kMaxInt8Depth, ", beyond which int32 sums could overflow (shapes ", shape_str(a.shape()),
               " and ", shape_str(w.shape()), ")");
}

void check_vector(std::string_view op, std::string_view name, const NDArray& v, std::int64_t length) {
  check_dtype(op, name, v, DType::Float32);
  NEEDLE_CHECK(v.ndim() == 1 && v.shape()[0] == length, ValueError, op, ": ", name, " must have shape ",
               shape_str(Shape{length}), ", got ", shape_str(v.shape()));
}

}  // namespace

QuantizedRows quantize_rows(const NDArray& x) {
  NEEDLE_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, TypeError,
               "quantize_rows: expected float32 or float64, got ", dtype_name(x.dtype()));
  NEEDLE_CHECK(x.ndim() >= 1, ValueError, "quantize_rows: expected at least 1 dimension, got shape ",
               shape_str(x.shape()));
  const NDArray in = x.astype(DType::Float32).compact();
  const Shape& shape = in.shape();
  QuantizedRows r{NDArray::empty(shape, DType::Int8, in.device(), "quantize_rows"),
                  NDArray::empty(Shape(shape.begin(), shape.end() - 1), DType::Float32, in.device(), "quantize_rows")};
  if (r.scale.size() == 0) return r;
  backend_of(in).quantize_rows(r.values.view(), r.scale.view(), in.view());
  // A row with NaN or an infinity has a non-finite scale: checking the scales costs one value per row.
  const std::vector<float> scales = r.scale.to_vector<float>();
  for (std::size_t row = 0; row < scales.size(); ++row) {
    NEEDLE_CHECK(std::isfinite(scales[row]), ValueError, "quantize_rows: row ", row, " of x (shape ",
                 shape_str(x.shape()), ", rows along the last axis) holds NaN or infinity",
                 x.dtype() == DType::Float64 ? " (or a value beyond float32's range)" : "");
  }
  return r;
}

NDArray int8_matmul(const NDArray& a, const NDArray& w) {
  check_int8_operands("int8_matmul", a, w);
  const NDArray ac = a.compact();
  const NDArray wc = w.compact();
  NDArray out = NDArray::empty({a.shape()[0], w.shape()[0]}, DType::Int32, a.device(), "int8_matmul");
  if (out.size() > 0) backend_of(out).int8_matmul(out.view(), ac.view(), wc.view());
  return out;
}

NDArray quantized_matmul(const NDArray& a, const NDArray& a_scale, const NDArray& w, const NDArray& w_scale,
                         const NDArray* bias) {
  constexpr std::string_view op = "quantized_matmul";
  check_int8_operands(op, a, w);
  check_same_device(op, {&a, &a_scale, &w_scale});
  const std::int64_t m = a.shape()[0];
  const std::int64_t n = w.shape()[0];
  check_vector(op, "a_scale", a_scale, m);
  check_vector(op, "w_scale", w_scale, n);
  NDArray bias_c;
  if (bias != nullptr) {
    check_same_device(op, {&a, bias});
    check_vector(op, "bias", *bias, n);
    bias_c = bias->compact();
  }
  const NDArray ac = a.compact();
  const NDArray wc = w.compact();
  const NDArray as = a_scale.compact();
  const NDArray ws = w_scale.compact();
  NDArray out = NDArray::empty({m, n}, DType::Float32, a.device(), op);
  if (out.size() > 0) {
    backend_of(out).quantized_matmul(out.view(), ac.view(), as.view(), wc.view(), ws.view(),
                                     bias != nullptr ? bias_c.view() : StridedView{});
  }
  return out;
}

NDArray quantize_with_scale(const NDArray& x, double scale) {
  constexpr std::string_view op = "quantize_with_scale";
  NEEDLE_CHECK(is_floating(x.dtype()), TypeError, op, ": x must be float32 or float64, got ", dtype_name(x.dtype()));
  NEEDLE_CHECK(scale > 0.0 && std::isfinite(scale), ValueError, op, ": scale must be finite and > 0, got ", scale);
  // x / scale clamped to [-127, 127] in float32, then rounded half to even by adding and subtracting
  // 1.5 * 2^23: in that range the sum's spacing is 1, so the addition itself rounds (to nearest, ties to
  // even, as float arithmetic does) and the subtraction is exact.
  constexpr double kRounder = 12582912.0;  // 1.5 * 2^23
  const NDArray y =
      binary(BinaryOp::Mul, x.astype(DType::Float32), Scalar(1.0 / static_cast<double>(static_cast<float>(scale))));
  const bool has_nan = y.size() > 0 && max(ne(y, y)).item().to<bool>();
  NEEDLE_CHECK(!has_nan, ValueError, op, ": x holds NaN (shape ", shape_str(x.shape()), ")");
  const NDArray clamped = binary(BinaryOp::Minimum, binary(BinaryOp::Maximum, y, Scalar(-127.0)), Scalar(127.0));
  const NDArray rounded = binary(BinaryOp::Sub, binary(BinaryOp::Add, clamped, Scalar(kRounder)), Scalar(kRounder));
  return rounded.astype(DType::Int8);
}

}  // namespace needle
