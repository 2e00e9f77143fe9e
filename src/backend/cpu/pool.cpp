// The cpu backend's max pooling: one pass over each image plane that writes every window's maximum and
// where it was (max_pool2d), and one pass that sends each window's gradient back to that cell
// (max_pool2d_backward), instead of the composition the array layer falls back on elsewhere (a padded
// copy, the windows unfolded into a K * K times larger array, an argmax and a gather; backward a
// scatter_add into a zeroed array). Both split the N * C planes over the thread pool: planes are
// independent, so every chunk writes memory no other chunk does and results do not depend on the thread
// count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

// Planes per parallel chunk are chosen so each chunk reads at least this many cells: below it, waking a
// thread costs more than the pass.
constexpr std::int64_t kParallelGrain = 32768;

std::int64_t planes_per_chunk(std::int64_t cells_per_plane) {
  return std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(1, cells_per_plane));
}

// Keeps the first maximum seen, a NaN beating every number and the first NaN staying (as argmax does).
template <typename T>
struct RunningMax {
  T value;
  std::int64_t at;
  void offer(T x, std::int64_t position) {
    if (!std::isnan(value) && (x > value || std::isnan(x))) {
      value = x;
      at = position;
    }
  }
};

// Any window size, stride, padding and image strides: the taps of each window that lie inside the image,
// in row-major order.
template <typename T>
void pool_plane(const kernels::PoolLayout& l, const T* plane, std::int64_t row_stride, std::int64_t col_stride, T* out,
                std::int64_t* indices) {
  for (std::int64_t y = 0; y < l.h_out; ++y) {
    const kernels::ConvLayout::Taps is = l.taps(y, l.h);
    const std::int64_t top = y * l.stride - l.padding;
    for (std::int64_t x = 0; x < l.w_out; ++x, ++out, ++indices) {
      const kernels::ConvLayout::Taps js = l.taps(x, l.w);
      const std::int64_t left = x * l.stride - l.padding;
      RunningMax<T> best{plane[(top + is.first) * row_stride + (left + js.first) * col_stride],
                         (top + is.first) * l.w + left + js.first};
      for (std::int64_t i = is.first; i < is.last; ++i) {
        const T* row = plane + (top + i) * row_stride;
        for (std::int64_t j = js.first; j < js.last; ++j)
          best.offer(row[(left + j) * col_stride], (top + i) * l.w + left + j);
      }
      *out = best.value;
      *indices = best.at;
    }
  }
}

// The common case (2 x 2 windows, stride 2, no padding, rows of unit stride): four loads per window, no
// tap bounds.
template <typename T>
void pool_plane_2x2(const kernels::PoolLayout& l, const T* plane, std::int64_t row_stride, T* out,
                    std::int64_t* indices) {
  for (std::int64_t y = 0; y < l.h_out; ++y) {
    const T* upper = plane + 2 * y * row_stride;
    const T* lower = upper + row_stride;
    const std::int64_t first = 2 * y * l.w;
    for (std::int64_t x = 0; x < l.w_out; ++x) {
      const std::int64_t at = first + 2 * x;
      RunningMax<T> best{upper[2 * x], at};
      best.offer(upper[2 * x + 1], at + 1);
      best.offer(lower[2 * x], at + l.w);
      best.offer(lower[2 * x + 1], at + l.w + 1);
      out[y * l.w_out + x] = best.value;
      indices[y * l.w_out + x] = best.at;
    }
  }
}

}  // namespace

void CpuBackend::max_pool2d_kernel(const kernels::PoolLayout& layout, const StridedView& out,
                                   const StridedView& indices, const StridedView& image, std::int64_t /*kernel*/,
                                   std::int64_t /*stride*/, std::int64_t /*padding*/) {
  if (out.size() == 0) return;
  dispatch_floating(layout.dtype, "max_pool2d", [&]<typename T>() {
    const T* in = image.ptr<T>();
    T* values = out.ptr<T>();
    auto* where = indices.ptr<std::int64_t>();
    const Strides& s = image.strides;
    const bool two_by_two = layout.k == 2 && layout.stride == 2 && layout.padding == 0 && s[3] == 1;
    const std::int64_t windows = layout.windows();
    parallel_for(0, layout.planes(), planes_per_chunk(layout.plane_size()), [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t p = first; p < last; ++p) {
        const T* plane = in + (p / layout.c) * s[0] + (p % layout.c) * s[1];
        if (two_by_two) {
          pool_plane_2x2(layout, plane, s[2], values + p * windows, where + p * windows);
        } else {
          pool_plane(layout, plane, s[2], s[3], values + p * windows, where + p * windows);
        }
      }
    });
  });
}

void CpuBackend::max_pool2d_backward_kernel(const kernels::PoolLayout& layout, const StridedView& grad_image,
                                            const StridedView& grad_out, const StridedView& indices) {
  if (grad_image.size() == 0) return;
  dispatch_floating(layout.dtype, "max_pool2d_backward", [&]<typename T>() {
    T* image = grad_image.ptr<T>();
    const T* g = grad_out.ptr<T>();
    const auto* where = indices.ptr<std::int64_t>();
    const std::int64_t plane_size = layout.plane_size();
    const std::int64_t windows = layout.windows();
    parallel_for(0, layout.planes(), planes_per_chunk(plane_size), [&](std::int64_t first, std::int64_t last) {
      std::memset(image + first * plane_size, 0, sizeof(T) * static_cast<std::size_t>((last - first) * plane_size));
      for (std::int64_t p = first; p < last; ++p) {
        T* plane = image + p * plane_size;
        const T* from = g + p * windows;
        const std::int64_t* at = where + p * windows;
        for (std::int64_t o = 0; o < windows; ++o) plane[at[o]] += from[o];
      }
    });
  });
}

}  // namespace needle
