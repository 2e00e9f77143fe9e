// Reverse-mode differentiation over the recorded graph.
#pragma once

#include <functional>
#include <vector>

#include "needle/autograd/tensor.h"

namespace needle::autograd {

// Every tensor reachable from `outputs` through op inputs, each after all of its inputs (a topological
// order; Needle's find_topo_sort). Iterative, so deep graphs (long RNN unrolls) do not exhaust the stack.
std::vector<Tensor> topological_order(const std::vector<Tensor>& outputs);

// The work behind Tensor::backward (see there).
void backward(const Tensor& output, const Tensor& out_grad, bool retain_graph, bool create_graph);

// Queues `callback` to run once the backward pass now running on this thread has handled every node
// (PyTorch's queue_callback): how a gradient hook says "and when backward is over, do this" (wait for the
// all-reduces the hooks started). RuntimeError outside a backward pass. Callbacks run in queue order; if
// backward fails before its end, they are dropped.
void queue_callback(std::function<void()> callback);

}  // namespace needle::autograd
