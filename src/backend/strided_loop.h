// Walking the elements of N-d strided operands in row-major order.
//
// Every kernel that accepts arbitrary strides needs the same thing: visit each index of a shape and know
// where that element lives in each operand. Keeping one running offset per operand (instead of
// recomputing sum(index * stride) per element) makes the walk cost one add per operand per element.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "needle/core/shape.h"

namespace needle::kernels {

template <std::size_t N>
using Offsets = std::array<std::int64_t, N>;

// Calls fn(offsets) once per index of `shape`, in row-major order, where offsets[k] is the element
// offset of that index in operand k (the sum of index[d] * strides[k][d]). Every strides[k] has
// shape.size() entries; they may be zero or negative. A shape with a zero dimension visits nothing; a
// 0-d shape visits its single element with all offsets 0.
//   for_each_offset(out.shape, {&out.strides, &in.strides}, [&](const Offsets<2>& at) { ... });
template <std::size_t N, typename Fn>
void for_each_offset(const Shape& shape, const Strides* const (&strides)[N], Fn&& fn) {
  if (std::any_of(shape.begin(), shape.end(), [](std::int64_t n) { return n == 0; })) return;
  Offsets<N> offsets{};
  if (shape.empty()) {
    fn(static_cast<const Offsets<N>&>(offsets));
    return;
  }
  const std::size_t ndim = shape.size();
  const std::size_t inner = ndim - 1;
  const std::int64_t inner_size = shape[inner];
  std::array<std::int64_t, N> inner_stride{};
  for (std::size_t k = 0; k < N; ++k) inner_stride[k] = (*strides[k])[inner];

  // index[d] for the outer dimensions; the innermost dimension is the tight loop below.
  std::vector<std::int64_t> index(ndim, 0);
  while (true) {
    // The last element is visited without stepping past it: an offset one stride beyond the array is
    // outside the span NDArray checks, so it may not fit in int64 (a size-1 dimension can have any stride).
    for (std::int64_t i = 1; i < inner_size; ++i) {
      fn(static_cast<const Offsets<N>&>(offsets));
      for (std::size_t k = 0; k < N; ++k) offsets[k] += inner_stride[k];
    }
    fn(static_cast<const Offsets<N>&>(offsets));
    for (std::size_t k = 0; k < N; ++k) offsets[k] -= (inner_size - 1) * inner_stride[k];

    // Advance the outer index like an odometer, rewinding each dimension that wraps around.
    std::size_t d = inner;
    while (true) {
      if (d == 0) return;
      --d;
      if (++index[d] < shape[d]) {
        for (std::size_t k = 0; k < N; ++k) offsets[k] += (*strides[k])[d];
        break;
      }
      index[d] = 0;
      for (std::size_t k = 0; k < N; ++k) offsets[k] -= (shape[d] - 1) * (*strides[k])[d];
    }
  }
}

}  // namespace needle::kernels
