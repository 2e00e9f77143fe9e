// The Backend base class's versions of the int8 quantization kernels, composed from the primitives (unary,
// reduce, binary, where, copy, matmul) on memory from allocate(), so that a device without int8 kernels of
// its own still runs them. quantize_rows gives the fused kernels' results bit for bit; quantized_matmul
// rounds the scaling and the bias separately where the fused kernels use one fused multiply-add, so its
// results may differ from theirs in the last bit.
#include <cstdint>
#include <initializer_list>
#include <limits>

#include "backend/scratch.h"
#include "needle/backend/backend.h"

namespace needle {

namespace {

using kernels::Scratch;

// float32 scalars in device memory, each read as an array of any shape by zero strides.
class FloatConstants {
 public:
  FloatConstants(Backend& backend, std::initializer_list<float> values)
      : scratch_(backend, static_cast<std::int64_t>(values.size()), DType::Float32) {
    std::int64_t i = 0;
    for (const float value : values) backend.fill(broadcast(i++, {1}), Scalar(static_cast<double>(value)));
  }
  [[nodiscard]] StridedView broadcast(std::int64_t i, const Shape& shape) const {
    return {static_cast<float*>(scratch_.data()) + i, DType::Float32, shape, Shape(shape.size(), 0)};
  }

 private:
  Scratch scratch_;
};

}  // namespace

// Composed: |x|, its row maxima, the scale and 127 / amax chosen by `where` between regular rows and rows of
// zeros (or NaN, or an infinity), then x * (127 / amax) rounded half to even by adding and subtracting
// 1.5 * 2^23 in float32 (exact for |y| < 2^22, and here |y| <= 127), clamped and converted to int8.
void Backend::quantize_rows_kernel(const kernels::RowLayout& layout, const StridedView& values,
                                   const StridedView& scale, const StridedView& x) {
  const std::int64_t rows = layout.rows;
  const std::int64_t cols = layout.cols;
  if (rows == 0) return;
  const StridedView row_scale{scale.data, DType::Float32, {rows}, {1}};
  if (cols == 0) {
    fill(row_scale, Scalar(1.0));
    return;
  }
  constexpr float kRoundingShift = 12582912.0F;  // 1.5 * 2^23: float32 sums of this size have no fraction
  const FloatConstants constant(*this,
                                {0.0F, 1.0F, 127.0F, -127.0F, kRoundingShift, std::numeric_limits<float>::infinity()});
  const Shape per_row = {rows};
  const Shape full = {rows, cols};
  const StridedView x_full{x.data, DType::Float32, full, {cols, 1}};

  Scratch magnitude(*this, rows * cols, DType::Float32);
  const StridedView magnitude_full{magnitude.data(), DType::Float32, full, {cols, 1}};
  unary(UnaryOp::Abs, magnitude_full, x_full);
  Scratch amax(*this, rows, DType::Float32);
  reduce(ReduceOp::Max, {amax.data(), DType::Float32, {rows, 1}, {1, 1}}, magnitude_full);
  const StridedView amax_rows{amax.data(), DType::Float32, per_row, {1}};

  // Regular rows: 0 < amax < inf (false for NaN).
  Scratch flags(*this, 2 * rows, DType::Bool);
  const StridedView regular{flags.data(), DType::Bool, per_row, {1}};
  const StridedView other{static_cast<bool*>(flags.data()) + rows, DType::Bool, per_row, {1}};
  binary(BinaryOp::Gt, regular, amax_rows, constant.broadcast(0, per_row));
  binary(BinaryOp::Lt, other, amax_rows, constant.broadcast(5, per_row));
  binary(BinaryOp::Minimum, regular, regular, other);
  binary(BinaryOp::Eq, other, amax_rows, constant.broadcast(0, per_row));  // now: the row is all zeros

  Scratch quotients(*this, 2 * rows, DType::Float32);
  const StridedView ratio{quotients.data(), DType::Float32, per_row, {1}};
  const StridedView inverse{static_cast<float*>(quotients.data()) + rows, DType::Float32, per_row, {1}};
  binary(BinaryOp::Div, ratio, amax_rows, constant.broadcast(2, per_row));
  where(inverse, other, constant.broadcast(1, per_row), amax_rows);  // an irregular row's scale
  where(row_scale, regular, ratio, inverse);
  binary(BinaryOp::Div, ratio, constant.broadcast(2, per_row), amax_rows);
  where(inverse, regular, ratio, constant.broadcast(0, per_row));

  // magnitude now holds the scaled rows; irregular rows become zeros before anything is rounded.
  binary(BinaryOp::Mul, magnitude_full, x_full, {inverse.data, DType::Float32, full, {1, 0}});
  where(magnitude_full, {regular.data, DType::Bool, full, {1, 0}}, magnitude_full, constant.broadcast(0, full));
  binary(BinaryOp::Add, magnitude_full, magnitude_full, constant.broadcast(4, full));
  binary(BinaryOp::Sub, magnitude_full, magnitude_full, constant.broadcast(4, full));
  binary(BinaryOp::Maximum, magnitude_full, magnitude_full, constant.broadcast(3, full));
  binary(BinaryOp::Minimum, magnitude_full, magnitude_full, constant.broadcast(2, full));
  copy({values.data, DType::Int8, full, {cols, 1}}, magnitude_full);
}

// Composed: both operands widened to int32, then the int32 matmul primitive with w read transposed.
void Backend::int8_matmul_kernel(const kernels::Int8MatmulLayout& layout, const StridedView& out, const StridedView& a,
                                 const StridedView& w) {
  const auto [m, n, k] = layout;
  if (m == 0 || n == 0) return;
  Scratch a_wide(*this, m * k, DType::Int32);
  Scratch w_wide(*this, n * k, DType::Int32);
  copy({a_wide.data(), DType::Int32, {m, k}, {k, 1}}, a);
  copy({w_wide.data(), DType::Int32, {n, k}, {k, 1}}, w);
  matmul(out, {a_wide.data(), DType::Int32, {m, k}, {k, 1}}, {w_wide.data(), DType::Int32, {k, n}, {1, k}});
}

// Composed: int8_matmul into an int32 temporary, converted, times the outer product of the scales, plus the
// bias.
void Backend::quantized_matmul_kernel(const kernels::Int8MatmulLayout& layout, const StridedView& out,
                                      const StridedView& a, const StridedView& a_scale, const StridedView& w,
                                      const StridedView& w_scale, const StridedView& bias) {
  const auto [m, n, k] = layout;
  if (m == 0 || n == 0) return;
  Scratch acc(*this, m * n, DType::Int32);
  int8_matmul({acc.data(), DType::Int32, {m, n}, {n, 1}}, a, w);
  copy(out, {acc.data(), DType::Int32, {m, n}, {n, 1}});
  Scratch scales(*this, m * n, DType::Float32);
  const StridedView scales_full{scales.data(), DType::Float32, {m, n}, {n, 1}};
  binary(BinaryOp::Mul, scales_full, {a_scale.data, DType::Float32, {m, n}, {1, 0}},
         {w_scale.data, DType::Float32, {m, n}, {0, 1}});
  binary(BinaryOp::Mul, out, out, scales_full);
  if (kernels::present(bias)) binary(BinaryOp::Add, out, out, {bias.data, DType::Float32, {m, n}, {0, 1}});
}

}  // namespace needle
