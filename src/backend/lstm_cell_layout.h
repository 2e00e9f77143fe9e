// What every backend's fused LSTM cell kernels share: the check of the op layer's promise (2-D operands
// of (B, H) and (B, 4H), one floating dtype, unit column stride) and row addressing with any row stride.
#pragma once

#include <cstdint>
#include <string_view>

#include "backend/view_checks.h"
#include "needle/backend/backend.h"

namespace needle::kernels {

struct LstmLayout {
  std::int64_t batch = 0;
  std::int64_t hidden = 0;
  DType dtype = DType::Float32;
};

// An absent optional operand (gates2, c_prev, dc_prev): no data.
inline bool present(const StridedView& v) { return v.data != nullptr; }

// Row b of a 2-D operand (a row stride of 0 reads the same row for every b).
template <typename T>
T* row_ptr(const StridedView& v, std::int64_t b) {
  return v.ptr<T>() + b * v.strides[0];
}

namespace detail {

inline void expect_lstm_operand(std::string_view op, std::string_view name, const StridedView& v, std::int64_t rows,
                                std::int64_t cols, DType dtype, bool output) {
  NEEDLE_CHECK(v.ndim() == 2 && v.strides.size() == 2 && v.shape[0] == rows && v.shape[1] == cols, RuntimeError, op,
               ": ", name, " must have shape (", rows, ", ", cols, "), got ", shape_str(v.shape));
  expect_dtype(op, name, v, dtype);
  NEEDLE_CHECK(cols <= 1 || v.strides[1] == 1, RuntimeError, op, ": ", name, " must have unit column stride, got ",
               "strides ", shape_str(v.strides));
  NEEDLE_CHECK(!output || rows <= 1 || v.strides[0] != 0, RuntimeError, op, ": output ", name,
               " must not repeat one row");
}

}  // namespace detail

// Checks the operands of lstm_cell (outputs h and c first) and returns the batch and hidden sizes. A
// failure is a bug above the backend, hence RuntimeError.
inline LstmLayout lstm_cell_layout(std::string_view op, const StridedView& h, const StridedView& c,
                                   const StridedView& gates, const StridedView& gates2, const StridedView& c_prev) {
  NEEDLE_CHECK(h.dtype == DType::Float32 || h.dtype == DType::Float64, RuntimeError, op,
               ": expected float32 or float64, got ", dtype_name(h.dtype));
  NEEDLE_CHECK(h.ndim() == 2, RuntimeError, op, ": h must be 2-D (batch, hidden), got shape ", shape_str(h.shape));
  const LstmLayout layout{h.shape[0], h.shape[1], h.dtype};
  const std::int64_t b = layout.batch;
  const std::int64_t n = layout.hidden;
  detail::expect_lstm_operand(op, "h", h, b, n, layout.dtype, true);
  detail::expect_lstm_operand(op, "c", c, b, n, layout.dtype, true);
  detail::expect_lstm_operand(op, "gates", gates, b, 4 * n, layout.dtype, false);
  if (present(gates2)) detail::expect_lstm_operand(op, "gates2", gates2, b, 4 * n, layout.dtype, false);
  if (present(c_prev)) detail::expect_lstm_operand(op, "c_prev", c_prev, b, n, layout.dtype, false);
  return layout;
}

// Checks the operands of lstm_cell_backward (outputs dgates and dc_prev first).
inline LstmLayout lstm_cell_backward_layout(std::string_view op, const StridedView& dgates, const StridedView& dc_prev,
                                            const StridedView& dh, const StridedView& dc, const StridedView& gates,
                                            const StridedView& gates2, const StridedView& c_prev) {
  const LstmLayout layout = lstm_cell_layout(op, dh, dc, gates, gates2, c_prev);
  detail::expect_lstm_operand(op, "dgates", dgates, layout.batch, 4 * layout.hidden, layout.dtype, true);
  NEEDLE_CHECK(present(dc_prev) == present(c_prev), RuntimeError, op, ": dc_prev must be given exactly when c_prev is");
  if (present(dc_prev)) {
    detail::expect_lstm_operand(op, "dc_prev", dc_prev, layout.batch, layout.hidden, layout.dtype, true);
  }
  return layout;
}

}  // namespace needle::kernels
