// The cpu backend's fused neural-network kernels: softmax, log-softmax, logsumexp, layer norm and their backward
// passes, each one to four passes over a row that stays in cache between passes, rows split over the
// thread pool. Every row is computed by one thread in a fixed order, so results do not depend on the
// thread count. The inner loops are written so the compiler vectorises them: sums and maxima keep
// kLanes independent partial results, and exp() is a branch-free polynomial instead of a libm call.
// Each kernel is compiled twice: for the baseline instruction set and, on x86-64, for AVX2 + FMA,
// picked at run time when the CPU has them.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fast_exp.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

// Rows per parallel chunk are chosen so each chunk has at least this many elements.
constexpr std::int64_t kParallelGrain = 32768;
// Independent partial sums (or maxima) per row: enough for two AVX2 vectors of float.
constexpr int kLanes = 16;

using cpu::vector_exp;

std::atomic<bool> g_force_portable{false};

// sum of term(j) over j in [0, n), in kLanes partial sums combined pairwise.
template <typename T, typename Term>
[[gnu::always_inline]] inline T lane_sum(std::int64_t n, Term&& term) {
  T partial[kLanes] = {};
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) partial[lane] += term(j + lane);
  }
  T tail = 0;
  for (; j < n; ++j) tail += term(j);
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int lane = 0; lane < width; ++lane) partial[lane] += partial[lane + width];
  }
  return partial[0] + tail;
}

// Signed integers whose order is the order of the floats they are read from: the bits of a negative
// float with all but the sign bit flipped. The map is its own inverse. Integer maxima vectorise where
// float ones do not (a float select must keep NaN semantics); NaN with a clear sign bit orders above +inf.
template <typename T>
using OrderedBits = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;

template <typename Bits>
[[gnu::always_inline]] inline Bits flip_negative(Bits bits) {
  constexpr Bits kMagnitude = std::numeric_limits<Bits>::max();
  return bits ^ ((bits >> (sizeof(Bits) * 8 - 1)) & kMagnitude);
}

// The largest of x[0..n), n >= 1, found on ordered integer keys in kLanes partial maxima. A row holding
// NaN gives NaN (or a value that the NaN then turns into NaN through exp), so the softmax is NaN either way.
template <typename T>
[[gnu::always_inline]] inline T lane_max(const T* x, std::int64_t n) {
  using Bits = OrderedBits<T>;
  const auto key = [&](std::int64_t j) { return flip_negative(std::bit_cast<Bits>(x[j])); };
  Bits partial[kLanes];
  for (Bits& p : partial) p = key(0);
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) {
      const Bits k = key(j + lane);
      partial[lane] = k > partial[lane] ? k : partial[lane];
    }
  }
  Bits largest = key(0);
  for (; j < n; ++j) largest = std::max(largest, key(j));
  for (const Bits p : partial) largest = std::max(largest, p);
  return std::bit_cast<T>(flip_negative(largest));
}

// Rows [first, last) of softmax (or log-softmax) of contiguous rows of `cols` entries.
template <typename T>
[[gnu::always_inline]] inline void softmax_rows(const T* in, T* out, std::int64_t first, std::int64_t last,
                                                std::int64_t cols, bool log) {
  for (std::int64_t row = first; row < last; ++row) {
    const T* x = in + row * cols;
    T* y = out + row * cols;
    const T largest = lane_max(x, cols);
    for (std::int64_t j = 0; j < cols; ++j) y[j] = vector_exp(x[j] - largest);
    const T sum = lane_sum<T>(cols, [&](std::int64_t j) { return y[j]; });
    if (log) {
      const T log_sum = std::log(sum);
      for (std::int64_t j = 0; j < cols; ++j) y[j] = (x[j] - largest) - log_sum;
    } else {
      const T inverse = T(1) / sum;
      for (std::int64_t j = 0; j < cols; ++j) y[j] *= inverse;
    }
  }
}

// Rows [first, last) of logsumexp; one pass for the maximum, one for the sum of exponentials, which are
// never stored. A NaN anywhere reaches the sum through exp (or the maximum), so the row gives NaN.
template <typename T>
[[gnu::always_inline]] inline void logsumexp_rows(const T* in, T* out, std::int64_t first, std::int64_t last,
                                                  std::int64_t cols) {
  for (std::int64_t row = first; row < last; ++row) {
    if (cols == 0) {  // the log of an empty sum
      out[row] = -std::numeric_limits<T>::infinity();
      continue;
    }
    const T* x = in + row * cols;
    const T largest = lane_max(x, cols);
    // An infinite maximum shifts by 0: inf - inf would make the row NaN instead of -inf or +inf.
    const T shift = std::isfinite(largest) ? largest : T(0);
    const T sum = lane_sum<T>(cols, [&](std::int64_t j) { return vector_exp(x[j] - shift); });
    out[row] = std::log(sum) + shift;
  }
}

// Rows [first, last) of the softmax (or log-softmax) vector-Jacobian product.
template <typename T>
[[gnu::always_inline]] inline void softmax_backward_rows(T* dx, const T* g, const T* y, std::int64_t first,
                                                         std::int64_t last, std::int64_t cols, bool log) {
  for (std::int64_t row = first; row < last; ++row) {
    const T* gr = g + row * cols;
    const T* yr = y + row * cols;
    T* out = dx + row * cols;
    if (log) {
      const T sum = lane_sum<T>(cols, [&](std::int64_t j) { return gr[j]; });
      for (std::int64_t j = 0; j < cols; ++j) out[j] = gr[j] - vector_exp(yr[j]) * sum;
    } else {
      const T sum = lane_sum<T>(cols, [&](std::int64_t j) { return gr[j] * yr[j]; });
      for (std::int64_t j = 0; j < cols; ++j) out[j] = yr[j] * (gr[j] - sum);
    }
  }
}

// The mean and 1 / sqrt(biased variance + eps) of a row, the variance from a second, centred pass.
template <typename T>
[[gnu::always_inline]] inline void row_statistics(const T* x, std::int64_t cols, double eps, T& mean, T& rstd) {
  mean = lane_sum<T>(cols, [&](std::int64_t j) { return x[j]; }) / static_cast<T>(cols);
  const T m = mean;
  const T squares = lane_sum<T>(cols, [&](std::int64_t j) { return (x[j] - m) * (x[j] - m); });
  rstd = static_cast<T>(1.0 / std::sqrt(static_cast<double>(squares) / static_cast<double>(cols) + eps));
}

template <typename T>
[[gnu::always_inline]] inline void layer_norm_rows(T* out, const T* x, std::int64_t first, std::int64_t last,
                                                   std::int64_t cols, double eps) {
  for (std::int64_t row = first; row < last; ++row) {
    const T* xr = x + row * cols;
    T* y = out + row * cols;
    T mean = 0;
    T rstd = 0;
    row_statistics(xr, cols, eps, mean, rstd);
    for (std::int64_t j = 0; j < cols; ++j) y[j] = (xr[j] - mean) * rstd;
  }
}

// The layer norm's backward over rows [first, last). The backward pass sums and subtracts in double whatever
// T is, as ref does: dx is a small difference of large terms (it is orthogonal to 1 and to xhat), so float32
// arithmetic loses it; the gradient of sum(LayerNorm(x)**4) for a row like (3.1, 2.45, 2.3) came out 0.6%
// off. With kAffine, the normalized rows were scaled by w: dx is computed for the gradient g * w, and each
// column's sum of g * xhat (first half of `columns`, 2 * cols doubles) and of g (second half) over these
// rows is added into `columns`, for the weight's and the shift's gradients. Without it, w and columns are
// not read.
template <typename T, bool kAffine>
[[gnu::always_inline]] inline void layer_norm_backward_rows(T* dx, double* columns, const T* g, const T* x, const T* w,
                                                            std::int64_t first, std::int64_t last, std::int64_t cols,
                                                            double eps) {
  const auto n = static_cast<double>(cols);
  for (std::int64_t row = first; row < last; ++row) {
    const T* gr = g + row * cols;
    const T* xr = x + row * cols;
    T* out = dx + row * cols;
    const double mean = lane_sum<double>(cols, [&](std::int64_t j) { return static_cast<double>(xr[j]); }) / n;
    const double squares = lane_sum<double>(cols, [&](std::int64_t j) {
      const double centred = static_cast<double>(xr[j]) - mean;
      return centred * centred;
    });
    const double rstd = 1.0 / std::sqrt(squares / n + eps);
    // The gradient reaching the normalized row: g, or g * w.
    const auto gn = [&](std::int64_t j) {
      if constexpr (kAffine) return static_cast<double>(gr[j]) * static_cast<double>(w[j]);
      return static_cast<double>(gr[j]);
    };
    const double mean_gn = lane_sum<double>(cols, gn) / n;
    const double mean_gn_xhat =
        lane_sum<double>(cols, [&](std::int64_t j) { return gn(j) * ((static_cast<double>(xr[j]) - mean) * rstd); }) /
        n;
    for (std::int64_t j = 0; j < cols; ++j) {
      const double xhat = (static_cast<double>(xr[j]) - mean) * rstd;
      out[j] = static_cast<T>(rstd * (gn(j) - mean_gn - xhat * mean_gn_xhat));
      if constexpr (kAffine) {
        columns[j] += static_cast<double>(gr[j]) * xhat;
        columns[cols + j] += static_cast<double>(gr[j]);
      }
    }
  }
}

// x / sqrt(mean(x^2) + eps) per row, the mean of squares summed in lanes like the statistics above.
template <typename T>
[[gnu::always_inline]] inline void rms_norm_rows(T* out, const T* x, std::int64_t first, std::int64_t last,
                                                 std::int64_t cols, double eps) {
  for (std::int64_t row = first; row < last; ++row) {
    const T* xr = x + row * cols;
    T* y = out + row * cols;
    const T squares = lane_sum<T>(cols, [&](std::int64_t j) { return xr[j] * xr[j]; });
    const auto rrms = static_cast<T>(1.0 / std::sqrt(static_cast<double>(squares) / static_cast<double>(cols) + eps));
    for (std::int64_t j = 0; j < cols; ++j) y[j] = xr[j] * rrms;
  }
}

// The same kernels compiled for the baseline instruction set and for AVX2 + FMA.
template <typename T>
struct RowKernels {
  void (*softmax)(const T*, T*, std::int64_t, std::int64_t, std::int64_t, bool);
  void (*softmax_backward)(T*, const T*, const T*, std::int64_t, std::int64_t, std::int64_t, bool);
  void (*layer_norm)(T*, const T*, std::int64_t, std::int64_t, std::int64_t, double);
  void (*layer_norm_backward)(T*, const T*, const T*, std::int64_t, std::int64_t, std::int64_t, double);
  void (*layer_norm_affine_backward)(T*, double*, const T*, const T*, const T*, std::int64_t, std::int64_t,
                                     std::int64_t, double);
  void (*logsumexp)(const T*, T*, std::int64_t, std::int64_t, std::int64_t);
  void (*rms_norm)(T*, const T*, std::int64_t, std::int64_t, std::int64_t, double);
};

template <typename T>
void logsumexp_portable(const T* in, T* out, std::int64_t first, std::int64_t last, std::int64_t cols) {
  logsumexp_rows(in, out, first, last, cols);
}

template <typename T>
void softmax_portable(const T* in, T* out, std::int64_t first, std::int64_t last, std::int64_t cols, bool log) {
  softmax_rows(in, out, first, last, cols, log);
}
template <typename T>
void softmax_backward_portable(T* dx, const T* g, const T* y, std::int64_t first, std::int64_t last, std::int64_t cols,
                               bool log) {
  softmax_backward_rows(dx, g, y, first, last, cols, log);
}
template <typename T>
void layer_norm_portable(T* out, const T* x, std::int64_t first, std::int64_t last, std::int64_t cols, double eps) {
  layer_norm_rows(out, x, first, last, cols, eps);
}
template <typename T>
void layer_norm_backward_portable(T* dx, const T* g, const T* x, std::int64_t first, std::int64_t last,
                                  std::int64_t cols, double eps) {
  layer_norm_backward_rows<T, false>(dx, nullptr, g, x, nullptr, first, last, cols, eps);
}
template <typename T>
void layer_norm_affine_backward_portable(T* dx, double* columns, const T* g, const T* x, const T* w, std::int64_t first,
                                         std::int64_t last, std::int64_t cols, double eps) {
  layer_norm_backward_rows<T, true>(dx, columns, g, x, w, first, last, cols, eps);
}

template <typename T>
void rms_norm_portable(T* out, const T* x, std::int64_t first, std::int64_t last, std::int64_t cols, double eps) {
  rms_norm_rows(out, x, first, last, cols, eps);
}

#if defined(__x86_64__)
template <typename T>
__attribute__((target("avx2,fma"))) void rms_norm_avx2(T* out, const T* x, std::int64_t first, std::int64_t last,
                                                       std::int64_t cols, double eps) {
  rms_norm_rows(out, x, first, last, cols, eps);
}
template <typename T>
__attribute__((target("avx2,fma"))) void softmax_avx2(const T* in, T* out, std::int64_t first, std::int64_t last,
                                                      std::int64_t cols, bool log) {
  softmax_rows(in, out, first, last, cols, log);
}
template <typename T>
__attribute__((target("avx2,fma"))) void softmax_backward_avx2(T* dx, const T* g, const T* y, std::int64_t first,
                                                               std::int64_t last, std::int64_t cols, bool log) {
  softmax_backward_rows(dx, g, y, first, last, cols, log);
}
template <typename T>
__attribute__((target("avx2,fma"))) void layer_norm_avx2(T* out, const T* x, std::int64_t first, std::int64_t last,
                                                         std::int64_t cols, double eps) {
  layer_norm_rows(out, x, first, last, cols, eps);
}
template <typename T>
__attribute__((target("avx2,fma"))) void layer_norm_backward_avx2(T* dx, const T* g, const T* x, std::int64_t first,
                                                                  std::int64_t last, std::int64_t cols, double eps) {
  layer_norm_backward_rows<T, false>(dx, nullptr, g, x, nullptr, first, last, cols, eps);
}
template <typename T>
__attribute__((target("avx2,fma"))) void layer_norm_affine_backward_avx2(T* dx, double* columns, const T* g, const T* x,
                                                                         const T* w, std::int64_t first,
                                                                         std::int64_t last, std::int64_t cols,
                                                                         double eps) {
  layer_norm_backward_rows<T, true>(dx, columns, g, x, w, first, last, cols, eps);
}

template <typename T>
__attribute__((target("avx2,fma"))) void logsumexp_avx2(const T* in, T* out, std::int64_t first, std::int64_t last,
                                                        std::int64_t cols) {
  logsumexp_rows(in, out, first, last, cols);
}

bool cpu_has_avx2_fma() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
}
#endif

// The AVX2 + FMA build of the kernels where the CPU has both (and no test asked for the portable one).
template <typename T>
RowKernels<T> row_kernels() {
#if defined(__x86_64__)
  if (!g_force_portable.load(std::memory_order_relaxed) && cpu_has_avx2_fma()) {
    return {&softmax_avx2<T>,
            &softmax_backward_avx2<T>,
            &layer_norm_avx2<T>,
            &layer_norm_backward_avx2<T>,
            &layer_norm_affine_backward_avx2<T>,
            &logsumexp_avx2<T>,
            &rms_norm_avx2<T>};
  }
#endif
  return {&softmax_portable<T>,
          &softmax_backward_portable<T>,
          &layer_norm_portable<T>,
          &layer_norm_backward_portable<T>,
          &layer_norm_affine_backward_portable<T>,
          &logsumexp_portable<T>,
          &rms_norm_portable<T>};
}

// fn(first, last) over the rows, split over threads once there are kParallelGrain elements per chunk.
template <typename Fn>
void parallel_rows(const kernels::RowLayout& layout, Fn&& fn) {
  if (layout.size() == 0) return;
  const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / layout.cols);
  parallel_for(0, layout.rows, grain, std::forward<Fn>(fn));
}

}  // namespace

namespace cpu {

void set_fused_nn_portable(bool portable) { g_force_portable.store(portable, std::memory_order_relaxed); }

}  // namespace cpu

void CpuBackend::softmax_kernel(const kernels::RowLayout& layout, const StridedView& out, const StridedView& in,
                                bool log) {
  dispatch_floating(layout.dtype, "softmax", [&]<typename T>() {
    const auto kernel = row_kernels<T>().softmax;
    parallel_rows(layout, [&](std::int64_t first, std::int64_t last) {
      kernel(in.ptr<T>(), out.ptr<T>(), first, last, layout.cols, log);
    });
  });
}

void CpuBackend::softmax_backward_kernel(const kernels::RowLayout& layout, const StridedView& dx, const StridedView& g,
                                         const StridedView& y, bool log) {
  dispatch_floating(layout.dtype, "softmax_backward", [&]<typename T>() {
    const auto kernel = row_kernels<T>().softmax_backward;
    parallel_rows(layout, [&](std::int64_t first, std::int64_t last) {
      kernel(dx.ptr<T>(), g.ptr<T>(), y.ptr<T>(), first, last, layout.cols, log);
    });
  });
}

void CpuBackend::logsumexp_kernel(const kernels::RowLayout& layout, const StridedView& out, const StridedView& in) {
  dispatch_floating(layout.dtype, "logsumexp", [&]<typename T>() {
    const auto kernel = row_kernels<T>().logsumexp;
    // Split like the other row kernels, by elements read (at least one per row, for rows of no columns).
    const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(1, layout.cols));
    parallel_for(0, layout.rows, grain, [&](std::int64_t first, std::int64_t last) {
      kernel(in.ptr<T>(), out.ptr<T>(), first, last, layout.cols);
    });
  });
}

void CpuBackend::layer_norm_kernel(const kernels::RowLayout& layout, const StridedView& out, const StridedView& x,
                                   double eps) {
  dispatch_floating(layout.dtype, "layer_norm", [&]<typename T>() {
    const auto kernel = row_kernels<T>().layer_norm;
    parallel_rows(layout, [&](std::int64_t first, std::int64_t last) {
      kernel(out.ptr<T>(), x.ptr<T>(), first, last, layout.cols, eps);
    });
  });
}

void CpuBackend::layer_norm_backward_kernel(const kernels::RowLayout& layout, const StridedView& dx,
                                            const StridedView& g, const StridedView& x, double eps) {
  dispatch_floating(layout.dtype, "layer_norm_backward", [&]<typename T>() {
    const auto kernel = row_kernels<T>().layer_norm_backward;
    parallel_rows(layout, [&](std::int64_t first, std::int64_t last) {
      kernel(dx.ptr<T>(), g.ptr<T>(), x.ptr<T>(), first, last, layout.cols, eps);
    });
  });
}

// Rows in fixed blocks of about kParallelGrain elements, spread over the threads; each block adds its
// column sums into its own partials, and the blocks are added in order, so dweight and dbias do not depend
// on the thread count.
void CpuBackend::layer_norm_affine_backward_kernel(const kernels::RowLayout& layout, const StridedView& dx,
                                                   const StridedView& dweight, const StridedView& dbias,
                                                   const StridedView& g, const StridedView& x,
                                                   const StridedView& weight, double eps) {
  dispatch_floating(layout.dtype, "layer_norm_affine_backward", [&]<typename T>() {
    const std::int64_t cols = layout.cols;
    if (cols == 0) return;
    const auto kernel = row_kernels<T>().layer_norm_affine_backward;
    const std::int64_t block_rows = std::max<std::int64_t>(1, kParallelGrain / cols);
    const std::int64_t blocks = (layout.rows + block_rows - 1) / block_rows;
    std::vector<double> partials(static_cast<std::size_t>(blocks * 2 * cols), 0.0);
    parallel_for(0, blocks, 1, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t b = first; b < last; ++b) {
        kernel(dx.ptr<T>(), partials.data() + b * 2 * cols, g.ptr<T>(), x.ptr<T>(), weight.ptr<T>(), b * block_rows,
               std::min(layout.rows, (b + 1) * block_rows), cols, eps);
      }
    });
    for (std::int64_t j = 0; j < cols; ++j) {
      double sum_g_xhat = 0.0;
      double sum_g = 0.0;
      for (std::int64_t b = 0; b < blocks; ++b) {
        sum_g_xhat += partials[static_cast<std::size_t>(b * 2 * cols + j)];
        sum_g += partials[static_cast<std::size_t>(b * 2 * cols + cols + j)];
      }
      dweight.ptr<T>()[j] = static_cast<T>(sum_g_xhat);
      dbias.ptr<T>()[j] = static_cast<T>(sum_g);
    }
  });
}

void CpuBackend::rms_norm_kernel(const kernels::RowLayout& layout, const StridedView& out, const StridedView& x,
                                 double eps) {
  dispatch_floating(layout.dtype, "rms_norm", [&]<typename T>() {
    const auto kernel = row_kernels<T>().rms_norm;
    parallel_rows(layout, [&](std::int64_t first, std::int64_t last) {
      kernel(out.ptr<T>(), x.ptr<T>(), first, last, layout.cols, eps);
    });
  });
}

}  // namespace needle
