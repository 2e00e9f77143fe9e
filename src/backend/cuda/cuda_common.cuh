// Device-side building blocks of the CUDA kernels: the strided offset calculator, the grid-stride
// launcher and dtype dispatch. The per-element arithmetic is the host backends' own (element_math.h,
// compiled for the device), so every device computes the same numbers.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <type_traits>

#include "backend/cuda/cuda_context.h"
#include "backend/element_math.h"
#include "backend/element_ops.h"
#include "needle/backend/backend.h"
#include "needle/core/error.h"

namespace needle::cuda {

// Dimensions a kernel walks after merging: enough for any array Needle makes (merging contiguous runs
// leaves at most one dimension per discontinuity).
constexpr int kMaxDims = 10;

// Element offsets of N operands that share one shape, computed from a row-major linear index.
template <int N>
struct OffsetCalc {
  int ndim = 0;
  std::int64_t sizes[kMaxDims] = {};
  std::int64_t strides[N][kMaxDims] = {};

  __device__ __forceinline__ void offsets(std::int64_t linear, std::int64_t (&out)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) out[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const std::int64_t size = sizes[d];
      const std::int64_t i = d == 0 ? linear : linear % size;
      linear = d == 0 ? 0 : linear / size;
#pragma unroll
      for (int k = 0; k < N; ++k) out[k] += i * strides[k][d];
    }
  }
};

// Builds the calculator for `shape` and one stride vector per operand, dropping size-1 dimensions and
// merging neighbours that are contiguous in every operand (a contiguous array becomes 1-d).
template <int N>
OffsetCalc<N> make_offset_calc(std::string_view op, const Shape& shape, const Strides* const (&strides)[N]) {
  OffsetCalc<N> calc;
  // Walk from the innermost dimension out, appending to a reversed list.
  std::int64_t rsizes[64];
  std::int64_t rstrides[N][64];
  int count = 0;
  for (std::size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 1) continue;
    if (count > 0) {
      bool mergeable = true;
      for (int k = 0; k < N; ++k) {
        if ((*strides[k])[d] != rstrides[k][count - 1] * rsizes[count - 1]) mergeable = false;
      }
      if (mergeable) {
        rsizes[count - 1] *= shape[d];
        continue;
      }
    }
    NEEDLE_CHECK(count < kMaxDims, RuntimeError, "cuda: ", op, ": shape ", shape_str(shape), " has more than ",
                 kMaxDims, " dimensions that cannot be merged");
    rsizes[count] = shape[d];
    for (int k = 0; k < N; ++k) rstrides[k][count] = (*strides[k])[d];
    ++count;
  }
  calc.ndim = count;
  for (int i = 0; i < count; ++i) {
    calc.sizes[i] = rsizes[count - 1 - i];
    for (int k = 0; k < N; ++k) calc.strides[k][i] = rstrides[k][count - 1 - i];
  }
  return calc;
}

constexpr int kThreads = 256;

inline unsigned int blocks_for(std::int64_t n, int threads = kThreads) {
  // Grid-stride loops cover the rest: a bounded grid keeps launches cheap for huge arrays.
  constexpr std::int64_t kMaxBlocks = std::int64_t{1} << 20;
  const std::int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

// Calls f(offsets) for every linear index < n.
template <int N, typename F>
__global__ void elementwise_kernel(std::int64_t n, OffsetCalc<N> calc, F f) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    std::int64_t at[N];
    calc.offsets(i, at);
    f(at);
  }
}

template <int N, typename F>
void launch_elementwise(Context& ctx, std::string_view op, const Shape& shape, const Strides* const (&strides)[N],
                        F f) {
  const std::int64_t n = numel(shape);
  if (n == 0) return;
  const OffsetCalc<N> calc = make_offset_calc<N>(op, shape, strides);
  elementwise_kernel<N, F><<<blocks_for(n), kThreads, 0, ctx.stream>>>(n, calc, f);
  check_launch(op);
}

// dispatch_dtype's twin for kernel files: calls fn.template operator()<T>().
template <typename Fn>
void dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Bool:
      return fn.template operator()<bool>();
    case DType::UInt8:
      return fn.template operator()<std::uint8_t>();
    case DType::Int8:
      return fn.template operator()<std::int8_t>();
    case DType::Int32:
      return fn.template operator()<std::int32_t>();
    case DType::Int64:
      return fn.template operator()<std::int64_t>();
    case DType::Float32:
      return fn.template operator()<float>();
    case DType::Float64:
      return fn.template operator()<double>();
  }
  throw RuntimeError("cuda: invalid dtype value");
}

using kernels::throw_unsupported_dtype;
using math::add;
using math::is_nan;
using math::kIsInteger;
using math::maximum;
using math::minimum;
using math::multiply;
using math::negate;
using math::subtract;

}  // namespace needle::cuda
