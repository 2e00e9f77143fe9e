// Reductions (sum/max/min over any set of axes) and arg_reduce. Each output element reduces a "block"
// of input elements: a thread per output when blocks are small or strided across outputs, a thread
// block per output (warp shuffles, then shared memory) when blocks are large. One pass either way.
#include "backend/cuda/cuda_common.cuh"
#include "backend/kernel_plans.h"

namespace needle::cuda {

namespace {

struct SumCombine {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return add(a, b);
  }
};
struct MaxCombine {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return maximum(a, b);
  }
};
struct MinCombine {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return minimum(a, b);
  }
};

// __shfl_down_sync has no bool or std::int64_t (long) overloads on every platform: go through types it has.
template <typename T>
__device__ __forceinline__ T shuffle_down(T value, unsigned int delta) {
  if constexpr (std::is_same_v<T, bool>) {
    return __shfl_down_sync(0xFFFFFFFFU, static_cast<int>(value), delta) != 0;
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    return static_cast<T>(__shfl_down_sync(0xFFFFFFFFU, static_cast<long long>(value), delta));
  } else {
    return __shfl_down_sync(0xFFFFFFFFU, value, delta);
  }
}

// The starting value of each partial result: 0 for sums; for max/min the block's first element, which
// is always present and leaves the result unchanged however often it is combined.
template <typename T, bool IsSum>
__device__ __forceinline__ T initial(const T* first) {
  if constexpr (IsSum) {
    return T(0);
  } else {
    return first[0];
  }
}

// One thread per output element.
template <typename T, typename Combine, bool IsSum>
__global__ void reduce_per_thread(std::int64_t outputs, std::int64_t block_size, OffsetCalc<2> outer,
                                  OffsetCalc<1> inner, T* out, const T* in) {
  const Combine combine;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < outputs; o += step) {
    std::int64_t at[2];
    outer.offsets(o, at);
    const T* first = in + at[1];
    T acc = initial<T, IsSum>(first);
    for (std::int64_t j = 0; j < block_size; ++j) {
      std::int64_t within[1];
      inner.offsets(j, within);
      acc = combine(acc, first[within[0]]);
    }
    out[at[0]] = acc;
  }
}

// One thread block per output element: threads stride over the block, then combine in registers
// (warp shuffles) and across warps in shared memory.
template <typename T, typename Combine, bool IsSum>
__global__ void reduce_per_block(std::int64_t outputs, std::int64_t block_size, OffsetCalc<2> outer,
                                 OffsetCalc<1> inner, T* out, const T* in) {
  const Combine combine;
  __shared__ T partials[kThreads / 32];
  for (std::int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    std::int64_t at[2];
    outer.offsets(o, at);
    const T* first = in + at[1];
    T acc = initial<T, IsSum>(first);
    for (std::int64_t j = threadIdx.x; j < block_size; j += blockDim.x) {
      std::int64_t within[1];
      inner.offsets(j, within);
      acc = combine(acc, first[within[0]]);
    }
    for (unsigned int delta = 16; delta > 0; delta /= 2) acc = combine(acc, shuffle_down(acc, delta));
    const unsigned int warp = threadIdx.x / 32;
    if (threadIdx.x % 32 == 0) partials[warp] = acc;
    __syncthreads();
    if (warp == 0) {
      acc = threadIdx.x < blockDim.x / 32 ? partials[threadIdx.x] : initial<T, IsSum>(first);
      for (unsigned int delta = 16; delta > 0; delta /= 2) acc = combine(acc, shuffle_down(acc, delta));
      if (threadIdx.x == 0) out[at[0]] = acc;
    }
    __syncthreads();  // partials is reused by the next output
  }
}

template <typename T, typename Combine, bool IsSum>
void launch_reduce(Context& ctx, std::string_view name, const StridedView& out, const StridedView& in,
                   const Shape& block) {
  const std::int64_t outputs = out.size();
  if (outputs == 0) return;
  const std::int64_t block_size = numel(block);
  // The output's shape walks the input too: reduced axes have extent 1 there, so only their first
  // position is visited.
  const OffsetCalc<2> outer = make_offset_calc<2>(name, out.shape, {&out.strides, &in.strides});
  const OffsetCalc<1> inner = make_offset_calc<1>(name, block, {&in.strides});
  // A block per output pays when the block is large and contiguous (coalesced reads) or when there are
  // too few outputs to fill the device with one thread each; otherwise neighbouring threads read
  // neighbouring columns and a thread per output reads memory in order.
  const bool contiguous_block = inner.ndim >= 1 && inner.strides[0][inner.ndim - 1] == 1;
  const bool per_block = block_size >= 128 && (contiguous_block || outputs < 4096);
  if (per_block) {
    const auto blocks = static_cast<unsigned int>(outputs < (1 << 20) ? outputs : (1 << 20));
    reduce_per_block<T, Combine, IsSum>
        <<<blocks, kThreads, 0, ctx.stream>>>(outputs, block_size, outer, inner, out.ptr<T>(), in.ptr<T>());
  } else {
    reduce_per_thread<T, Combine, IsSum><<<blocks_for(outputs), kThreads, 0, ctx.stream>>>(
        outputs, block_size, outer, inner, out.ptr<T>(), in.ptr<T>());
  }
  check_launch(name);
}

template <typename T>
__global__ void arg_reduce_kernel(std::int64_t outputs, std::int64_t extent, std::int64_t stride, bool is_max,
                                  OffsetCalc<2> outer, std::int64_t* out, const T* in) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < outputs; o += step) {
    std::int64_t at[2];
    outer.offsets(o, at);
    const T* first = in + at[1];
    std::int64_t best_index = 0;
    T best = first[0];
    // The first NaN is the answer, so the scan stops there.
    for (std::int64_t j = 1; j < extent && !is_nan(best); ++j) {
      const T x = first[j * stride];
      const bool better = is_max ? x > best : x < best;
      if (better || is_nan(x)) {
        best = x;
        best_index = j;
      }
    }
    out[at[0]] = best_index;
  }
}

}  // namespace

void reduce(Context& ctx, ReduceOp op, const StridedView& out, const StridedView& in) {
  const std::string_view name = reduce_op_name(op);
  const Shape block = kernels::reduction_block(out, in);
  dispatch(in.dtype, [&]<typename T>() {
    switch (op) {
      case ReduceOp::Sum:
        if constexpr (std::is_same_v<T, bool>) {
          throw_unsupported_dtype<T>(name);
        } else {
          launch_reduce<T, SumCombine, true>(ctx, name, out, in, block);
        }
        return;
      case ReduceOp::Max:
        return launch_reduce<T, MaxCombine, false>(ctx, name, out, in, block);
      case ReduceOp::Min:
        return launch_reduce<T, MinCombine, false>(ctx, name, out, in, block);
    }
  });
}

void arg_reduce(Context& ctx, ArgReduceOp op, const StridedView& out, const StridedView& in, std::int64_t axis) {
  const std::string_view name = op == ArgReduceOp::Argmax ? "argmax" : "argmin";
  const auto ax = static_cast<std::size_t>(axis);
  const std::int64_t extent = in.shape[ax];
  const std::int64_t outputs = out.size();
  if (outputs == 0) return;
  const OffsetCalc<2> outer = make_offset_calc<2>(name, out.shape, {&out.strides, &in.strides});
  dispatch(in.dtype, [&]<typename T>() {
    arg_reduce_kernel<T><<<blocks_for(outputs), kThreads, 0, ctx.stream>>>(
        outputs, extent, in.strides[ax], op == ArgReduceOp::Argmax, outer, out.ptr<std::int64_t>(), in.ptr<T>());
    check_launch(name);
  });
}

}  // namespace needle::cuda
