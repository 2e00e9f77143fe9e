// The cpu backend's fused batch norm: per channel, one pass over x for the statistics and one to write
// y (forward), one pass over g and x for the two per-channel sums and one to write dx (backward). A
// channel's values are N runs of S contiguous entries; channels are split over the thread pool and each
// is computed by one thread in a fixed order, so results do not depend on the thread count. The run of
// one channel is small enough to stay in cache between its two passes.
//
// Sums are kept in double, in kLanes independent partial sums per quantity so the compiler vectorises the
// inner loops over a run. The variance comes from sums of x - shift with shift = the channel's first value:
// one pass instead of two, and, since the shift is a sample of the channel, sum((x - shift)^2) / M -
// (sum(x - shift) / M)^2 does not suffer the cancellation of the plain sum of squares. When S = 1 the runs
// are single values, so those shapes take column kernels that vectorise across channels instead. Each
// kernel is compiled for the baseline instruction set and, on x86-64, for AVX2 + FMA, picked at run time.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>

#include "backend/cpu/cpu_backend.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

// Channels per parallel chunk are chosen so each chunk has at least this many elements.
constexpr std::int64_t kParallelGrain = 32768;
// Independent partial sums per quantity: two AVX2 vectors of double.
constexpr int kLanes = 8;

std::atomic<bool> g_force_portable{false};

// The shape of the (N, C, S) data and the channels [first, last) one call works on.
struct Channels {
  std::int64_t batch;
  std::int64_t channels;
  std::int64_t spatial;
  std::int64_t first;
  std::int64_t last;
};

// The partial sums of two quantities over the runs of one channel.
struct PairSums {
  double a[kLanes] = {};
  double b[kLanes] = {};
  double a_tail = 0.0;
  double b_tail = 0.0;

  // Adds terms(j) = (a_j, b_j) for j in [0, len).
  template <typename Terms>
  [[gnu::always_inline]] void add_run(std::int64_t len, Terms&& terms) {
    std::int64_t j = 0;
    for (; j + kLanes <= len; j += kLanes) {
      for (int lane = 0; lane < kLanes; ++lane) {
        const auto [ta, tb] = terms(j + lane);
        a[lane] += ta;
        b[lane] += tb;
      }
    }
    for (; j < len; ++j) {
      const auto [ta, tb] = terms(j);
      a_tail += ta;
      b_tail += tb;
    }
  }
  // The two totals, the partial sums combined pairwise.
  [[gnu::always_inline]] void totals(double& total_a, double& total_b) {
    for (int width = kLanes / 2; width > 0; width /= 2) {
      for (int lane = 0; lane < width; ++lane) {
        a[lane] += a[lane + width];
        b[lane] += b[lane + width];
      }
    }
    total_a = a[0] + a_tail;
    total_b = b[0] + b_tail;
  }
};

struct Terms {
  double a;
  double b;
};

template <typename T>
[[gnu::always_inline]] inline void batch_norm_channels(T* y, T* mean, T* var, const T* x, const T* weight,
                                                       const T* bias, const Channels& part, double eps) {
  const std::int64_t spatial = part.spatial;
  const auto count = static_cast<double>(part.batch * spatial);
  for (std::int64_t c = part.first; c < part.last; ++c) {
    const double shift = x[c * spatial];
    PairSums sums;
    for (std::int64_t n = 0; n < part.batch; ++n) {
      const T* run = x + (n * part.channels + c) * spatial;
      sums.add_run(spatial, [&](std::int64_t j) {
        const double d = static_cast<double>(run[j]) - shift;
        return Terms{d, d * d};
      });
    }
    double sum = 0.0;
    double squares = 0.0;
    sums.totals(sum, squares);
    const double offset = sum / count;
    const double v = std::max(squares / count - offset * offset, 0.0);
    const double m = shift + offset;
    mean[c] = static_cast<T>(m);
    var[c] = static_cast<T>(v);
    // y = ((x - shift) - (mean - shift)) * (invstd * weight) + bias. x - shift is exact for values near the
    // shift, and mean - shift is small, so float keeps the precision a rounded mean would lose when the mean
    // is large next to the spread.
    const T sample = x[c * spatial];
    const auto center = static_cast<T>(offset);
    const auto scale = static_cast<T>(static_cast<double>(weight[c]) / std::sqrt(v + eps));
    const T shift_out = bias[c];
    for (std::int64_t n = 0; n < part.batch; ++n) {
      const std::int64_t base = (n * part.channels + c) * spatial;
      const T* in = x + base;
      T* out = y + base;
      for (std::int64_t j = 0; j < spatial; ++j) out[j] = ((in[j] - sample) - center) * scale + shift_out;
    }
  }
}

template <typename T>
[[gnu::always_inline]] inline void batch_norm_backward_channels(T* dx, T* dweight, T* dbias, const T* g, const T* x,
                                                                const T* mean, const T* var, const T* weight,
                                                                const Channels& part, double eps) {
  const std::int64_t spatial = part.spatial;
  const auto count = static_cast<double>(part.batch * spatial);
  for (std::int64_t c = part.first; c < part.last; ++c) {
    const double m = mean[c];
    const double invstd = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    PairSums sums;  // sum(g) and sum(g * (x - mean))
    for (std::int64_t n = 0; n < part.batch; ++n) {
      const std::int64_t base = (n * part.channels + c) * spatial;
      const T* gr = g + base;
      const T* xr = x + base;
      sums.add_run(spatial, [&](std::int64_t j) {
        const double gj = gr[j];
        return Terms{gj, gj * (static_cast<double>(xr[j]) - m)};
      });
    }
    double sum_g = 0.0;
    double sum_g_centered = 0.0;
    sums.totals(sum_g, sum_g_centered);
    const double sum_g_xhat = sum_g_centered * invstd;
    dbias[c] = static_cast<T>(sum_g);
    dweight[c] = static_cast<T>(sum_g_xhat);
    // dx = scale * (g - sum_g / M - xhat * sum_g_xhat / M) = scale * g + slope * (x - mean) + offset, with
    // x - mean taken as (x - sample) - (mean - sample) as in the forward pass.
    const double scale = static_cast<double>(weight[c]) * invstd;
    const auto g_scale = static_cast<T>(scale);
    const auto slope = static_cast<T>(-scale * invstd * sum_g_xhat / count);
    const auto offset = static_cast<T>(-scale * sum_g / count);
    const T sample = x[c * spatial];
    const auto center = static_cast<T>(m - static_cast<double>(sample));
    for (std::int64_t n = 0; n < part.batch; ++n) {
      const std::int64_t base = (n * part.channels + c) * spatial;
      const T* gr = g + base;
      const T* xr = x + base;
      T* out = dx + base;
      for (std::int64_t j = 0; j < spatial; ++j) {
        out[j] = g_scale * gr[j] + slope * ((xr[j] - sample) - center) + offset;
      }
    }
  }
}

// With S = 1 (BatchNorm1d, or a channels-last input read as (N * H * W, C, 1)) a channel's values are a
// column: these kernels walk the rows and keep the statistics of a tile of kTile adjacent channels, so the
// inner loops run along the contiguous channels and vectorise. Each channel's sums still run over the rows
// in order, so the result does not depend on how channels are split.
constexpr std::int64_t kTile = 64;

template <typename T>
[[gnu::always_inline]] inline void batch_norm_columns(T* y, T* mean, T* var, const T* x, const T* weight, const T* bias,
                                                      const Channels& part, double eps) {
  const std::int64_t channels = part.channels;
  const auto count = static_cast<double>(part.batch);
  for (std::int64_t c0 = part.first; c0 < part.last; c0 += kTile) {
    const std::int64_t width = std::min(kTile, part.last - c0);
    double shift[kTile];
    double sum[kTile] = {};
    double squares[kTile] = {};
    for (std::int64_t k = 0; k < width; ++k) shift[k] = x[c0 + k];
    for (std::int64_t n = 0; n < part.batch; ++n) {
      const T* row = x + n * channels + c0;
      for (std::int64_t k = 0; k < width; ++k) {
        const double d = static_cast<double>(row[k]) - shift[k];
        sum[k] += d;
        squares[k] += d * d;
      }
    }
    // The per-channel constants of y = ((x - sample) - center) * scale + shift_out (see batch_norm_channels).
    T sample[kTile];
    T center[kTile];
    T scale[kTile];
    T shift_out[kTile];
    for (std::int64_t k = 0; k < width; ++k) {
      const double offset = sum[k] / count;
      const double v = std::max(squares[k] / count - offset * offset, 0.0);
      mean[c0 + k] = static_cast<T>(shift[k] + offset);
      var[c0 + k] = static_cast<T>(v);
      sample[k] = x[c0 + k];
      center[k] = static_cast<T>(offset);
      scale[k] = static_cast<T>(static_cast<double>(weight[c0 + k]) / std::sqrt(v + eps));
      shift_out[k] = bias[c0 + k];
    }
    for (std::int64_t n = 0; n < part.batch; ++n) {
      const T* row = x + n * channels + c0;
      T* out = y + n * channels + c0;
      for (std::int64_t k = 0; k < width; ++k) out[k] = ((row[k] - sample[k]) - center[k]) * scale[k] + shift_out[k];
    }
  }
}

template <typename T>
[[gnu::always_inline]] inline void batch_norm_backward_columns(T* dx, T* dweight, T* dbias, const T* g, const T* x,
                                                               const T* mean, const T* var, const T* weight,
                                                               const Channels& part, double eps) {
  const std::int64_t channels = part.channels;
  const auto count = static_cast<double>(part.batch);
  for (std::int64_t c0 = part.first; c0 < part.last; c0 += kTile) {
    const std::int64_t width = std::min(kTile, part.last - c0);
    double m[kTile];
    double sum_g[kTile] = {};
    double sum_g_centered[kTile] = {};
    for (std::int64_t k = 0; k < width; ++k) m[k] = mean[c0 + k];
    for (std::int64_t n = 0; n < part.batch; ++n) {
      const T* gr = g + n * channels + c0;
      const T* xr = x + n * channels + c0;
      for (std::int64_t k = 0; k < width; ++k) {
        const double gj = gr[k];
        sum_g[k] += gj;
        sum_g_centered[k] += gj * (static_cast<double>(xr[k]) - m[k]);
      }
    }
    // The per-channel constants of dx = g_scale * g + slope * ((x - sample) - center) + offset.
    T g_scale[kTile];
    T slope[kTile];
    T offset[kTile];
    T sample[kTile];
    T center[kTile];
    for (std::int64_t k = 0; k < width; ++k) {
      const double invstd = 1.0 / std::sqrt(static_cast<double>(var[c0 + k]) + eps);
      const double sum_g_xhat = sum_g_centered[k] * invstd;
      dbias[c0 + k] = static_cast<T>(sum_g[k]);
      dweight[c0 + k] = static_cast<T>(sum_g_xhat);
      const double scale = static_cast<double>(weight[c0 + k]) * invstd;
      g_scale[k] = static_cast<T>(scale);
      slope[k] = static_cast<T>(-scale * invstd * sum_g_xhat / count);
      offset[k] = static_cast<T>(-scale * sum_g[k] / count);
      sample[k] = x[c0 + k];
      center[k] = static_cast<T>(m[k] - static_cast<double>(sample[k]));
    }
    for (std::int64_t n = 0; n < part.batch; ++n) {
      const T* gr = g + n * channels + c0;
      const T* xr = x + n * channels + c0;
      T* out = dx + n * channels + c0;
      for (std::int64_t k = 0; k < width; ++k) {
        out[k] = g_scale[k] * gr[k] + slope[k] * ((xr[k] - sample[k]) - center[k]) + offset[k];
      }
    }
  }
}

// One entry point per direction for both layouts: columns when S = 1, runs otherwise.
template <typename T>
[[gnu::always_inline]] inline void batch_norm_any(T* y, T* mean, T* var, const T* x, const T* weight, const T* bias,
                                                  const Channels& part, double eps) {
  if (part.spatial == 1) {
    batch_norm_columns(y, mean, var, x, weight, bias, part, eps);
  } else {
    batch_norm_channels(y, mean, var, x, weight, bias, part, eps);
  }
}
template <typename T>
[[gnu::always_inline]] inline void batch_norm_backward_any(T* dx, T* dweight, T* dbias, const T* g, const T* x,
                                                           const T* mean, const T* var, const T* weight,
                                                           const Channels& part, double eps) {
  if (part.spatial == 1) {
    batch_norm_backward_columns(dx, dweight, dbias, g, x, mean, var, weight, part, eps);
  } else {
    batch_norm_backward_channels(dx, dweight, dbias, g, x, mean, var, weight, part, eps);
  }
}

template <typename T>
using ForwardKernel = void (*)(T*, T*, T*, const T*, const T*, const T*, const Channels&, double);
template <typename T>
using BackwardKernel = void (*)(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const Channels&, double);

template <typename T>
void batch_norm_portable(T* y, T* mean, T* var, const T* x, const T* weight, const T* bias, const Channels& part,
                         double eps) {
  batch_norm_any(y, mean, var, x, weight, bias, part, eps);
}
template <typename T>
void batch_norm_backward_portable(T* dx, T* dweight, T* dbias, const T* g, const T* x, const T* mean, const T* var,
                                  const T* weight, const Channels& part, double eps) {
  batch_norm_backward_any(dx, dweight, dbias, g, x, mean, var, weight, part, eps);
}

#if defined(__x86_64__)
template <typename T>
__attribute__((target("avx2,fma"))) void batch_norm_avx2(T* y, T* mean, T* var, const T* x, const T* weight,
                                                         const T* bias, const Channels& part, double eps) {
  batch_norm_any(y, mean, var, x, weight, bias, part, eps);
}
template <typename T>
__attribute__((target("avx2,fma"))) void batch_norm_backward_avx2(T* dx, T* dweight, T* dbias, const T* g, const T* x,
                                                                  const T* mean, const T* var, const T* weight,
                                                                  const Channels& part, double eps) {
  batch_norm_backward_any(dx, dweight, dbias, g, x, mean, var, weight, part, eps);
}

bool cpu_has_avx2_fma() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
}
#endif

bool use_avx2() {
#if defined(__x86_64__)
  return !g_force_portable.load(std::memory_order_relaxed) && cpu_has_avx2_fma();
#else
  return false;
#endif
}

template <typename T>
ForwardKernel<T> forward_kernel() {
#if defined(__x86_64__)
  if (use_avx2()) return &batch_norm_avx2<T>;
#endif
  return &batch_norm_portable<T>;
}

template <typename T>
BackwardKernel<T> backward_kernel() {
#if defined(__x86_64__)
  if (use_avx2()) return &batch_norm_backward_avx2<T>;
#endif
  return &batch_norm_backward_portable<T>;
}

// fn(part) over the channels, split over threads once a chunk of channels holds kParallelGrain elements.
template <typename Fn>
void parallel_channels(const kernels::ChannelLayout& layout, Fn&& fn) {
  if (layout.size() == 0) return;
  const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / layout.per_channel());
  parallel_for(0, layout.channels, grain, [&](std::int64_t first, std::int64_t last) {
    fn(Channels{layout.batch, layout.channels, layout.spatial, first, last});
  });
}

}  // namespace

namespace cpu {

void set_batch_norm_portable(bool portable) { g_force_portable.store(portable, std::memory_order_relaxed); }

}  // namespace cpu

void CpuBackend::batch_norm_kernel(const kernels::ChannelLayout& layout, const StridedView& y, const StridedView& mean,
                                   const StridedView& var, const StridedView& x, const StridedView& weight,
                                   const StridedView& bias, double eps) {
  dispatch_floating(layout.dtype, "batch_norm", [&]<typename T>() {
    const ForwardKernel<T> kernel = forward_kernel<T>();
    parallel_channels(layout, [&](const Channels& part) {
      kernel(y.ptr<T>(), mean.ptr<T>(), var.ptr<T>(), x.ptr<T>(), weight.ptr<T>(), bias.ptr<T>(), part, eps);
    });
  });
}

void CpuBackend::batch_norm_backward_kernel(const kernels::ChannelLayout& layout, const StridedView& dx,
                                            const StridedView& dweight, const StridedView& dbias, const StridedView& g,
                                            const StridedView& x, const StridedView& mean, const StridedView& var,
                                            const StridedView& weight, double eps) {
  dispatch_floating(layout.dtype, "batch_norm_backward", [&]<typename T>() {
    const BackwardKernel<T> kernel = backward_kernel<T>();
    parallel_channels(layout, [&](const Channels& part) {
      kernel(dx.ptr<T>(), dweight.ptr<T>(), dbias.ptr<T>(), g.ptr<T>(), x.ptr<T>(), mean.ptr<T>(), var.ptr<T>(),
             weight.ptr<T>(), part, eps);
    });
  });
}

}  // namespace needle
