// What the ref and cuda kernels work out the same way before their loops: which block of the input each
// output element of a reduction folds, and how gather/scatter_add address the indexed axis. Each also
// checks the array layer's promise for its kernel (a failure is a bug above the backend: RuntimeError).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "backend/view_checks.h"
#include "needle/backend/backend.h"

namespace needle::kernels {

// Backend::reduce: the input splits into the output's shape (a reduced axis has extent 1 there) and, for
// each output element, the block of reduced axes returned here (extent 1 on kept axes). Max and Min of an
// empty block are refused (ValueError).
inline Shape reduction_block(ReduceOp op, const StridedView& out, const StridedView& in) {
  const std::string_view name = reduce_op_name(op);
  expect_rank(name, "output", out, in.ndim());
  expect_dtype(name, "output", out, in.dtype);
  Shape block(in.shape.size(), 1);
  for (std::size_t d = 0; d < in.shape.size(); ++d) {
    const bool reduced = out.shape[d] == 1 && in.shape[d] != 1;
    NEEDLE_CHECK(reduced || out.shape[d] == in.shape[d], RuntimeError, name, ": output shape ", shape_str(out.shape),
                 " does not fit input shape ", shape_str(in.shape));
    if (reduced) block[d] = in.shape[d];
  }
  NEEDLE_CHECK(op == ReduceOp::Sum || numel(block) > 0 || out.size() == 0, ValueError, name,
               ": cannot reduce an empty set of elements");
  return block;
}

// How gather reads and scatter_add writes the indexed array along `axis`: its strides with that axis's
// zeroed (the walk stays on coordinate 0 there) and the stride the kernel multiplies each index by.
struct IndexedAxis {
  Strides strides;
  std::int64_t axis_stride = 0;
};

inline IndexedAxis indexed_axis(std::string_view op, const StridedView& indexed, std::int64_t axis) {
  NEEDLE_CHECK(axis >= 0 && axis < indexed.ndim(), RuntimeError, op, ": axis ", axis, " out of range for ",
               indexed.ndim(), " dimensions");
  IndexedAxis plan{indexed.strides, indexed.strides[static_cast<std::size_t>(axis)]};
  plan.strides[static_cast<std::size_t>(axis)] = 0;
  return plan;
}

// Backend::gather: index is int64 with out's shape, in has out's rank and dtype.
inline IndexedAxis gather_plan(const StridedView& out, const StridedView& in, const StridedView& index,
                               std::int64_t axis) {
  expect_shape("gather", "index", index, out.shape);
  expect_dtype("gather", "index", index, DType::Int64);
  expect_rank("gather", "input", in, out.ndim());
  expect_dtype("gather", "input", in, out.dtype);
  return indexed_axis("gather", in, axis);
}

// Backend::scatter_add: index is int64 with src's shape, out has src's rank and dtype.
inline IndexedAxis scatter_add_plan(const StridedView& out, const StridedView& index, const StridedView& src,
                                    std::int64_t axis) {
  expect_shape("scatter_add", "index", index, src.shape);
  expect_dtype("scatter_add", "index", index, DType::Int64);
  expect_rank("scatter_add", "output", out, src.ndim());
  expect_dtype("scatter_add", "source", src, out.dtype);
  return indexed_axis("scatter_add", out, axis);
}

}  // namespace needle::kernels
