// `cpu` reductions: a contiguous input reduced over its trailing axes (a sum over everything or over the
// last axis) is a flat loop over consecutive runs; one reduced over a block of axes followed by kept ones
// (a sum over the batch axis) adds whole rows at a time; the rest goes to `ref`.
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

// If `in` reduced into `out` is, after merging axes, (outer, reduced, inner) with the middle block
// reduced and inner > 1 kept (a sum over the batch axis of a (batch, features) gradient, or over H and W
// of an NHWC tensor), returns true and sets the three counts.
bool middle_block(const StridedView& out, const StridedView& in, std::int64_t& outer, std::int64_t& reduced,
                  std::int64_t& inner) {
  if (!in.is_contiguous() || !out.is_contiguous() || out.ndim() != in.ndim()) return false;
  outer = reduced = inner = 1;
  int phase = 0;  // 0: kept axes before the block, 1: in the reduced block, 2: kept axes after it
  for (std::size_t d = 0; d < in.shape.size(); ++d) {
    if (in.shape[d] == 1) continue;
    const bool is_reduced = out.shape[d] == 1;
    if (!is_reduced && out.shape[d] != in.shape[d]) return false;  // malformed: let ref report it
    if (is_reduced) {
      if (phase == 2) return false;  // a second reduced block
      phase = 1;
      reduced *= in.shape[d];
    } else if (phase == 0) {
      outer *= in.shape[d];
    } else {
      phase = 2;
      inner *= in.shape[d];
    }
  }
  return phase == 2 && reduced > 1;
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

void CpuBackend::reduce_kernel(ReduceOp op, const StridedView& out, const StridedView& in) {
  std::int64_t outer = 0;
  std::int64_t inner = 0;
  const bool empty_max_or_min = op != ReduceOp::Sum && in.size() == 0;
  std::int64_t reduced = 0;
  if (in.size() > 0 && in.dtype == out.dtype && in.dtype != DType::Bool &&
      middle_block(out, in, outer, reduced, inner)) {
    return reduce_middle(op, out, in, outer, reduced, inner);
  }
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

namespace needle {

// in is (outer, reduced, inner), out is (outer, inner): each output row is the fold of `reduced` input
// rows, combined one row at a time so the inner loop runs along contiguous memory (and vectorises).
// Every output element is still folded in order of the reduced index, so the result does not depend on
// how the work is split over threads (by columns of the inner axis).
void CpuBackend::reduce_middle(ReduceOp op, const StridedView& out, const StridedView& in, std::int64_t outer,
                               std::int64_t reduced, std::int64_t inner) {
  dispatch_dtype(in.dtype, [&]<typename T>() {
    if constexpr (!std::is_same_v<T, bool>) {
      const auto fold = [&](auto combine) {
        // Tasks are (output row, chunk of kColumns columns), so a single output row still uses every thread.
        constexpr std::int64_t kColumns = 512;
        const std::int64_t chunks = (inner + kColumns - 1) / kColumns;
        const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / (reduced * std::min(inner, kColumns)));
        parallel_for(0, outer * chunks, grain, [&](std::int64_t first, std::int64_t last) {
          for (std::int64_t task = first; task < last; ++task) {
            const std::int64_t o = task / chunks;
            const std::int64_t column = (task % chunks) * kColumns;
            const std::int64_t width = std::min(kColumns, inner - column);
            T* acc = out.ptr<T>() + o * inner + column;
            const T* block = in.ptr<T>() + o * reduced * inner + column;
            std::copy_n(block, width, acc);
            for (std::int64_t r = 1; r < reduced; ++r) {
              const T* row = block + r * inner;
              for (std::int64_t k = 0; k < width; ++k) acc[k] = combine(acc[k], row[k]);
            }
          }
        });
      };
      switch (op) {
        case ReduceOp::Sum:
          fold([](T x, T y) { return kernels::add(x, y); });
          break;
        case ReduceOp::Max:
          fold([](T x, T y) { return kernels::maximum(x, y); });
          break;
        case ReduceOp::Min:
          fold([](T x, T y) { return kernels::minimum(x, y); });
          break;
      }
    }
  });
}

}  // namespace needle
