// gather and scatter_add: element-wise walks where one coordinate comes from the index array.
#include <cstddef>

#include "backend/element_ops.h"
#include "backend/kernel_plans.h"
#include "backend/ref/ref_kernels.h"
#include "backend/strided_loop.h"
#include "backend/view_checks.h"

namespace needle::ref {

using kernels::for_each_offset;
using kernels::Offsets;

void gather(const StridedView& out, const StridedView& in, const StridedView& index, std::int64_t axis) {
  const kernels::IndexedAxis plan = kernels::indexed_axis(in, axis);
  const std::int64_t axis_stride = plan.axis_stride;
  const Strides& in_strides = plan.strides;

  dispatch_dtype(out.dtype, [&]<typename T>() {
    T* o = out.ptr<T>();
    const T* i = in.ptr<T>();
    const auto* idx = index.ptr<std::int64_t>();
    for_each_offset(out.shape, {&out.strides, &index.strides, &in_strides},
                    [&](const Offsets<3>& at) { o[at[0]] = i[at[2] + idx[at[1]] * axis_stride]; });
  });
}

void scatter_add(const StridedView& out, const StridedView& index, const StridedView& src, std::int64_t axis) {
  const kernels::IndexedAxis plan = kernels::indexed_axis(out, axis);
  const std::int64_t axis_stride = plan.axis_stride;
  const Strides& out_strides = plan.strides;

  dispatch_dtype(out.dtype, [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      kernels::throw_unsupported_dtype<T>("scatter_add");
    } else {
      T* o = out.ptr<T>();
      const T* s = src.ptr<T>();
      const auto* idx = index.ptr<std::int64_t>();
      // Walking src in row-major order fixes the order in which colliding indices accumulate.
      for_each_offset(src.shape, {&src.strides, &index.strides, &out_strides}, [&](const Offsets<3>& at) {
        T& target = o[at[2] + idx[at[1]] * axis_stride];
        target = kernels::add(target, s[at[0]]);
      });
    }
  });
}

}  // namespace needle::ref
