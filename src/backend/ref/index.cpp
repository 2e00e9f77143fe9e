// gather and scatter_add: element-wise walks where one coordinate comes from the index array.
#include <cstddef>

#include "backend/element_ops.h"
#include "backend/ref/ref_kernels.h"
#include "backend/strided_loop.h"
#include "backend/view_checks.h"

namespace needle::ref {

using kernels::for_each_offset;
using kernels::Offsets;

namespace {

// The strides of `view` with the `axis` one zeroed: walking them stays on coordinate 0 of that axis,
// and the kernel adds index * stride itself.
Strides without_axis(const StridedView& view, std::size_t axis) {
  Strides strides = view.strides;
  strides[axis] = 0;
  return strides;
}

void check_axis(std::string_view op, std::int64_t axis, std::int64_t ndim) {
  NEEDLE_CHECK(axis >= 0 && axis < ndim, RuntimeError, op, ": axis ", axis, " out of range for ", ndim, " dimensions");
}

}  // namespace

void gather(const StridedView& out, const StridedView& in, const StridedView& index, std::int64_t axis) {
  kernels::expect_shape("gather", "index", index, out.shape);
  kernels::expect_dtype("gather", "index", index, DType::Int64);
  kernels::expect_rank("gather", "input", in, out.ndim());
  kernels::expect_dtype("gather", "input", in, out.dtype);
  check_axis("gather", axis, out.ndim());
  const auto ax = static_cast<std::size_t>(axis);
  const std::int64_t axis_stride = in.strides[ax];
  const Strides in_strides = without_axis(in, ax);

  dispatch_dtype(out.dtype, [&]<typename T>() {
    T* o = out.ptr<T>();
    const T* i = in.ptr<T>();
    const auto* idx = index.ptr<std::int64_t>();
    for_each_offset(out.shape, {&out.strides, &index.strides, &in_strides},
                    [&](const Offsets<3>& at) { o[at[0]] = i[at[2] + idx[at[1]] * axis_stride]; });
  });
}

void scatter_add(const StridedView& out, const StridedView& index, const StridedView& src, std::int64_t axis) {
  kernels::expect_shape("scatter_add", "index", index, src.shape);
  kernels::expect_dtype("scatter_add", "index", index, DType::Int64);
  kernels::expect_rank("scatter_add", "output", out, src.ndim());
  kernels::expect_dtype("scatter_add", "source", src, out.dtype);
  check_axis("scatter_add", axis, src.ndim());
  const auto ax = static_cast<std::size_t>(axis);
  const std::int64_t axis_stride = out.strides[ax];
  const Strides out_strides = without_axis(out, ax);

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
