// The autograd graph behind a tensor as Graphviz DOT: one box per op (its name, output shape and dtype,
// and its call site when known), one ellipse per leaf (shape, dtype, whether it requires a gradient),
// edges from inputs to the ops that use them. Leaves that require a gradient are where gradients
// accumulate (their .grad); a tensor used by several ops is where the engine sums the gradients flowing
// back from those uses, and is marked with the number of uses. Render with `dot -Tsvg graph.dot`.
#pragma once

#include <string>

#include "needle/autograd/tensor.h"

namespace needle::debug {

std::string graph_dot(const Tensor& root);
// Writes graph_dot(root) to `path` (RuntimeError naming the path when it cannot).
void write_graph_dot(const Tensor& root, const std::string& path);

}  // namespace needle::debug
