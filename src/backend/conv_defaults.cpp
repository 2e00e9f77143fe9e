// The Backend base class's im2col and col2im, composed from fill, copy and binary: one strided copy (or
// add) per kernel tap over the output cells whose tap lands inside the image. Any device with those
// primitives (CUDA included) runs the convolution ops through them; they make K * K passes with an inner
// run of only C elements, which is why the cpu backend has kernels of its own.
#include <algorithm>
#include <cstdint>

#include "needle/backend/backend.h"

namespace needle {

namespace {

// The output cells [first, last) along one axis whose tap `tap` reads input position
// pos * stride + tap - padding inside [0, extent).
struct Range {
  std::int64_t first;
  std::int64_t last;
};
Range cells_inside(std::int64_t tap, std::int64_t extent, std::int64_t out_extent, std::int64_t stride,
                   std::int64_t padding) {
  const std::int64_t low = padding - tap;                // pos * stride >= low
  const std::int64_t high = extent - 1 + padding - tap;  // pos * stride <= high
  if (high < 0) return {0, 0};
  const std::int64_t first = low > 0 ? (low + stride - 1) / stride : 0;
  return {first, std::min(out_extent, high / stride + 1)};
}

void* advance(void* data, DType dtype, std::int64_t elements) {
  return static_cast<char*>(data) + elements * static_cast<std::int64_t>(itemsize(dtype));
}

// Calls fn(cols_view, image_view) for every tap (i, j) with at least one output cell inside the image:
// the (N, ny, nx, C) views of that tap's columns and of the image cells they hold.
template <typename Fn>
void for_each_tap(const kernels::ConvLayout& l, const StridedView& image, const StridedView& cols, Fn&& fn) {
  const Strides& is = image.strides;
  const std::int64_t tap_cells = l.patch();
  for (std::int64_t i = 0; i < l.k; ++i) {
    const Range ys = cells_inside(i, l.h, l.h_out, l.stride, l.padding);
    for (std::int64_t j = 0; j < l.k; ++j) {
      const Range xs = cells_inside(j, l.w, l.w_out, l.stride, l.padding);
      if (ys.first >= ys.last || xs.first >= xs.last) continue;
      const Shape shape{l.n, ys.last - ys.first, xs.last - xs.first, l.c};
      const StridedView col_view{
          advance(cols.data, l.dtype, ((ys.first * l.w_out + xs.first) * l.k * l.k + i * l.k + j) * l.c), l.dtype,
          shape, Strides{l.h_out * l.w_out * tap_cells, l.w_out * tap_cells, tap_cells, 1}};
      const StridedView image_view{
          advance(image.data, l.dtype,
                  (ys.first * l.stride + i - l.padding) * is[1] + (xs.first * l.stride + j - l.padding) * is[2]),
          l.dtype, shape, Strides{is[0], is[1] * l.stride, is[2] * l.stride, is[3]}};
      fn(col_view, image_view);
    }
  }
}

}  // namespace

// Composed: zeros, then one strided copy per tap.
void Backend::im2col_kernel(const kernels::ConvLayout& layout, const StridedView& cols, const StridedView& image,
                            std::int64_t /*stride*/, std::int64_t /*padding*/) {
  if (cols.size() == 0) return;
  fill(cols, Scalar(0.0));
  for_each_tap(layout, image, cols, [&](const StridedView& col, const StridedView& img) { copy(col, img); });
}

// Composed: zeros, then one in-place strided add per tap (within a tap the output cells read distinct
// image cells, so each add is element-wise; overlaps between taps are summed by successive adds).
void Backend::col2im_kernel(const kernels::ConvLayout& layout, const StridedView& image, const StridedView& cols,
                            std::int64_t /*stride*/, std::int64_t /*padding*/) {
  if (image.size() == 0) return;
  fill(image, Scalar(0.0));
  for_each_tap(layout, image, cols,
               [&](const StridedView& col, const StridedView& img) { binary(BinaryOp::Add, img, img, col); });
}

}  // namespace needle
