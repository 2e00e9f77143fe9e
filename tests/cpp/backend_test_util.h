// Host arrays for backend kernel tests: an owned buffer and a StridedView onto it, the view
// transformations the layer above would make (transpose, flip, step slicing, broadcasting), and a
// row-major reader. Written independently of the kernels' own strided walker so the tests check it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include "needle/backend/backend.h"
#include "needle/core/dtype.h"
#include "needle/core/shape.h"

namespace needle::testing {

struct HostArray {
  std::shared_ptr<std::vector<std::int64_t>> buffer;  // int64 cells: 8-byte alignment fits every dtype
  StridedView view;
};

// A contiguous array of zeros.
inline HostArray zeros(DType dtype, const Shape& shape) {
  const auto bytes = static_cast<std::size_t>(std::max<std::int64_t>(numel(shape), 1)) * itemsize(dtype);
  HostArray a;
  a.buffer = std::make_shared<std::vector<std::int64_t>>((bytes + 7) / 8, 0);
  a.view = StridedView{a.buffer->data(), dtype, shape, compact_strides(shape)};
  return a;
}

// A contiguous array holding `values` in row-major order.
template <typename T>
HostArray array_of(const Shape& shape, const std::vector<T>& values) {
  HostArray a = zeros(dtype_of<T>(), shape);
  std::copy(values.begin(), values.end(), a.view.ptr<T>());
  return a;
}

// Every element offset of `view` in row-major order, computed index by index.
inline std::vector<std::int64_t> element_offsets(const StridedView& view) {
  std::vector<std::int64_t> offsets;
  const std::int64_t count = numel(view.shape);
  for (std::int64_t flat = 0; flat < count; ++flat) {
    std::int64_t rest = flat;
    std::int64_t offset = 0;
    for (std::size_t d = view.shape.size(); d-- > 0;) {
      offset += (rest % view.shape[d]) * view.strides[d];
      rest /= view.shape[d];
    }
    offsets.push_back(offset);
  }
  return offsets;
}

// The elements of `view` in row-major order.
template <typename T>
std::vector<T> values_of(const StridedView& view) {
  std::vector<T> values;
  for (std::int64_t offset : element_offsets(view)) values.push_back(view.ptr<T>()[offset]);
  return values;
}

// A view of the same elements with the axes reordered: result axis i is input axis perm[i].
inline HostArray permuted(HostArray a, const std::vector<std::size_t>& perm) {
  const StridedView v = a.view;
  for (std::size_t i = 0; i < perm.size(); ++i) {
    a.view.shape[i] = v.shape[perm[i]];
    a.view.strides[i] = v.strides[perm[i]];
  }
  return a;
}

// The axes in reverse order (a.T).
inline HostArray transposed(HostArray a) {
  std::vector<std::size_t> perm(a.view.shape.size());
  std::iota(perm.rbegin(), perm.rend(), std::size_t{0});
  return permuted(std::move(a), perm);
}

// a[..., ::-1, ...] along `axis`: starts at the last element with a negative stride.
inline HostArray flipped(HostArray a, std::size_t axis) {
  StridedView& v = a.view;
  if (v.shape[axis] > 0) {
    v.data = static_cast<char*>(v.data) + static_cast<std::ptrdiff_t>((v.shape[axis] - 1) * v.strides[axis]) *
                                              static_cast<std::ptrdiff_t>(itemsize(v.dtype));
  }
  v.strides[axis] = -v.strides[axis];
  return a;
}

// a[..., ::step, ...] along `axis`.
inline HostArray stepped(HostArray a, std::size_t axis, std::int64_t step) {
  a.view.shape[axis] = (a.view.shape[axis] + step - 1) / step;
  a.view.strides[axis] *= step;
  return a;
}

// NumPy broadcast_to for an array of the same rank: every axis of extent 1 takes `shape`'s extent
// with stride 0.
inline HostArray broadcast_to(HostArray a, const Shape& shape) {
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (a.view.shape[d] == 1 && shape[d] != 1) {
      a.view.shape[d] = shape[d];
      a.view.strides[d] = 0;
    }
  }
  return a;
}

}  // namespace needle::testing
