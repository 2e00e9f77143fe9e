// Reverse-mode differentiation over the recorded graph.
#pragma once

#include <vector>

#include "needle/autograd/tensor.h"

namespace needle::autograd {

// Every tensor reachable from `outputs` through op inputs, each after all of its inputs (a topological
// order; Needle's find_topo_sort). Iterative, so deep graphs (long RNN unrolls) do not exhaust the stack.
std::vector<Tensor> topological_order(const std::vector<Tensor>& outputs);

// The work behind Tensor::backward (see there).
void backward(const Tensor& output, const Tensor& out_grad, bool retain_graph, bool create_graph);

}  // namespace needle::autograd
