// `cpu` reductions: the common case (a contiguous input reduced over its trailing axes, e.g. sum over
// everything or over the last axis) is a flat loop over consecutive runs; the rest goes to `ref`.
#include <cstddef>

#include "backend/cpu/cpu_backend.h"
#include "backend/element_ops.h"

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
          // Starting from 0 makes an empty run sum to 0.
          for (std::int64_t r = 0; r < outer; ++r) {
            const T* run = i + r * inner;
            T acc = T(0);
            for (std::int64_t k = 0; k < inner; ++k) acc = kernels::add(acc, run[k]);
            o[r] = acc;
          }
        }
        break;
      case ReduceOp::Max:
        fold_runs(o, i, outer, inner, [](T acc, T x) { return kernels::maximum(acc, x); });
        break;
      case ReduceOp::Min:
        fold_runs(o, i, outer, inner, [](T acc, T x) { return kernels::minimum(acc, x); });
        break;
    }
  });
}

}  // namespace needle
