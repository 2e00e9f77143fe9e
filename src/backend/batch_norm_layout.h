// What the batch-norm kernels (Backend::batch_norm and batch_norm_backward) share: the check of the op
// layer's promise (contiguous (N, C, S) data and (C,) per-channel operands of one floating dtype) and
// the views the composed default builds on that layout.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "backend/view_checks.h"
#include "needle/backend/backend.h"

namespace needle::kernels {

struct ChannelLayout {
  std::int64_t batch = 0;     // N
  std::int64_t channels = 0;  // C
  std::int64_t spatial = 0;   // S
  DType dtype = DType::Float32;

  [[nodiscard]] std::int64_t size() const { return batch * channels * spatial; }
  // The number of values each channel's statistics are taken over.
  [[nodiscard]] std::int64_t per_channel() const { return batch * spatial; }
  // An (N, C, S) view of contiguous memory at `data`.
  [[nodiscard]] StridedView full(void* data) const {
    return {data, dtype, {batch, channels, spatial}, {channels * spatial, spatial, 1}};
  }
  // A per-channel array (`data` holds C values) repeated over N and S by zero strides.
  [[nodiscard]] StridedView channel_broadcast(void* data) const {
    return {data, dtype, {batch, channels, spatial}, {0, 1, 0}};
  }
  // The keepdims shape a reduction over N and S writes: (1, C, 1).
  [[nodiscard]] StridedView per_channel_view(void* data) const {
    return {data, dtype, {1, channels, 1}, {channels, 1, 1}};
  }
  // A (C,) array at `data`, and one value (`data` holds a single element) repeated C times by a zero stride.
  [[nodiscard]] StridedView vector(void* data) const { return {data, dtype, {channels}, {1}}; }
  [[nodiscard]] StridedView scalar_vector(void* data) const { return {data, dtype, {channels}, {0}}; }
};

// Checks that `data` (the (N, C, S) operands: x, y, g, dx) are contiguous 3-d arrays of one shape, that
// `per_channel` ((C,) operands: mean, var, weight, bias, dweight, dbias) are contiguous with C entries,
// that all share one floating dtype, and that each channel has at least one value. A failure is a bug
// above the backend, hence RuntimeError.
inline ChannelLayout channel_layout(std::string_view op, std::initializer_list<const StridedView*> data,
                                    std::initializer_list<const StridedView*> per_channel) {
  const StridedView& first = **data.begin();
  NEEDLE_CHECK(first.dtype == DType::Float32 || first.dtype == DType::Float64, RuntimeError, op,
               ": expected float32 or float64, got ", dtype_name(first.dtype));
  expect_rank(op, "input", first, 3);
  ChannelLayout layout;
  layout.batch = first.shape[0];
  layout.channels = first.shape[1];
  layout.spatial = first.shape[2];
  layout.dtype = first.dtype;
  for (const StridedView* view : data) {
    expect_shape(op, "operand", *view, first.shape);
    expect_dtype(op, "operand", *view, first.dtype);
    NEEDLE_CHECK(view->is_contiguous(), RuntimeError, op, ": operand of shape ", shape_str(view->shape),
                 " must be contiguous");
  }
  for (const StridedView* view : per_channel) {
    expect_shape(op, "per-channel operand", *view, {layout.channels});
    expect_dtype(op, "per-channel operand", *view, first.dtype);
    NEEDLE_CHECK(view->is_contiguous(), RuntimeError, op, ": per-channel operand must be contiguous");
  }
  NEEDLE_CHECK(layout.channels == 0 || layout.per_channel() >= 1, RuntimeError, op,
               ": needs at least one value per channel, got shape ", shape_str(first.shape));
  return layout;
}

}  // namespace needle::kernels
