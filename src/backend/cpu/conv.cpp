// The cpu backend's im2col and col2im: one pass over the columns, split over the thread pool by rows of
// output cells (im2col) or of image cells (col2im), so every chunk writes memory no other chunk does and
// results do not depend on the thread count. Unlike the composed default (a strided copy per kernel tap
// with runs of C elements), consecutive taps j of one kernel row read or write consecutive image cells,
// so with channels-last data each kernel row is one contiguous run of up to K * C elements, and the
// padding is written as zeros instead of being copied from a padded image.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

// Rows per parallel chunk are chosen so each chunk moves at least this many elements: below it, waking a
// thread costs more than the copy.
constexpr std::int64_t kParallelGrain = 32768;

std::int64_t grain_for(std::int64_t elements_per_row) {
  return std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(1, elements_per_row));
}

// dst[e] = src[e] for e < n. A kernel row of a few taps of one or two channels is a run of a few values,
// copied here without the call to memcpy that would cost more than the copy; longer runs take memcpy.
template <typename T>
inline void copy_run(T* dst, const T* src, std::int64_t n) {
  constexpr std::int64_t kShort = 8;
  if (n > kShort) {
    std::memcpy(dst, src, sizeof(T) * static_cast<std::size_t>(n));
    return;
  }
  for (std::int64_t e = 0; e < kShort; ++e) {
    if (e < n) dst[e] = src[e];
  }
}

template <typename T>
void im2col_rows(const kernels::ConvLayout& l, T* cols, const StridedView& image, std::int64_t first,
                 std::int64_t last) {
  const T* in = image.ptr<T>();
  const Strides& is = image.strides;
  // Channels-last with dense rows: a kernel row's taps inside the image are one run of memory. Other
  // layouts (the NCHW array the Conv layer permutes) have each image row gathered into that order, a
  // W x C transpose that reads the image contiguously along W, kept in a ring of K rows: the K image rows
  // one output row reads are consecutive, hence in distinct slots, and the next output row reuses the
  // ones it shares, so each image row is transposed once per chunk.
  const bool dense_rows = is[3] == 1 && is[2] == l.c;
  const std::int64_t row_size = l.w * l.c;
  std::vector<T> ring(dense_rows ? 0 : static_cast<std::size_t>(l.k * row_size));
  std::vector<std::int64_t> ring_row(dense_rows ? 0 : static_cast<std::size_t>(l.k), -1);  // n * H + iy held
  const std::int64_t kc = l.k * l.c;
  const std::int64_t cell = l.k * kc;  // column entries of one output cell
  for (std::int64_t r = first; r < last; ++r) {
    const std::int64_t n = r / l.h_out;
    const std::int64_t y = r % l.h_out;
    T* const cells = cols + r * l.w_out * cell;
    // With padding, zero the whole row of cells once (one call instead of up to three small ones per
    // cell and kernel row) and copy only the taps inside the image over it.
    const bool zeroed = l.padding > 0;
    if (zeroed) std::memset(cells, 0, sizeof(T) * static_cast<std::size_t>(l.w_out * cell));
    for (std::int64_t i = 0; i < l.k; ++i) {
      const std::int64_t iy = y * l.stride + i - l.padding;
      if (iy < 0 || iy >= l.h) {
        for (std::int64_t x = 0; x < l.w_out && !zeroed; ++x) {
          std::memset(cells + x * cell + i * kc, 0, sizeof(T) * static_cast<std::size_t>(kc));
        }
        continue;
      }
      const T* src = in + n * is[0] + iy * is[1];
      if (!dense_rows) {
        const auto slot = static_cast<std::size_t>(iy % l.k);
        T* row = ring.data() + static_cast<std::int64_t>(slot) * row_size;
        if (ring_row[slot] != n * l.h + iy) {
          ring_row[slot] = n * l.h + iy;
          for (std::int64_t c = 0; c < l.c; ++c) {
            for (std::int64_t ix = 0; ix < l.w; ++ix) row[ix * l.c + c] = src[c * is[3] + ix * is[2]];
          }
        }
        src = row;
      }
      for (std::int64_t x = 0; x < l.w_out; ++x) {
        T* out = cells + x * cell + i * kc;
        const kernels::ConvLayout::Taps js = l.taps(x, l.w);
        if (js.first >= js.last) {
          if (!zeroed) std::memset(out, 0, sizeof(T) * static_cast<std::size_t>(kc));
          continue;
        }
        if (!zeroed) {
          std::memset(out, 0, sizeof(T) * static_cast<std::size_t>(js.first * l.c));
          std::memset(out + js.last * l.c, 0, sizeof(T) * static_cast<std::size_t>((l.k - js.last) * l.c));
        }
        copy_run(out + js.first * l.c, src + (x * l.stride - l.padding + js.first) * l.c, (js.last - js.first) * l.c);
      }
    }
  }
}

template <typename T>
void col2im_rows(const kernels::ConvLayout& l, T* image, const T* cols, std::int64_t first, std::int64_t last) {
  const std::int64_t kc = l.k * l.c;
  const std::int64_t row_cols = l.w_out * l.k * kc;  // column entries of one row of output cells
  for (std::int64_t row = first; row < last; ++row) {
    const std::int64_t n = row / l.h;
    const std::int64_t iy = row % l.h;
    T* out = image + row * l.w * l.c;
    std::memset(out, 0, sizeof(T) * static_cast<std::size_t>(l.w * l.c));
    // The kernel rows i of the output rows y with y * stride + i - padding = iy, in a fixed order.
    for (std::int64_t i = 0; i < l.k; ++i) {
      const std::int64_t t = iy + l.padding - i;
      if (t < 0 || t % l.stride != 0 || t / l.stride >= l.h_out) continue;
      const T* src = cols + (n * l.h_out + t / l.stride) * row_cols + i * kc;
      for (std::int64_t x = 0; x < l.w_out; ++x, src += l.k * kc) {
        const kernels::ConvLayout::Taps js = l.taps(x, l.w);
        if (js.first >= js.last) continue;
        T* dst = out + (x * l.stride - l.padding + js.first) * l.c;
        const T* from = src + js.first * l.c;
        const std::int64_t len = (js.last - js.first) * l.c;
        for (std::int64_t e = 0; e < len; ++e) dst[e] += from[e];
      }
    }
  }
}

}  // namespace

void CpuBackend::im2col_kernel(const kernels::ConvLayout& layout, const StridedView& cols, const StridedView& image,
                               std::int64_t /*stride*/, std::int64_t /*padding*/) {
  if (cols.size() == 0) return;
  dispatch_floating(layout.dtype, "im2col", [&]<typename T>() {
    T* out = cols.ptr<T>();
    parallel_for(0, layout.n * layout.h_out, grain_for(layout.w_out * layout.patch()),
                 [&](std::int64_t first, std::int64_t last) { im2col_rows<T>(layout, out, image, first, last); });
  });
}

void CpuBackend::col2im_kernel(const kernels::ConvLayout& layout, const StridedView& image, const StridedView& cols,
                               std::int64_t /*stride*/, std::int64_t /*padding*/) {
  if (image.size() == 0) return;
  dispatch_floating(layout.dtype, "col2im", [&]<typename T>() {
    T* out = image.ptr<T>();
    const T* in = cols.ptr<T>();
    // Each image row gathers from about K / stride rows of output cells.
    const std::int64_t per_row = layout.w_out * layout.patch() * layout.k / layout.stride + layout.w * layout.c;
    parallel_for(0, layout.n * layout.h, grain_for(per_row),
                 [&](std::int64_t first, std::int64_t last) { col2im_rows<T>(layout, out, in, first, last); });
  });
}

}  // namespace needle
