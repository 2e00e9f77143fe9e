// Batched matrix product as the textbook triple loop, one dot product per output element.
#include <cstddef>

#include "backend/element_ops.h"
#include "backend/ref/ref_kernels.h"
#include "backend/strided_loop.h"
#include "backend/view_checks.h"

namespace needle::ref {

void matmul(const StridedView& out, const StridedView& a, const StridedView& b) {
  const std::int64_t ndim = out.ndim();

  const auto row_axis = static_cast<std::size_t>(ndim - 2);
  const auto col_axis = static_cast<std::size_t>(ndim - 1);
  const std::int64_t rows = out.shape[row_axis];
  const std::int64_t cols = out.shape[col_axis];
  const std::int64_t inner = a.shape[col_axis];

  // The batch axes are walked together; a broadcast operand has stride 0 there.
  const Shape batch_shape(out.shape.begin(), out.shape.begin() + ndim - 2);
  const Strides out_batch(out.strides.begin(), out.strides.begin() + ndim - 2);
  const Strides a_batch(a.strides.begin(), a.strides.begin() + ndim - 2);
  const Strides b_batch(b.strides.begin(), b.strides.begin() + ndim - 2);

  dispatch_dtype(out.dtype, [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      kernels::throw_unsupported_dtype<T>("matmul");
    } else {
      kernels::for_each_offset(batch_shape, {&out_batch, &a_batch, &b_batch}, [&](const kernels::Offsets<3>& at) {
        T* o = out.ptr<T>() + at[0];
        const T* pa = a.ptr<T>() + at[1];
        const T* pb = b.ptr<T>() + at[2];
        for (std::int64_t m = 0; m < rows; ++m) {
          for (std::int64_t n = 0; n < cols; ++n) {
            T acc = 0;
            for (std::int64_t k = 0; k < inner; ++k) {
              const T x = pa[m * a.strides[row_axis] + k * a.strides[col_axis]];
              const T y = pb[k * b.strides[row_axis] + n * b.strides[col_axis]];
              acc = kernels::add(acc, kernels::multiply(x, y));
            }
            o[m * out.strides[row_axis] + n * out.strides[col_axis]] = acc;
          }
        }
      });
    }
  });
}

}  // namespace needle::ref
