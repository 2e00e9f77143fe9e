// What the convolution kernels (Backend::im2col and col2im) share: the check of the op layer's promise
// (an (N, H, W, C) image and its contiguous (N, H_out, W_out, K, K, C) columns of one floating dtype) and
// the range of kernel taps that fall inside the image, so that no kernel tests every tap for padding.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "backend/view_checks.h"
#include "needle/backend/backend.h"

namespace needle::kernels {

struct ConvLayout {
  std::int64_t n = 0, h = 0, w = 0, c = 0, k = 0, h_out = 0, w_out = 0, stride = 1, padding = 0;
  DType dtype = DType::Float32;

  // The taps t in [first, last) of output position `pos` whose input position pos * stride + t - padding
  // lies in [0, extent); first >= last when none does.
  struct Taps {
    std::int64_t first;
    std::int64_t last;
  };
  [[nodiscard]] Taps taps(std::int64_t pos, std::int64_t extent) const {
    const std::int64_t start = pos * stride - padding;
    return {std::max<std::int64_t>(0, -start), std::min(k, extent - start)};
  }
  [[nodiscard]] std::int64_t patch() const { return k * k * c; }
};

// Checks that `image` is (N, H, W, C) (any strides) and `cols` a contiguous (N, H_out, W_out, K, K, C) of
// the same floating dtype with H_out = (H + 2 * padding - K) / stride + 1 (likewise W_out). A failure is a
// bug above the backend, hence RuntimeError.
inline ConvLayout conv_layout(std::string_view op, const StridedView& image, const StridedView& cols,
                              std::int64_t stride, std::int64_t padding) {
  NEEDLE_CHECK(image.dtype == DType::Float32 || image.dtype == DType::Float64, RuntimeError, op,
               ": expected float32 or float64, got ", dtype_name(image.dtype));
  expect_rank(op, "image", image, 4);
  expect_rank(op, "columns", cols, 6);
  expect_dtype(op, "columns", cols, image.dtype);
  NEEDLE_CHECK(stride >= 1 && padding >= 0, RuntimeError, op, ": bad stride ", stride, " or padding ", padding);
  ConvLayout layout;
  layout.n = image.shape[0];
  layout.h = image.shape[1];
  layout.w = image.shape[2];
  layout.c = image.shape[3];
  layout.k = cols.shape[3];
  layout.stride = stride;
  layout.padding = padding;
  layout.dtype = image.dtype;
  NEEDLE_CHECK(layout.k >= 1 && layout.h + 2 * padding >= layout.k && layout.w + 2 * padding >= layout.k, RuntimeError,
               op, ": kernel size ", layout.k, " does not fit the image ", shape_str(image.shape), " padded by ",
               padding);
  layout.h_out = (layout.h + 2 * padding - layout.k) / stride + 1;
  layout.w_out = (layout.w + 2 * padding - layout.k) / stride + 1;
  expect_shape(op, "columns", cols, {layout.n, layout.h_out, layout.w_out, layout.k, layout.k, layout.c});
  NEEDLE_CHECK(cols.is_contiguous(), RuntimeError, op, ": columns of shape ", shape_str(cols.shape),
               " must be contiguous");
  return layout;
}

}  // namespace needle::kernels
