// Reverse-mode differentiation: order the graph once, walk it backwards calling each op's gradient,
// accumulate, and release the graph.
#include "needle/autograd/engine.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "debug/hooks.h"
#include "needle/autograd/grad_mode.h"
#include "needle/autograd/op.h"
#include "needle/ops/ops.h"

namespace needle::autograd {

namespace {

// Appends the outputs of `tensor`'s node that still exist: the tensor alone, or every sibling of a node with
// several outputs (in output order).
void append_node_outputs(const Tensor& tensor, std::vector<Tensor>& outputs) {
  const OutputGroup* group = tensor.impl()->group.get();
  if (group == nullptr) {
    outputs.push_back(tensor);
    return;
  }
  for (const std::weak_ptr<TensorImpl>& output : group->outputs) {
    if (std::shared_ptr<TensorImpl> impl = output.lock()) outputs.emplace_back(std::move(impl));
  }
}

}  // namespace

std::vector<Tensor> topological_order(const std::vector<Tensor>& outputs) {
  std::vector<Tensor> order;
  std::unordered_set<const TensorImpl*> visited;
  // Iterative post-order DFS: a frame is (tensor, index of the next input to visit). The outputs of one node
  // are visited together and placed next to each other, after every input of the node: so in reverse order
  // the engine reaches a node only once every consumer of every one of its outputs has been handled.
  std::vector<std::pair<Tensor, std::size_t>> stack;
  std::vector<Tensor> siblings;
  const auto visit = [&](const Tensor& tensor) {
    if (!visited.insert(tensor.impl().get()).second) return;
    if (tensor.impl()->group != nullptr) {
      siblings.clear();
      append_node_outputs(tensor, siblings);
      for (const Tensor& sibling : siblings) visited.insert(sibling.impl().get());
    }
    stack.emplace_back(tensor, 0);
  };
  for (const Tensor& output : outputs) {
    if (!output.defined()) continue;
    visit(output);
    while (!stack.empty()) {
      auto& [tensor, next] = stack.back();
      const std::vector<Tensor>& inputs = tensor.inputs();
      if (next < inputs.size()) {
        visit(inputs[next++]);
      } else {
        append_node_outputs(tensor, order);
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

// Throws unless every tensor the node saved for its gradient (TensorImpl::saved_versions) still holds the
// storage it held at the forward pass, at the same version: a gradient computed from values written since
// would be silently wrong. Two integer compares per saved tensor.
void check_saved_versions(const Op& op, const TensorImpl& node, const std::vector<Tensor>& inputs,
                          const std::vector<Tensor>& outputs) {
  for (const SavedVersion& saved : node.saved_versions) {
    const Tensor& tensor = saved.output ? outputs[saved.index] : inputs[saved.index];
    const Storage& storage = *tensor.value().storage();
    if (storage.id() == saved.storage_id && storage.version() == saved.version) [[likely]] {
      continue;
    }
    const std::string what = str(saved.output ? "output " : "input ", saved.index, " of ", op.name(), " (shape ",
                                 shape_str(tensor.shape()), ")");
    if (storage.id() != saved.storage_id) {
      throw RuntimeError(str("one of the tensors needed for gradient computation has been replaced: ", what,
                             " was given a new value (Tensor.data = ..., set_value, load_state_dict) after ", op.name(),
                             " saved it for backward: replace it after backward()"));
    }
    throw RuntimeError(
        str("one of the tensors needed for gradient computation has been modified by an inplace "
            "operation: ",
            what, " is at version ", storage.version(), ", expected version ", saved.version,
            "; it was written in place (setitem, fill, an optimizer step, ...) after ", op.name(),
            " saved it for backward: write to a copy, or write after backward()"));
  }
}

// Drops a node's op, saved inputs and (for an op with several outputs) saved output values; a later
// backward through it reports the op by name.
void release_node(TensorImpl& impl) {
  if (impl.op == nullptr) return;
  impl.released_op_name = impl.op->name();
  impl.op.reset();
  impl.inputs.clear();
  impl.saved_versions = {};
  impl.group.reset();
}

// The output tensors a node's gradient is given, into `outputs`: the live outputs themselves, and an output
// the program dropped made again from the value the node kept, as an output of the same node (so that a
// gradient recorded with create_graph still flows through it into the node's inputs).
void gradient_outputs_of(const Tensor& node, std::vector<Tensor>& outputs) {
  outputs.clear();
  const TensorImpl& impl = *node.impl();
  if (impl.group == nullptr) {
    outputs.push_back(node);
    return;
  }
  OutputGroup& group = *impl.group;
  for (std::size_t j = 0; j < group.outputs.size(); ++j) {
    std::shared_ptr<TensorImpl> output = group.outputs[j].lock();
    if (output == nullptr) {
      output = std::make_shared<TensorImpl>(group.values[j]);
      output->requires_grad = is_floating(output->value.dtype());
      output->op = impl.op;
      output->inputs = impl.inputs;
      output->group = impl.group;
      group.outputs[j] = output;
    }
    outputs.emplace_back(std::move(output));
  }
}

}  // namespace

namespace {

// The callbacks queued during the backward pass running on this thread (null outside one). Each pass has
// its own list, so a backward run from a hook does not run the outer pass's callbacks.
thread_local std::vector<std::function<void()>>* t_end_callbacks = nullptr;

// Runs a leaf's post-accumulate-grad hooks once its gradient is complete.
void run_grad_hooks(const Tensor& leaf) {
  if (leaf.impl()->grad_hooks.empty()) return;
  // A copy: a hook may register or remove hooks.
  const auto hooks = leaf.impl()->grad_hooks;
  for (const auto& [id, hook] : hooks) hook(leaf);
}

}  // namespace

void queue_callback(std::function<void()> callback) {
  NEEDLE_CHECK(t_end_callbacks != nullptr, RuntimeError,
               "queue_callback: no backward pass is running on this thread (call it from a gradient hook)");
  t_end_callbacks->push_back(std::move(callback));
}

void backward(const Tensor& output, const Tensor& out_grad, bool retain_graph, bool create_graph) {
  std::vector<std::function<void()>> end_callbacks;
  std::vector<std::function<void()>>* const outer_callbacks = t_end_callbacks;
  t_end_callbacks = &end_callbacks;
  struct RestoreCallbacks {
    std::vector<std::function<void()>>* outer;
    ~RestoreCallbacks() { t_end_callbacks = outer; }
  } restore{outer_callbacks};
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
  std::unordered_set<const OutputGroup*> done_groups;  // nodes with several outputs already differentiated
  // Reused from node to node: a node's outputs, their gradients, and which of its inputs need one.
  std::vector<Tensor> outputs;
  std::vector<Tensor> out_grads;
  NeedsGrad needs_grad;
  for (std::size_t k = order.size(); k-- > 0;) {  // reverse topological order: outputs first
    const Tensor node = order[k];
    if (release) order[k] = Tensor();  // the walk lets go of the node once handled
    const OutputGroup* group = node.impl()->group.get();
    if (group != nullptr && !done_groups.insert(group).second) continue;  // handled with a sibling

    // The gradient of each output of the node; each is complete once the node is reached.
    gradient_outputs_of(node, outputs);
    out_grads.assign(outputs.size(), Tensor());
    bool any_grad = false;
    for (std::size_t j = 0; j < outputs.size(); ++j) {
      const auto found = grads.find(outputs[j].impl().get());
      if (found == grads.end()) continue;
      out_grads[j] = std::move(found->second);
      grads.erase(found);  // free each gradient as we go
      any_grad = true;
      const Tensor& output = outputs[j];
      check_not_released(output);
      // Non-leaf gradients are kept only when they carry no graph: a recorded gradient of an intermediate
      // refers back to that intermediate, a reference cycle that would never be freed. (A leaf's recorded
      // gradient also refers to the leaf, as in PyTorch: reset_grad() breaks that cycle.)
      if (output.requires_grad() && (output.is_leaf() || !create_graph)) {
        const Tensor previous = output.grad();
        output.impl()->grad = (previous.defined() ? ops::add(previous, out_grads[j]) : out_grads[j]).impl();
        if (output.is_leaf()) run_grad_hooks(output);
      }
    }
    if (!any_grad || node.is_leaf()) {
      // No gradient reached this node, and none will: every consumer of its outputs has been handled.
      if (release) {
        for (const Tensor& output : outputs) release_node(*output.impl());
      }
      continue;
    }

    const Op& op = *node.op();
    const std::vector<Tensor>& inputs = node.inputs();  // cleared by release_node, after their last use
    needs_grad.assign(inputs.size(), false);
    bool any_needed = false;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      needs_grad[i] = inputs[i].requires_grad();
      any_needed = any_needed || needs_grad[i];
    }
    if (any_needed) {
      check_saved_versions(op, *node.impl(), inputs, outputs);
      const std::vector<Tensor> input_grads =
          debug::detail::enabled() ? debug::detail::compute_gradient(op, out_grads, outputs, inputs, needs_grad, node)
                                   : op.gradient_outputs(out_grads, outputs, inputs, needs_grad);
      NEEDLE_CHECK(input_grads.size() == inputs.size(), RuntimeError, op.name(), ": gradient returned ",
                   input_grads.size(), " gradients for ", inputs.size(), " inputs");
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        if (!needs_grad[i] || !input_grads[i].defined()) continue;
        accumulate(grads, inputs[i], checked_input_grad(op, input_grads[i], inputs[i], i));
      }
    }
    if (release) {
      for (const Tensor& output : outputs) release_node(*output.impl());
    }
  }
  // Callbacks may queue more callbacks, which would invalidate iterators: index.
  for (std::size_t i = 0; i < end_callbacks.size(); ++i) {  // NOLINT(modernize-loop-convert)
    std::function<void()> callback = std::move(end_callbacks[i]);
    callback();
  }
}

}  // namespace needle::autograd
