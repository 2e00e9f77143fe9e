// Sanity checks of what the layer above hands to a kernel. A failure here is a bug above the backend,
// so it is a RuntimeError; checking costs nothing next to the kernel and beats reading wild memory.
#pragma once

#include <cstdint>
#include <string_view>

#include "needle/backend/backend.h"
#include "needle/core/error.h"

namespace needle::kernels {

inline void expect_dtype(std::string_view op, std::string_view operand, const StridedView& view, DType dtype) {
  NEEDLE_CHECK(view.dtype == dtype, RuntimeError, op, ": ", operand, " has dtype ", dtype_name(view.dtype),
               ", expected ", dtype_name(dtype));
}

inline void expect_shape(std::string_view op, std::string_view operand, const StridedView& view, const Shape& shape) {
  NEEDLE_CHECK(view.shape == shape, RuntimeError, op, ": ", operand, " has shape ", shape_str(view.shape),
               ", expected ", shape_str(shape));
  NEEDLE_CHECK(view.strides.size() == view.shape.size(), RuntimeError, op, ": ", operand, " has ", view.strides.size(),
               " strides for ", view.shape.size(), " dimensions");
}

inline void expect_rank(std::string_view op, std::string_view operand, const StridedView& view, std::int64_t ndim) {
  NEEDLE_CHECK(view.ndim() == ndim && view.strides.size() == view.shape.size(), RuntimeError, op, ": ", operand,
               " has ", view.ndim(), " dimensions, expected ", ndim);
}

}  // namespace needle::kernels
