// The cpu backend's max pooling: one pass over each image plane that writes every window's maximum and
// where it was (max_pool2d), and one pass that sends each window's gradient back to that cell
// (max_pool2d_backward), instead of the composition the array layer falls back on elsewhere (a padded
// copy, the windows unfolded into a K * K times larger array, an argmax and a gather; backward a
// scatter_add into a zeroed array). Both split the N * C planes over the thread pool: planes are
// independent, so every chunk writes memory no other chunk does and results do not depend on the thread
// count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "backend/cpu/cpu_backend.h"
#include "needle/core/error.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

// Planes per parallel chunk are chosen so each chunk reads at least this many cells: below it, waking a
// thread costs more than the pass.
constexpr std::int64_t kParallelGrain = 32768;

std::int64_t planes_per_chunk(std::int64_t cells_per_plane) {
  return std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(1, cells_per_plane));
}

// Whether `x` replaces `best` as a window's maximum: the first maximum stays, a NaN beats every number and the
// first NaN stays (as argmax does). Written without branches: which cell of a window of random data holds its
// maximum is a coin toss the branch predictor keeps losing.
template <typename T>
[[gnu::always_inline]] inline bool replaces(T x, T best) {
  return static_cast<bool>(static_cast<int>(!std::isnan(best)) &
                           (static_cast<int>(x > best) | static_cast<int>(std::isnan(x))));
}

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
      T best = plane[(top + is.first) * row_stride + (left + js.first) * col_stride];
      std::int64_t at = (top + is.first) * l.w + left + js.first;
      for (std::int64_t i = is.first; i < is.last; ++i) {
        const T* row = plane + (top + i) * row_stride;
        for (std::int64_t j = js.first; j < js.last; ++j) {
          const T v = row[(left + j) * col_stride];
          const bool take = replaces(v, best);
          best = take ? v : best;
          at = take ? (top + i) * l.w + left + j : at;
        }
      }
      *out = best;
      *indices = at;
    }
  }
}

// `Bytes` bytes of T as one GCC vector (16: 4 floats or 2 doubles, SSE2, every x86-64; 32: 8 floats or 4
// doubles, AVX2); comparisons give the signed integer vector of the same width, all ones where true, which
// also holds each lane's choice of cell. Each width is compiled for the instruction set that has it (a
// 32-byte vector in an SSE2 build goes through memory and runs several times slower).
template <typename T, int Bytes>
struct Lanes;
template <int Bytes>
struct Lanes<float, Bytes> {
  typedef float Vec __attribute__((vector_size(Bytes)));
  typedef std::int32_t Mask __attribute__((vector_size(Bytes)));
  static constexpr int kCount = Bytes / 4;
};
template <int Bytes>
struct Lanes<double, Bytes> {
  typedef double Vec __attribute__((vector_size(Bytes)));
  typedef std::int64_t Mask __attribute__((vector_size(Bytes)));
  static constexpr int kCount = Bytes / 8;
};

// Lanes `First`, `First` + 2, `First` + 4, ... of the 2 * kCount lanes of `low` followed by `high`
// (__builtin_shufflevector wants its lane numbers as constants, hence the index pack).
// The result goes out through a reference: returning a vector by value from a function compiled without AVX
// changes the ABI, which GCC warns about.
template <int First, typename Vec, std::size_t... I>
[[gnu::always_inline]] inline void every_other_lane(const Vec& low, const Vec& high, Vec& lanes,
                                                    std::index_sequence<I...>) {
  lanes = __builtin_shufflevector(low, high, (First + 2 * static_cast<int>(I))...);
}

// The even and odd elements of the 2 * kCount consecutive elements at `from`.
template <typename T, int Bytes>
[[gnu::always_inline]] inline void deinterleave(const T* from, typename Lanes<T, Bytes>::Vec& even,
                                                typename Lanes<T, Bytes>::Vec& odd) {
  using L = Lanes<T, Bytes>;
  typename L::Vec low;
  typename L::Vec high;
  std::memcpy(&low, from, sizeof(low));
  std::memcpy(&high, from + L::kCount, sizeof(high));
  every_other_lane<0>(low, high, even, std::make_index_sequence<L::kCount>{});
  every_other_lane<1>(low, high, odd, std::make_index_sequence<L::kCount>{});
}

// kCount 2 x 2 windows side by side: `upper` and `lower` hold their 2 * kCount cells of each row; writes the
// first `count` maxima and their positions, first_cell (upper[0]'s column) + 2 * lane + 0, 1, w or w + 1,
// chosen lane by lane as `replaces` does.
template <typename T, int Bytes>
[[gnu::always_inline]] inline void pool_lanes_2x2(const T* upper, const T* lower, std::int64_t w,
                                                  std::int64_t first_cell, std::int64_t count, T* values,
                                                  std::int64_t* offsets) {
  using Vec = typename Lanes<T, Bytes>::Vec;
  using Mask = typename Lanes<T, Bytes>::Mask;
  Vec a, b, c, d;
  deinterleave<T, Bytes>(upper, a, b);
  deinterleave<T, Bytes>(lower, c, d);
  Vec best = a;
  Mask cell = Mask{};  // 0: upper left, 1: upper right, 2: lower left, 3: lower right
  const auto offer = [&](const Vec& v, int which) {
    // x == x is false only in NaN lanes: the lane-wise NaN test, which clang-tidy takes for a typo.
    const Mask take = (best == best) & ((v > best) | (v != v));  // NOLINT(misc-redundant-expression)
    best = take ? v : best;
    cell = take ? Mask{} + which : cell;
  };
  offer(b, 1);
  offer(c, 2);
  offer(d, 3);
  for (std::int64_t lane = 0; lane < count; ++lane) {
    const std::int64_t which = cell[lane];
    values[lane] = best[lane];
    offsets[lane] = first_cell + 2 * lane + (which & 1) + (which >> 1) * w;
  }
}

// The common case (2 x 2 windows, stride 2, no padding, rows of unit stride) for planes [first, last):
// kCount windows at a time. A row's last windows, fewer than kCount or ending the row, go through a copy of
// their cells, so no window takes a scalar path with its unpredictable branches.
template <typename T, int Bytes>
[[gnu::always_inline]] inline void pool_planes_2x2(const kernels::PoolLayout& l, const T* image, const Strides& strides,
                                                   T* out, std::int64_t* indices, std::int64_t first,
                                                   std::int64_t last) {
  constexpr std::int64_t lanes = Lanes<T, Bytes>::kCount;
  const std::int64_t w = l.w;
  T upper_tail[2 * lanes] = {};
  T lower_tail[2 * lanes] = {};
  for (std::int64_t p = first; p < last; ++p) {
    const T* plane = image + (p / l.c) * strides[0] + (p % l.c) * strides[1];
    for (std::int64_t y = 0; y < l.h_out; ++y) {
      const T* upper = plane + 2 * y * strides[2];
      const T* lower = upper + strides[2];
      T* values = out + (p * l.h_out + y) * l.w_out;
      std::int64_t* where = indices + (p * l.h_out + y) * l.w_out;
      std::int64_t x = 0;
      // Whole vectors while the 2 * lanes cells of both rows exist (with W odd, the last window ends a row).
      for (; x + lanes <= l.w_out && 2 * (x + lanes) <= w; x += lanes) {
        pool_lanes_2x2<T, Bytes>(upper + 2 * x, lower + 2 * x, w, 2 * x, lanes, values + x, where + x);
      }
      for (; x < l.w_out; x += lanes) {
        const std::int64_t count = std::min(lanes, l.w_out - x);
        std::copy(upper + 2 * x, upper + 2 * (x + count), upper_tail);
        std::copy(lower + 2 * x, lower + 2 * (x + count), lower_tail);
        pool_lanes_2x2<T, Bytes>(upper_tail, lower_tail, w, 2 * x, count, values + x, where + x);
      }
      const std::int64_t row_start = 2 * y * w;
      for (std::int64_t i = 0; i < l.w_out; ++i) where[i] += row_start;
    }
  }
}

template <typename T>
void pool_planes_2x2_portable(const kernels::PoolLayout& l, const T* image, const Strides& strides, T* out,
                              std::int64_t* indices, std::int64_t first, std::int64_t last) {
  pool_planes_2x2<T, 16>(l, image, strides, out, indices, first, last);
}

template <typename T>
__attribute__((target("avx2"))) void pool_planes_2x2_avx2(const kernels::PoolLayout& l, const T* image,
                                                          const Strides& strides, T* out, std::int64_t* indices,
                                                          std::int64_t first, std::int64_t last) {
  pool_planes_2x2<T, 32>(l, image, strides, out, indices, first, last);
}

// Channels-last images (N, H, W, C in memory, as a convolution writes them) for rows [first, last) of the
// N * H_out output rows: each tap of a window is a run of C contiguous cells, one per plane, so the loops
// over channels compare C windows at once and vectorize, whatever the window size, stride and padding.
// out and indices are channels-last, so row r's windows are contiguous there too.
template <typename T>
[[gnu::always_inline]] inline void pool_rows_channels_last(const kernels::PoolLayout& l, const T* image,
                                                           const Strides& strides, T* out, std::int64_t* indices,
                                                           std::int64_t first, std::int64_t last) {
  const std::int64_t c = l.c;
  for (std::int64_t r = first; r < last; ++r) {
    const std::int64_t y = r % l.h_out;
    const T* picture = image + (r / l.h_out) * strides[0];
    const kernels::ConvLayout::Taps is = l.taps(y, l.h);
    const std::int64_t top = y * l.stride - l.padding;
    for (std::int64_t x = 0; x < l.w_out; ++x) {
      const kernels::ConvLayout::Taps js = l.taps(x, l.w);
      const std::int64_t left = x * l.stride - l.padding;
      T* best = out + (r * l.w_out + x) * c;
      std::int64_t* at = indices + (r * l.w_out + x) * c;
      const std::int64_t first_cell = (top + is.first) * l.w + left + js.first;
      const T* cells = picture + (top + is.first) * strides[2] + (left + js.first) * strides[3];
      for (std::int64_t ch = 0; ch < c; ++ch) {
        best[ch] = cells[ch];
        at[ch] = first_cell;
      }
      for (std::int64_t i = is.first; i < is.last; ++i) {
        for (std::int64_t j = js.first; j < js.last; ++j) {
          if (i == is.first && j == js.first) continue;
          const std::int64_t cell = (top + i) * l.w + left + j;
          cells = picture + (top + i) * strides[2] + (left + j) * strides[3];
          for (std::int64_t ch = 0; ch < c; ++ch) {
            const T v = cells[ch];
            const bool take = replaces(v, best[ch]);
            best[ch] = take ? v : best[ch];
            at[ch] = take ? cell : at[ch];
          }
        }
      }
    }
  }
}

template <typename T>
void pool_rows_channels_last_portable(const kernels::PoolLayout& l, const T* image, const Strides& strides, T* out,
                                      std::int64_t* indices, std::int64_t first, std::int64_t last) {
  pool_rows_channels_last<T>(l, image, strides, out, indices, first, last);
}

template <typename T>
__attribute__((target("avx2"))) void pool_rows_channels_last_avx2(const kernels::PoolLayout& l, const T* image,
                                                                  const Strides& strides, T* out, std::int64_t* indices,
                                                                  std::int64_t first, std::int64_t last) {
  pool_rows_channels_last<T>(l, image, strides, out, indices, first, last);
}

std::atomic<bool> g_force_portable{false};

bool use_avx2() {
  static const bool supported = __builtin_cpu_supports("avx2");
  return supported && !g_force_portable.load(std::memory_order_relaxed);
}

}  // namespace

namespace cpu {
void set_max_pool_portable(bool portable) { g_force_portable.store(portable, std::memory_order_relaxed); }
}  // namespace cpu

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
    const auto two_by_two_planes = use_avx2() ? &pool_planes_2x2_avx2<T> : &pool_planes_2x2_portable<T>;
    const std::int64_t windows = layout.windows();
    if (layout.channels_last) {
      const auto rows = use_avx2() ? &pool_rows_channels_last_avx2<T> : &pool_rows_channels_last_portable<T>;
      const std::int64_t row_cells = layout.w * layout.c * layout.k;
      parallel_for(0, layout.n * layout.h_out, planes_per_chunk(row_cells),
                   [&](std::int64_t first, std::int64_t last) { rows(layout, in, s, values, where, first, last); });
      return;
    }
    parallel_for(0, layout.planes(), planes_per_chunk(layout.plane_size()), [&](std::int64_t first, std::int64_t last) {
      if (two_by_two) {
        two_by_two_planes(layout, in, s, values, where, first, last);
        return;
      }
      for (std::int64_t p = first; p < last; ++p) {
        const T* plane = in + (p / layout.c) * s[0] + (p % layout.c) * s[1];
        pool_plane(layout, plane, s[2], s[3], values + p * windows, where + p * windows);
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
    if (layout.channels_last) {
      // Image by image (each writes only its own cells); cell `at` of channel ch lies at at * C + ch.
      const std::int64_t c = layout.c;
      parallel_for(0, layout.n, planes_per_chunk(plane_size * c), [&](std::int64_t first, std::int64_t last) {
        std::memset(image + first * plane_size * c, 0,
                    sizeof(T) * static_cast<std::size_t>((last - first) * plane_size * c));
        for (std::int64_t n = first; n < last; ++n) {
          T* picture = image + n * plane_size * c;
          const T* from = g + n * windows * c;
          const std::int64_t* at = where + n * windows * c;
          for (std::int64_t o = 0; o < windows * c; o += c) {
            for (std::int64_t ch = 0; ch < c; ++ch) {
              NEEDLE_CHECK(static_cast<std::uint64_t>(at[o + ch]) < static_cast<std::uint64_t>(plane_size), IndexError,
                           "max_pool2d_backward: index ", at[o + ch], " is out of bounds for an image plane of ",
                           plane_size, " cells");
              picture[at[o + ch] * c + ch] += from[o + ch];
            }
          }
        }
      });
      return;
    }
    parallel_for(0, layout.planes(), planes_per_chunk(plane_size), [&](std::int64_t first, std::int64_t last) {
      std::memset(image + first * plane_size, 0, sizeof(T) * static_cast<std::size_t>((last - first) * plane_size));
      for (std::int64_t p = first; p < last; ++p) {
        T* plane = image + p * plane_size;
        const T* from = g + p * windows;
        const std::int64_t* at = where + p * windows;
        for (std::int64_t o = 0; o < windows; ++o) {
          // The contract's one check made here, as each index is read: a pass over the indices before the
          // kernel would cost as much as the kernel.
          NEEDLE_CHECK(static_cast<std::uint64_t>(at[o]) < static_cast<std::uint64_t>(plane_size), IndexError,
                       "max_pool2d_backward: index ", at[o], " is out of bounds for an image plane of ", plane_size,
                       " cells");
          plane[at[o]] += from[o];
        }
      }
    });
  });
}

}  // namespace needle
