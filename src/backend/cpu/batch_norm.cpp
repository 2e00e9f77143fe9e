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
#include <vector>

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
// column, and a row holds one value of every channel. Splitting channels over threads would have each
// thread read every row for a few of its values and write parts of the same cache lines as the other
// threads; these kernels split the rows instead. The statistics are sums over fixed blocks of kRowBlock
// rows (each block's sums run over its rows in order, along the contiguous channels, so they vectorise),
// added up block by block in order: the result does not depend on the thread count. The second pass
// writes whole rows.
constexpr std::int64_t kRowBlock = 512;

// The rows [row_first, row_last) of an (N, C) array: one block of a column pass.
struct Rows {
  std::int64_t channels;
  std::int64_t row_first;
  std::int64_t row_last;
};

// Per channel c of the rows: sums[c] += x - shift_c and sums[C + c] += (x - shift_c)^2, shift_c = x[0, c].
template <typename T>
[[gnu::always_inline]] inline void column_sums(double* sums, const T* x, const Rows& rows) {
  const std::int64_t channels = rows.channels;
  double* squares = sums + channels;
  for (std::int64_t n = rows.row_first; n < rows.row_last; ++n) {
    const T* row = x + n * channels;
    for (std::int64_t c = 0; c < channels; ++c) {
      const double d = static_cast<double>(row[c]) - static_cast<double>(x[c]);
      sums[c] += d;
      squares[c] += d * d;
    }
  }
}

// Per channel c of the rows: sums[c] += g and sums[C + c] += g * (x - mean_c).
template <typename T>
[[gnu::always_inline]] inline void column_grad_sums(double* sums, const T* g, const T* x, const double* mean,
                                                    const Rows& rows) {
  const std::int64_t channels = rows.channels;
  double* centered = sums + channels;
  for (std::int64_t n = rows.row_first; n < rows.row_last; ++n) {
    const T* gr = g + n * channels;
    const T* xr = x + n * channels;
    for (std::int64_t c = 0; c < channels; ++c) {
      const double gj = gr[c];
      sums[c] += gj;
      centered[c] += gj * (static_cast<double>(xr[c]) - mean[c]);
    }
  }
}

// The per-channel constants of the second pass: out = a * u + slope * ((x - sample) - center) + offset, with
// u = g in backward and a = 0 in forward (where slope is the scale and offset the bias).
template <typename T>
struct ColumnConstants {
  std::vector<T> a, slope, offset, sample, center;
  explicit ColumnConstants(std::int64_t channels)
      : a(channels), slope(channels), offset(channels), sample(channels), center(channels) {}
};

template <typename T>
[[gnu::always_inline]] inline void column_apply(T* out, const T* u, const T* x, const ColumnConstants<T>& k,
                                                const Rows& rows) {
  const std::int64_t channels = rows.channels;
  const T* a = k.a.data();
  const T* slope = k.slope.data();
  const T* offset = k.offset.data();
  const T* sample = k.sample.data();
  const T* center = k.center.data();
  for (std::int64_t n = rows.row_first; n < rows.row_last; ++n) {
    const T* xr = x + n * channels;
    T* o = out + n * channels;
    if (u == nullptr) {
      for (std::int64_t c = 0; c < channels; ++c) o[c] = ((xr[c] - sample[c]) - center[c]) * slope[c] + offset[c];
    } else {
      const T* ur = u + n * channels;
      for (std::int64_t c = 0; c < channels; ++c) {
        o[c] = a[c] * ur[c] + slope[c] * ((xr[c] - sample[c]) - center[c]) + offset[c];
      }
    }
  }
}

template <typename T>
using ForwardKernel = void (*)(T*, T*, T*, const T*, const T*, const T*, const Channels&, double);
template <typename T>
using BackwardKernel = void (*)(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const Channels&, double);

template <typename T>
using SumsKernel = void (*)(double*, const T*, const Rows&);
template <typename T>
using GradSumsKernel = void (*)(double*, const T*, const T*, const double*, const Rows&);
template <typename T>
using ApplyKernel = void (*)(T*, const T*, const T*, const ColumnConstants<T>&, const Rows&);

// Each kernel twice: for the baseline instruction set, and (below) for AVX2 + FMA.
template <typename T>
void batch_norm_portable(T* y, T* mean, T* var, const T* x, const T* weight, const T* bias, const Channels& part,
                         double eps) {
  batch_norm_channels(y, mean, var, x, weight, bias, part, eps);
}
template <typename T>
void batch_norm_backward_portable(T* dx, T* dweight, T* dbias, const T* g, const T* x, const T* mean, const T* var,
                                  const T* weight, const Channels& part, double eps) {
  batch_norm_backward_channels(dx, dweight, dbias, g, x, mean, var, weight, part, eps);
}
template <typename T>
void column_sums_portable(double* sums, const T* x, const Rows& rows) {
  column_sums(sums, x, rows);
}
template <typename T>
void column_grad_sums_portable(double* sums, const T* g, const T* x, const double* mean, const Rows& rows) {
  column_grad_sums(sums, g, x, mean, rows);
}
template <typename T>
void column_apply_portable(T* out, const T* u, const T* x, const ColumnConstants<T>& k, const Rows& rows) {
  column_apply(out, u, x, k, rows);
}

#if defined(__x86_64__)
template <typename T>
__attribute__((target("avx2,fma"))) void batch_norm_avx2(T* y, T* mean, T* var, const T* x, const T* weight,
                                                         const T* bias, const Channels& part, double eps) {
  batch_norm_channels(y, mean, var, x, weight, bias, part, eps);
}
template <typename T>
__attribute__((target("avx2,fma"))) void batch_norm_backward_avx2(T* dx, T* dweight, T* dbias, const T* g, const T* x,
                                                                  const T* mean, const T* var, const T* weight,
                                                                  const Channels& part, double eps) {
  batch_norm_backward_channels(dx, dweight, dbias, g, x, mean, var, weight, part, eps);
}
template <typename T>
__attribute__((target("avx2,fma"))) void column_sums_avx2(double* sums, const T* x, const Rows& rows) {
  column_sums(sums, x, rows);
}
template <typename T>
__attribute__((target("avx2,fma"))) void column_grad_sums_avx2(double* sums, const T* g, const T* x, const double* mean,
                                                               const Rows& rows) {
  column_grad_sums(sums, g, x, mean, rows);
}
template <typename T>
__attribute__((target("avx2,fma"))) void column_apply_avx2(T* out, const T* u, const T* x, const ColumnConstants<T>& k,
                                                           const Rows& rows) {
  column_apply(out, u, x, k, rows);
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

// The column kernels of one build: AVX2 where the CPU has AVX2 + FMA (and the portable ones are not
// forced), else portable.
template <typename T>
struct ColumnKernels {
  SumsKernel<T> sums;
  GradSumsKernel<T> grad_sums;
  ApplyKernel<T> apply;
};

template <typename T>
ColumnKernels<T> column_kernels() {
#if defined(__x86_64__)
  if (use_avx2()) return {&column_sums_avx2<T>, &column_grad_sums_avx2<T>, &column_apply_avx2<T>};
#endif
  return {&column_sums_portable<T>, &column_grad_sums_portable<T>, &column_apply_portable<T>};
}

// The statistics pass of the column layout: each block of kRowBlock rows summed by `block_sums(sums, rows)`
// into its own 2 * C partial sums, blocks spread over the threads, then the blocks added in order into
// `totals` (2 * C).
template <typename BlockSums>
void column_totals(const kernels::ChannelLayout& layout, std::vector<double>& totals, BlockSums&& block_sums) {
  const std::int64_t channels = layout.channels;
  const std::int64_t blocks = (layout.batch + kRowBlock - 1) / kRowBlock;
  std::vector<double> partials(static_cast<std::size_t>(blocks * 2 * channels), 0.0);
  const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / (kRowBlock * channels));
  parallel_for(0, blocks, grain, [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t b = first; b < last; ++b) {
      block_sums(partials.data() + b * 2 * channels,
                 Rows{channels, b * kRowBlock, std::min(layout.batch, (b + 1) * kRowBlock)});
    }
  });
  totals.assign(static_cast<std::size_t>(2 * channels), 0.0);
  for (std::int64_t b = 0; b < blocks; ++b) {
    for (std::int64_t i = 0; i < 2 * channels; ++i) totals[i] += partials[b * 2 * channels + i];
  }
}

// The second pass of the column layout: `apply(rows)` over the rows, whole rows per thread.
template <typename Apply>
void column_rows(const kernels::ChannelLayout& layout, Apply&& apply) {
  const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(1, layout.channels));
  parallel_for(0, layout.batch, grain, [&](std::int64_t first, std::int64_t last) {
    apply(Rows{layout.channels, first, last});
  });
}

template <typename T>
void batch_norm_columns(const kernels::ChannelLayout& layout, T* y, T* mean, T* var, const T* x, const T* weight,
                        const T* bias, double eps) {
  const ColumnKernels<T> kernels = column_kernels<T>();
  const SumsKernel<T> sums = kernels.sums;
  const ApplyKernel<T> apply = kernels.apply;
  std::vector<double> totals;
  column_totals(layout, totals, [&](double* block, const Rows& rows) { sums(block, x, rows); });
  const auto count = static_cast<double>(layout.batch);
  ColumnConstants<T> k(layout.channels);
  for (std::int64_t c = 0; c < layout.channels; ++c) {
    // As batch_norm_channels: y = ((x - sample) - (mean - sample)) * (invstd * weight) + bias.
    const double offset = totals[c] / count;
    const double v = std::max(totals[layout.channels + c] / count - offset * offset, 0.0);
    mean[c] = static_cast<T>(static_cast<double>(x[c]) + offset);
    var[c] = static_cast<T>(v);
    k.sample[c] = x[c];
    k.center[c] = static_cast<T>(offset);
    k.slope[c] = static_cast<T>(static_cast<double>(weight[c]) / std::sqrt(v + eps));
    k.offset[c] = bias[c];
  }
  column_rows(layout, [&](const Rows& rows) { apply(y, nullptr, x, k, rows); });
}

template <typename T>
void batch_norm_backward_columns(const kernels::ChannelLayout& layout, T* dx, T* dweight, T* dbias, const T* g,
                                 const T* x, const T* mean, const T* var, const T* weight, double eps) {
  const ColumnKernels<T> kernels = column_kernels<T>();
  const GradSumsKernel<T> sums = kernels.grad_sums;
  const ApplyKernel<T> apply = kernels.apply;
  const std::vector<double> m(mean, mean + layout.channels);
  std::vector<double> totals;
  column_totals(layout, totals, [&](double* block, const Rows& rows) { sums(block, g, x, m.data(), rows); });
  const auto count = static_cast<double>(layout.batch);
  ColumnConstants<T> k(layout.channels);
  for (std::int64_t c = 0; c < layout.channels; ++c) {
    // As batch_norm_backward_channels: dx = scale * g + slope * ((x - sample) - center) + offset.
    const double invstd = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    const double sum_g = totals[c];
    const double sum_g_xhat = totals[layout.channels + c] * invstd;
    dbias[c] = static_cast<T>(sum_g);
    dweight[c] = static_cast<T>(sum_g_xhat);
    const double scale = static_cast<double>(weight[c]) * invstd;
    k.a[c] = static_cast<T>(scale);
    k.slope[c] = static_cast<T>(-scale * invstd * sum_g_xhat / count);
    k.offset[c] = static_cast<T>(-scale * sum_g / count);
    k.sample[c] = x[c];
    k.center[c] = static_cast<T>(m[c] - static_cast<double>(x[c]));
  }
  column_rows(layout, [&](const Rows& rows) { apply(dx, g, x, k, rows); });
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
    if (layout.spatial == 1) {
      if (layout.size() == 0) return;
      batch_norm_columns<T>(layout, y.ptr<T>(), mean.ptr<T>(), var.ptr<T>(), x.ptr<T>(), weight.ptr<T>(), bias.ptr<T>(),
                            eps);
      return;
    }
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
    if (layout.spatial == 1) {
      if (layout.size() == 0) return;
      batch_norm_backward_columns<T>(layout, dx.ptr<T>(), dweight.ptr<T>(), dbias.ptr<T>(), g.ptr<T>(), x.ptr<T>(),
                                     mean.ptr<T>(), var.ptr<T>(), weight.ptr<T>(), eps);
      return;
    }
    const BackwardKernel<T> kernel = backward_kernel<T>();
    parallel_channels(layout, [&](const Channels& part) {
      kernel(dx.ptr<T>(), dweight.ptr<T>(), dbias.ptr<T>(), g.ptr<T>(), x.ptr<T>(), mean.ptr<T>(), var.ptr<T>(),
             weight.ptr<T>(), part, eps);
    });
  });
}

}  // namespace needle
