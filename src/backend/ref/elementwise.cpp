// Element-wise `ref` kernels: one strided walk per call, one scalar operation per element.
#include "backend/element_math.h"
#include "backend/element_ops.h"
#include "backend/ref/ref_kernels.h"
#include "backend/strided_loop.h"
#include "backend/view_checks.h"

namespace needle::ref {

using kernels::for_each_offset;
using kernels::Offsets;

void fill(const StridedView& out, const Scalar& value) {
  dispatch_dtype(out.dtype, [&]<typename T>() {
    const T v = value.to<T>();
    T* o = out.ptr<T>();
    for_each_offset(out.shape, {&out.strides}, [&](const Offsets<1>& at) { o[at[0]] = v; });
  });
}

void copy(const StridedView& out, const StridedView& in) {
  dispatch_dtype(out.dtype, [&]<typename To>() {
    dispatch_dtype(in.dtype, [&]<typename From>() {
      To* o = out.ptr<To>();
      const From* i = in.ptr<From>();
      for_each_offset(out.shape, {&out.strides, &in.strides},
                      [&](const Offsets<2>& at) { o[at[0]] = math::convert<To>(i[at[1]]); });
    });
  });
}

void unary(UnaryOp op, const StridedView& out, const StridedView& in) {
  dispatch_dtype(in.dtype, [&]<typename T>() {
    kernels::with_unary_op<T>(op, [&](auto f) {
      T* o = out.ptr<T>();
      const T* i = in.ptr<T>();
      for_each_offset(out.shape, {&out.strides, &in.strides}, [&](const Offsets<2>& at) { o[at[0]] = f(i[at[1]]); });
    });
  });
}

void binary(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) {
  dispatch_dtype(a.dtype, [&]<typename T>() {
    kernels::with_binary_op<T>(op, [&](auto f) {
      using R = decltype(f(T{}, T{}));
      R* o = out.ptr<R>();
      const T* pa = a.ptr<T>();
      const T* pb = b.ptr<T>();
      for_each_offset(out.shape, {&out.strides, &a.strides, &b.strides},
                      [&](const Offsets<3>& at) { o[at[0]] = f(pa[at[1]], pb[at[2]]); });
    });
  });
}

void where(const StridedView& out, const StridedView& cond, const StridedView& a, const StridedView& b) {
  dispatch_dtype(out.dtype, [&]<typename T>() {
    T* o = out.ptr<T>();
    const bool* c = cond.ptr<bool>();
    const T* pa = a.ptr<T>();
    const T* pb = b.ptr<T>();
    for_each_offset(out.shape, {&out.strides, &cond.strides, &a.strides, &b.strides},
                    [&](const Offsets<4>& at) { o[at[0]] = math::select(c[at[1]], pa[at[2]], pb[at[3]]); });
  });
}

}  // namespace needle::ref
