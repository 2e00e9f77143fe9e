// im2col and col2im as plain loops over every column entry, straight from the formulas in kernels.def: the
// reading the faster backends are tested against.
#include <cstdint>

#include "backend/ref/ref_kernels.h"

namespace needle::ref {

namespace {

// Calls fn(column_index, image_index) for every column entry, image_index = -1 where the entry lies in
// the padding; indices are in elements from each view's data.
template <typename Fn>
void for_each_entry(const kernels::ConvLayout& l, const StridedView& image, Fn&& fn) {
  const Strides& is = image.strides;
  std::int64_t col = 0;
  for (std::int64_t n = 0; n < l.n; ++n) {
    for (std::int64_t y = 0; y < l.h_out; ++y) {
      for (std::int64_t x = 0; x < l.w_out; ++x) {
        for (std::int64_t i = 0; i < l.k; ++i) {
          for (std::int64_t j = 0; j < l.k; ++j) {
            const std::int64_t iy = y * l.stride + i - l.padding;
            const std::int64_t ix = x * l.stride + j - l.padding;
            const bool inside = iy >= 0 && iy < l.h && ix >= 0 && ix < l.w;
            for (std::int64_t c = 0; c < l.c; ++c, ++col) {
              fn(col, inside ? n * is[0] + iy * is[1] + ix * is[2] + c * is[3] : -1);
            }
          }
        }
      }
    }
  }
}

}  // namespace

void im2col(const kernels::ConvLayout& layout, const StridedView& cols, const StridedView& image,
            std::int64_t /*stride*/, std::int64_t /*padding*/) {
  dispatch_floating(layout.dtype, "im2col", [&]<typename T>() {
    T* out = cols.ptr<T>();
    const T* in = image.ptr<T>();
    for_each_entry(layout, image, [&](std::int64_t col, std::int64_t at) { out[col] = at < 0 ? T(0) : in[at]; });
  });
}

void col2im(const kernels::ConvLayout& layout, const StridedView& image, const StridedView& cols,
            std::int64_t /*stride*/, std::int64_t /*padding*/) {
  dispatch_floating(layout.dtype, "col2im", [&]<typename T>() {
    T* out = image.ptr<T>();
    const T* in = cols.ptr<T>();
    const Strides& is = image.strides;
    for (std::int64_t n = 0; n < layout.n; ++n) {
      for (std::int64_t y = 0; y < layout.h; ++y) {
        for (std::int64_t x = 0; x < layout.w; ++x) {
          for (std::int64_t c = 0; c < layout.c; ++c) out[n * is[0] + y * is[1] + x * is[2] + c * is[3]] = T(0);
        }
      }
    }
    for_each_entry(layout, image, [&](std::int64_t col, std::int64_t at) {
      if (at >= 0) out[at] += in[col];
    });
  });
}

}  // namespace needle::ref
