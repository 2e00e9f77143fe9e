// Reductions: for every output element, walk the block of input elements that collapses into it.
#include <cstddef>

#include "backend/element_ops.h"
#include "backend/kernel_plans.h"
#include "backend/ref/ref_kernels.h"
#include "backend/strided_loop.h"
#include "backend/view_checks.h"

namespace needle::ref {

using kernels::for_each_offset;
using kernels::Offsets;

void reduce(ReduceOp op, const StridedView& out, const StridedView& in) {
  const std::string_view name = reduce_op_name(op);
  // The output's shape is walked together with the input (a reduced axis has extent 1 there, so only its
  // first position is visited) and, for each output element, the block of reduced axes from that element's
  // first input element.
  const Shape block = kernels::reduction_block(out, in);

  dispatch_dtype(in.dtype, [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      if (op == ReduceOp::Sum) kernels::throw_unsupported_dtype<T>(name);
    }
    T* o = out.ptr<T>();
    const T* i = in.ptr<T>();
    for_each_offset(out.shape, {&out.strides, &in.strides}, [&](const Offsets<2>& at) {
      const T* first = i + at[1];
      // Max/Min start from the block's first element; Sum from 0 so an empty block sums to 0.
      T acc = op == ReduceOp::Sum ? T(0) : first[0];
      for_each_offset(block, {&in.strides}, [&](const Offsets<1>& within) {
        const T x = first[within[0]];
        switch (op) {
          case ReduceOp::Sum:
            if constexpr (!std::is_same_v<T, bool>) acc = kernels::add(acc, x);
            break;
          case ReduceOp::Max:
            acc = kernels::maximum(acc, x);
            break;
          case ReduceOp::Min:
            acc = kernels::minimum(acc, x);
            break;
        }
      });
      o[at[0]] = acc;
    });
  });
}

void arg_reduce(ArgReduceOp op, const StridedView& out, const StridedView& in, std::int64_t axis) {
  const auto ax = static_cast<std::size_t>(axis);
  const std::int64_t extent = in.shape[ax];
  const std::int64_t stride = in.strides[ax];

  dispatch_dtype(in.dtype, [&]<typename T>() {
    auto* o = out.ptr<std::int64_t>();
    const T* i = in.ptr<T>();
    for_each_offset(out.shape, {&out.strides, &in.strides}, [&](const Offsets<2>& at) {
      const T* first = i + at[1];
      std::int64_t best_index = 0;
      T best = first[0];
      // The first NaN is the answer, so the scan stops there.
      for (std::int64_t j = 1; j < extent && !kernels::is_nan(best); ++j) {
        const T x = first[j * stride];
        const bool better = op == ArgReduceOp::Argmax ? x > best : x < best;
        if (better || kernels::is_nan(x)) {
          best = x;
          best_index = j;
        }
      }
      o[at[0]] = best_index;
    });
  });
}

}  // namespace needle::ref
