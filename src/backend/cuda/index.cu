// gather and scatter_add: element-wise launches where one coordinate comes from the index array.
// scatter_add accumulates with atomics, so colliding float additions happen in an unspecified order
// (the result can differ from ref's row-major order by rounding); integer results are exact.
#include "backend/cuda/cuda_common.cuh"
#include "backend/kernel_plans.h"

namespace needle::cuda {

namespace {

template <typename T>
struct GatherFn {
  T* out;
  const T* in;
  const std::int64_t* index;
  std::int64_t axis_stride;
  __device__ void operator()(const std::int64_t (&at)[3]) const { out[at[0]] = in[at[2] + index[at[1]] * axis_stride]; }
};

template <typename T>
__device__ __forceinline__ void atomic_add(T* target, T value) {
  if constexpr (std::is_same_v<T, std::int64_t>) {
    // Two's complement: unsigned addition wraps exactly like the host's wrapping int64 add.
    atomicAdd(reinterpret_cast<unsigned long long*>(target), static_cast<unsigned long long>(value));
  } else if constexpr (std::is_same_v<T, std::int32_t>) {
    atomicAdd(reinterpret_cast<unsigned int*>(target), static_cast<unsigned int>(value));
  } else if constexpr (sizeof(T) == 1) {
    // No 8-bit atomicAdd: add into the byte's lane of its aligned 32-bit word by compare-and-swap (a
    // wrapping unsigned byte add is the two's complement add of int8 too).
    const auto address = reinterpret_cast<std::uintptr_t>(target);
    auto* word = reinterpret_cast<unsigned int*>(address & ~std::uintptr_t{3});
    const unsigned int shift = static_cast<unsigned int>(address & 3U) * 8U;
    unsigned int old = *word;
    unsigned int assumed = 0;
    do {
      assumed = old;
      const auto sum = static_cast<unsigned char>(((assumed >> shift) & 0xFFU) + static_cast<unsigned char>(value));
      old = atomicCAS(word, assumed, (assumed & ~(0xFFU << shift)) | (static_cast<unsigned int>(sum) << shift));
    } while (assumed != old);
  } else {
    atomicAdd(target, value);
  }
}

template <typename T>
struct ScatterAddFn {
  T* out;
  const T* src;
  const std::int64_t* index;
  std::int64_t axis_stride;
  __device__ void operator()(const std::int64_t (&at)[3]) const {
    atomic_add(out + at[2] + index[at[1]] * axis_stride, src[at[0]]);
  }
};

}  // namespace

void gather(Context& ctx, const StridedView& out, const StridedView& in, const StridedView& index, std::int64_t axis) {
  const kernels::IndexedAxis plan = kernels::indexed_axis(in, axis);
  dispatch(out.dtype, [&]<typename T>() {
    launch_elementwise<3>(ctx, "gather", out.shape, {&out.strides, &index.strides, &plan.strides},
                          GatherFn<T>{out.ptr<T>(), in.ptr<T>(), index.ptr<std::int64_t>(), plan.axis_stride});
  });
}

void scatter_add(Context& ctx, const StridedView& out, const StridedView& index, const StridedView& src,
                 std::int64_t axis) {
  const kernels::IndexedAxis plan = kernels::indexed_axis(out, axis);
  dispatch(out.dtype, [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      throw_unsupported_dtype<T>("scatter_add");
    } else {
      launch_elementwise<3>(ctx, "scatter_add", src.shape, {&src.strides, &index.strides, &plan.strides},
                            ScatterAddFn<T>{out.ptr<T>(), src.ptr<T>(), index.ptr<std::int64_t>(), plan.axis_stride});
    }
  });
}

}  // namespace needle::cuda
