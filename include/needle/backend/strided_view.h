// What a kernel sees of an array: StridedView, the address of its first element and how to step through it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "needle/core/dtype.h"
#include "needle/core/shape.h"

namespace needle {

// The address of an array's first element (storage + offset), its dtype, shape and strides (in elements).
// Element (i0, i1, ...) lives at data + sum(ik * strides[k]) elements.
struct StridedView {
  void* data = nullptr;
  DType dtype = DType::Float32;
  Shape shape;
  Strides strides;

  [[nodiscard]] std::int64_t ndim() const { return static_cast<std::int64_t>(shape.size()); }
  [[nodiscard]] std::int64_t size() const { return numel(shape); }
  // Row-major without gaps: the elements are data[0 .. size()). The stride of a size-1 dimension is never
  // stepped, so it may be anything (as NDArray::is_compact allows), e.g. a transposed (1, n) row.
  [[nodiscard]] bool is_contiguous() const {
    if (size() <= 1) return true;
    if (strides.size() != shape.size()) return false;
    const Strides expected = compact_strides(shape);
    for (std::size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] != 1 && strides[d] != expected[d]) return false;
    }
    return true;
  }
  template <typename T>
  [[nodiscard]] T* ptr() const {
    return static_cast<T*>(data);
  }
};

}  // namespace needle
