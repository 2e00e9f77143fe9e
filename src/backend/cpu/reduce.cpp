// `cpu` reductions: the common case (a contiguous input reduced over its trailing axes, e.g. sum over
// everything or over the last axis) is a flat loop over consecutive runs; the rest goes to `ref`.
// Many runs are spread over threads run by run. A float sum keeps 16 partial sums (one per SIMD lane,
// so the loop vectorises) and cuts long runs into fixed blocks that threads sum separately; blocks and
// lanes depend only on the run's length, so the result is the same for every thread count.
#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/element_ops.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

// If `in` reduced into `out` is `outer` consecutive runs of `inner` elements, each collapsing into
// the next element of `out`, returns true and sets both counts.
bool trailing_runs(const StridedView& out, const StridedView& in, std::int64_t& outer, std::int64_t& inner) {
  if (!in.is_contiguous() || !out.is_contiguous() || out.ndim() != in.ndim()) return false;
  const std::size_t ndim = in.shape.size();
  std::size_t first_reduced = ndim;
  for (std::size_t d = 0; d < ndim; ++d) {
    const bool reduced = out.shape[d] == 1 && in.shape[d] != 1;
    if (reduced && first_reduced == ndim) first_reduced = d;
    if (first_reduced == ndim && out.shape[d] != in.shape[d]) return false;  // malformed: let ref report it
    if (!reduced && first_reduced != ndim && in.shape[d] != 1) return false;
  }
  if (first_reduced == ndim) return false;  // nothing reduced: a plain copy
  outer = 1;
  inner = 1;
  for (std::size_t d = 0; d < ndim; ++d) (d < first_reduced ? outer : inner) *= in.shape[d];
  return true;
}

// out[r] = combine(...combine(run[0], run[1])..., run[inner - 1]) for each of the non-empty runs.
template <typename T, typename Combine>
void fold_runs(T* out, const T* in, std::int64_t outer, std::int64_t inner, Combine combine) {
  for (std::int64_t r = 0; r < outer; ++r) {
    const T* run = in + r * inner;
    T acc = run[0];
    for (std::int64_t k = 1; k < inner; ++k) acc = combine(acc, run[k]);
    out[r] = acc;
  }
}

// Reductions over fewer elements than this stay on one thread.
constexpr std::int64_t kParallelGrain = 32768;
// A float sum over more elements than this is summed in blocks of this size, combined in order.
constexpr std::int64_t kSumBlock = 32768;

// fn(first_run, last_run) over `outer` runs of `inner` elements, with enough runs per thread to pay
// for it.
template <typename Fn>
void for_runs(std::int64_t outer, std::int64_t inner, Fn&& fn) {
  const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(inner, 1));
  parallel_for(0, outer, grain, fn);
}

// Sum of x[0..n) in 16 interleaved partial sums, combined pairwise.
template <typename T>
T lane_sum(const T* x, std::int64_t n) {
  constexpr std::int64_t lanes = 16;
  T partial[lanes] = {};
  std::int64_t k = 0;
  for (; k + lanes <= n; k += lanes) {
    for (std::int64_t l = 0; l < lanes; ++l) partial[l] += x[k + l];
  }
  for (std::int64_t l = 0; k < n; ++k, ++l) partial[l] += x[k];
  for (std::int64_t width = lanes / 2; width > 0; width /= 2) {
    for (std::int64_t l = 0; l < width; ++l) partial[l] += partial[l + width];
  }
  return partial[0];
}

// A float sum of one run: blocks of kSumBlock summed (in parallel when the run is long) then added up in
// order.
template <typename T>
T float_run_sum(const T* x, std::int64_t n) {
  if (n <= kSumBlock) return lane_sum(x, n);
  const std::int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<T> block_sums(static_cast<std::size_t>(blocks));
  parallel_for(0, blocks, 1, [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t b = first; b < last; ++b) {
      block_sums[static_cast<std::size_t>(b)] = lane_sum(x + b * kSumBlock, std::min(kSumBlock, n - b * kSumBlock));
    }
  });
  T total = T(0);
  for (T s : block_sums) total += s;
  return total;
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const StridedView& out, const StridedView& in) {
  std::int64_t outer = 0;
  std::int64_t inner = 0;
  const bool empty_max_or_min = op != ReduceOp::Sum && in.size() == 0;
  if (empty_max_or_min || in.dtype != out.dtype || !trailing_runs(out, in, outer, inner)) {
    return ref::reduce(op, out, in);
  }
  dispatch_dtype(in.dtype, [&]<typename T>() {
    T* o = out.ptr<T>();
    const T* i = in.ptr<T>();
    switch (op) {
      case ReduceOp::Sum:
        if constexpr (std::is_same_v<T, bool>) {
          return ref::reduce(op, out, in);  // reports the unsupported dtype
        } else {
          for_runs(outer, inner, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r) {
              const T* run = i + r * inner;
              if constexpr (std::is_floating_point_v<T>) {
                o[r] = float_run_sum(run, inner);
              } else {
                // Starting from 0 makes an empty run sum to 0; integer sums wrap like ref's.
                T acc = T(0);
                for (std::int64_t k = 0; k < inner; ++k) acc = kernels::add(acc, run[k]);
                o[r] = acc;
              }
            }
          });
        }
        break;
      case ReduceOp::Max:
        for_runs(outer, inner, [&](std::int64_t first, std::int64_t last) {
          fold_runs(o + first, i + first * inner, last - first, inner,
                    [](T acc, T x) { return kernels::maximum(acc, x); });
        });
        break;
      case ReduceOp::Min:
        for_runs(outer, inner, [&](std::int64_t first, std::int64_t last) {
          fold_runs(o + first, i + first * inner, last - first, inner,
                    [](T acc, T x) { return kernels::minimum(acc, x); });
        });
        break;
    }
  });
}

}  // namespace needle
