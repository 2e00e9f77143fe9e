// Reverse-mode differentiation: order the graph once, walk it backwards calling each op's gradient,
// accumulate, and release the graph.
#include "needle/autograd/engine.h"

#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "needle/autograd/grad_mode.h"
#include "needle/autograd/op.h"
#include "needle/debug/hooks.h"
#include "needle/ops/ops.h"

namespace needle::autograd {

std::vector<Tensor> topological_order(const std::vector<Tensor>& outputs) {
  std::vector<Tensor> order;
  std::unordered_set<const TensorImpl*> visited;
  // Iterative post-order DFS: a frame is (tensor, index of the next input to visit).
  std::vector<std::pair<Tensor, std::size_t>> stack;
  for (const Tensor& output : outputs) {
    if (!output.defined() || !visited.insert(output.impl().get()).second) continue;
    stack.emplace_back(output, 0);
    while (!stack.empty()) {
      auto& [tensor, next] = stack.back();
      const std::vector<Tensor>& inputs = tensor.inputs();
      if (next < inputs.size()) {
        const Tensor input = inputs[next++];
        if (visited.insert(input.impl().get()).second) stack.emplace_back(input, 0);
      } else {
        order.push_back(tensor);
        stack.pop_back();
      }
    }
  }
  return order;
}

namespace {

void check_not_released(const Tensor& tensor) {
  const std::string& released = tensor.impl()->released_op_name;
  NEEDLE_CHECK(released.empty(), RuntimeError, "backward: the graph through '", released, "' (output of shape ",
               shape_str(tensor.shape()),
               ") was already released by an earlier backward(); call backward(retain_graph=True) the first "
               "time to differentiate the same graph twice");
}

// Adds `grad` to the gradient collected so far for `tensor`.
void accumulate(std::unordered_map<const TensorImpl*, Tensor>& grads, const Tensor& tensor, const Tensor& grad) {
  auto [it, inserted] = grads.try_emplace(tensor.impl().get(), grad);
  if (!inserted) it->second = ops::add(it->second, grad);
}

// Checks one gradient an op returned and converts it to its input's dtype if the op promoted it.
Tensor checked_input_grad(const Op& op, const Tensor& grad, const Tensor& input, std::size_t index) {
  NEEDLE_CHECK(grad.shape() == input.shape(), RuntimeError, op.name(), ": gradient of input ", index, " has shape ",
               shape_str(grad.shape()), " but the input has shape ", shape_str(input.shape()));
  NEEDLE_CHECK(grad.device() == input.device(), RuntimeError, op.name(), ": gradient of input ", index, " is on ",
               grad.device(), " but the input is on ", input.device());
  return grad.dtype() == input.dtype() ? grad : ops::astype(grad, input.dtype());
}

// Drops a node's op and saved inputs; a later backward through it reports the op by name.
void release_node(TensorImpl& impl) {
  if (impl.op == nullptr) return;
  impl.released_op_name = impl.op->name();
  impl.op.reset();
  impl.inputs.clear();
}

}  // namespace

void backward(const Tensor& output, const Tensor& out_grad, bool retain_graph, bool create_graph) {
  const debug::detail::BackwardScope debug_scope;  // tracing and anomaly mode see the whole backward pass
  NEEDLE_CHECK(output.defined(), RuntimeError, "backward: called on an undefined tensor");
  check_not_released(output);
  NEEDLE_CHECK(output.requires_grad(), RuntimeError, "backward: tensor of shape ", shape_str(output.shape()),
               " does not require grad and has no graph to differentiate");
  Tensor seed = out_grad.defined() ? out_grad : Tensor(NDArray::ones(output.shape(), output.dtype(), output.device()));
  NEEDLE_CHECK(seed.shape() == output.shape(), ValueError, "backward: out_grad of shape ", shape_str(seed.shape()),
               " does not match the output's shape ", shape_str(output.shape()));
  NEEDLE_CHECK(seed.device() == output.device(), RuntimeError, "backward: out_grad is on ", seed.device(),
               " but the output is on ", output.device());

  // Without create_graph the gradient computation is not itself recorded.
  std::optional<NoGradGuard> no_grad;
  if (!create_graph) no_grad.emplace();

  std::vector<Tensor> order = topological_order({output});
  // Without retain_graph, each node lets go of its op and its saved inputs as soon as its gradient has been
  // handed on, and the walk drops its own reference to the node: what only the graph kept alive (the
  // inputs saved for backward) is freed during the pass instead of after it, which lowers the peak.
  const bool release = !retain_graph && !create_graph;
  std::unordered_map<const TensorImpl*, Tensor> grads;
  grads.emplace(output.impl().get(), seed);
  for (std::size_t k = order.size(); k-- > 0;) {  // reverse topological order: outputs first
    const Tensor* node = &order[k];
    const auto found = grads.find(node->impl().get());
    if (found == grads.end()) continue;
    const Tensor grad = std::move(found->second);
    grads.erase(found);  // each node's gradient is complete once reached; free it as we go
    check_not_released(*node);

    // Non-leaf gradients are kept only when they carry no graph: a recorded gradient of an intermediate
    // refers back to that intermediate, a reference cycle that would never be freed. (A leaf's recorded
    // gradient also refers to the leaf, as in PyTorch: reset_grad() breaks that cycle.)
    if (node->requires_grad() && (node->is_leaf() || !create_graph)) {
      const Tensor previous = node->grad();
      node->impl()->grad = (previous.defined() ? ops::add(previous, grad) : grad).impl();
    }
    if (node->is_leaf()) continue;
    const Op& op = *node->op();
    const std::vector<Tensor>& inputs = node->inputs();
    const std::vector<Tensor> input_grads =
        debug::detail::enabled() ? debug::detail::compute_gradient(op, grad, *node) : op.gradient(grad, *node);
    NEEDLE_CHECK(input_grads.size() == inputs.size(), RuntimeError, op.name(), ": gradient returned ",
                 input_grads.size(), " gradients for ", inputs.size(), " inputs");
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i].requires_grad() || !input_grads[i].defined()) continue;
      accumulate(grads, inputs[i], checked_input_grad(op, input_grads[i], inputs[i], i));
    }
    if (release) {
      release_node(*node->impl());
      order[k] = Tensor();
    }
  }

  // The nodes the walk did not reach (no gradient flowed to them) are released the same way.
  if (release) {
    for (const Tensor& node : order) {
      if (node.defined()) release_node(*node.impl());
    }
  }
}

}  // namespace needle::autograd
