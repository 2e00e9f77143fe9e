// What the fused neural-network kernels (softmax, layer_norm and their backward passes) share: the
// check of the op layer's promise (contiguous operands of one shape and one floating dtype) and the
// rows x cols reading of those operands, with cols the last dimension.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "backend/view_checks.h"
#include "needle/backend/backend.h"

namespace needle::kernels {

struct RowLayout {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  DType dtype = DType::Float32;

  [[nodiscard]] std::int64_t size() const { return rows * cols; }
  // A rows x cols view of contiguous memory at `data`.
  [[nodiscard]] StridedView full(void* data) const { return {data, dtype, {rows, cols}, {cols, 1}}; }
  // A per-row statistic (`data` holds one value per row) repeated along each row by a zero stride.
  [[nodiscard]] StridedView row_broadcast(void* data) const { return {data, dtype, {rows, cols}, {1, 0}}; }
  // The keepdims shape a row reduction writes: one value per row.
  [[nodiscard]] StridedView per_row(void* data) const { return {data, dtype, {rows, 1}, {1, 1}}; }
  // One value (`data` holds a single element) seen as a rows x 1 array by zero strides.
  [[nodiscard]] StridedView scalar_per_row(void* data) const { return {data, dtype, {rows, 1}, {0, 0}}; }
};

// Checks that `out` and every input are contiguous with out's shape and one floating dtype, and returns
// their rows x cols layout (a 0-d array is one row of one column). A failure is a bug above the backend,
// hence RuntimeError.
inline RowLayout row_layout(std::string_view op, const StridedView& out,
                            std::initializer_list<const StridedView*> inputs) {
  NEEDLE_CHECK(out.dtype == DType::Float32 || out.dtype == DType::Float64, RuntimeError, op,
               ": expected float32 or float64, got ", dtype_name(out.dtype));
  NEEDLE_CHECK(out.is_contiguous(), RuntimeError, op, ": output of shape ", shape_str(out.shape),
               " must be contiguous");
  for (const StridedView* in : inputs) {
    expect_shape(op, "input", *in, out.shape);
    expect_dtype(op, "input", *in, out.dtype);
    NEEDLE_CHECK(in->is_contiguous(), RuntimeError, op, ": input of shape ", shape_str(in->shape),
                 " must be contiguous");
  }
  RowLayout layout;
  layout.dtype = out.dtype;
  layout.cols = out.shape.empty() ? 1 : out.shape.back();
  layout.rows = layout.cols == 0 ? 0 : out.size() / layout.cols;
  return layout;
}

// Checks Backend::logsumexp's operands (contiguous, one floating dtype, out of in's shape less the last
// axis) and returns the rows x cols layout of `in`; unlike row_layout, rows stay counted when cols is 0.
inline RowLayout logsumexp_layout(const StridedView& out, const StridedView& in) {
  NEEDLE_CHECK(in.dtype == DType::Float32 || in.dtype == DType::Float64, RuntimeError,
               "logsumexp: expected float32 or float64, got ", dtype_name(in.dtype));
  expect_dtype("logsumexp", "output", out, in.dtype);
  const Shape rows_shape = in.shape.empty() ? Shape{} : Shape(in.shape.begin(), in.shape.end() - 1);
  expect_shape("logsumexp", "output", out, rows_shape);
  NEEDLE_CHECK(in.is_contiguous() && out.is_contiguous(), RuntimeError, "logsumexp: input of shape ",
               shape_str(in.shape), " and output of shape ", shape_str(out.shape), " must be contiguous");
  RowLayout layout;
  layout.dtype = in.dtype;
  layout.cols = in.shape.empty() ? 1 : in.shape.back();
  layout.rows = numel(rows_shape);
  return layout;
}

// The checks of Backend::sgd_update: row_layout's over param, grad and (when present) the momentum buffer,
// which may be absent only without momentum. Returns the number of elements.
inline std::int64_t sgd_layout(const StridedView& param, const StridedView& grad, const StridedView& momentum_buffer,
                               const SgdStep& step) {
  const bool buffered = momentum_buffer.data != nullptr;
  NEEDLE_CHECK(buffered || step.momentum == 0.0, RuntimeError, "sgd_update: momentum ", step.momentum,
               " needs a momentum buffer");
  const RowLayout layout =
      buffered ? row_layout("sgd_update", param, {&grad, &momentum_buffer}) : row_layout("sgd_update", param, {&grad});
  return layout.size();
}

}  // namespace needle::kernels
