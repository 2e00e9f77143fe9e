// What the ref and cuda kernels work out the same way before their loops: which block of the input each
// output element of a reduction folds, and how gather/scatter_add address the indexed axis. The operands
// were checked by Backend's entry point (kernel_contracts.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "needle/backend/backend.h"

namespace needle::kernels {

// Backend::reduce: the input splits into the output's shape (a reduced axis has extent 1 there) and, for
// each output element, the block of reduced axes returned here (extent 1 on kept axes).
inline Shape reduction_block(const StridedView& out, const StridedView& in) {
  Shape block(in.shape.size(), 1);
  for (std::size_t d = 0; d < in.shape.size(); ++d) {
    if (out.shape[d] == 1 && in.shape[d] != 1) block[d] = in.shape[d];
  }
  return block;
}

// How gather reads and scatter_add writes the indexed array along `axis`: its strides with that axis's
// zeroed (the walk stays on coordinate 0 there) and the stride the kernel multiplies each index by.
struct IndexedAxis {
  Strides strides;
  std::int64_t axis_stride = 0;
};

inline IndexedAxis indexed_axis(const StridedView& indexed, std::int64_t axis) {
  IndexedAxis plan{indexed.strides, indexed.strides[static_cast<std::size_t>(axis)]};
  plan.strides[static_cast<std::size_t>(axis)] = 0;
  return plan;
}

}  // namespace needle::kernels
