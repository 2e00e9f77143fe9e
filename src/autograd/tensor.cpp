#include "needle/autograd/tensor.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <new>
#include <span>
#include <utility>

#include "autograd/tensor_debug_info.h"
#include "debug/hooks.h"
#include "needle/autograd/engine.h"
#include "needle/autograd/grad_mode.h"
#include "needle/autograd/op.h"

namespace needle {

namespace {

const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  NEEDLE_CHECK(impl != nullptr, RuntimeError, "Tensor: this tensor is undefined (it holds no value)");
  return *impl;
}

}  // namespace

namespace {

std::atomic<std::size_t> live_tensors{0};

// Letting go of a graph without recursion.
//
// A node owns its op, its inputs and its gradient (which may carry a graph of its own, after create_graph).
// Were each ~TensorImpl to free those itself, dropping the last handle to the end of a chain of n ops would
// nest n destructors, and some tens of thousands (an unrolled recurrent loop never detached) overflow the
// stack. Instead the first ~TensorImpl on a thread to let go of a graph becomes its releaser: it parks the
// dying node's links on a worklist of its own and drops them one at a time. A node that dies meanwhile on
// the same thread (because a dropped link was its last reference) parks its links on that same list and
// returns, so the stack stays two destructors deep however deep the graph.
//
// Only references move, and only out of a node that is being destroyed, so nothing here asks who else
// holds a node: use_count() would race with other threads, and says nothing anyway about a tensor that
// came from Python (nanobind gives each such conversion a control block of its own that keeps the Python
// object, and through it the node, alive). Dropping a parked reference just gives up one reference: the
// node dies wherever its last one goes, in this loop or in another thread's, and each thread (the data
// loader's workers too) has a list of its own.
//
// Type-erased (shared_ptr<const void> keeps the right deleter), so ops, which may hold Python objects that
// hold tensors, are released by the same loop as tensors.
using Links = std::vector<std::shared_ptr<const void>>;

// The list of the releaser running on this thread, null when none is. A raw pointer rather than a
// thread_local vector so that it is trivially destructible: tensors may die during static destruction.
thread_local Links* releasing = nullptr;

void park(Links& links, std::shared_ptr<const void> link) noexcept {
  if (link == nullptr) return;
  try {
    links.push_back(std::move(link));
  } catch (const std::bad_alloc&) {
    link.reset();  // no memory even for the list: drop this one link here, recursing as plain destruction would
  }
}

// Moves every link of a dying node onto `links`. Nothing may stay behind in the node: its members are
// destroyed after ~TensorImpl's body, and a last reference dropped there would nest a destructor.
void park_links(TensorImpl& impl, Links& links) noexcept {
  park(links, std::move(impl.op));
  for (const Tensor& input : impl.inputs) park(links, input.impl());
  impl.inputs.clear();  // the list holds them now
  park(links, std::move(impl.grad));
}

}  // namespace

TensorImpl::TensorImpl() {
  live_tensors.fetch_add(1, std::memory_order_relaxed);
  if (debug::detail::enabled()) [[unlikely]] {
    debug::detail::on_tensor_created(*this);
  }
}

TensorImpl::TensorImpl(NDArray value) : value(std::move(value)) {
  live_tensors.fetch_add(1, std::memory_order_relaxed);
  if (debug::detail::enabled()) [[unlikely]] {
    debug::detail::on_tensor_created(*this);
  }
}

TensorImpl::~TensorImpl() {
  live_tensors.fetch_sub(1, std::memory_order_relaxed);
  if (debug_info != nullptr) debug::detail::on_tensor_destroyed(*this);
  if (op == nullptr && inputs.empty() && grad == nullptr) return;  // nothing of a graph to let go of
  if (releasing != nullptr) {
    park_links(*this, *releasing);  // a releaser further down this thread's stack drops them
    return;
  }
  Links links;
  park_links(*this, links);
  releasing = &links;
  while (!links.empty()) {
    std::shared_ptr<const void> link = std::move(links.back());
    links.pop_back();
    link.reset();  // may destroy a node, which parks its own links on `links`
  }
  releasing = nullptr;
}

std::size_t TensorImpl::live_count() { return live_tensors.load(std::memory_order_relaxed); }

Tensor::Tensor(NDArray value, bool requires_grad) : impl_(std::make_shared<TensorImpl>(std::move(value))) {
  impl_->requires_grad = requires_grad && is_floating(impl_->value.dtype());
}

namespace {

// Whether a node with these inputs is recorded: grad mode is on and some input requires a gradient.
bool records(const std::vector<Tensor>& inputs) {
  return grad_enabled() && std::any_of(inputs.begin(), inputs.end(), [](const Tensor& t) { return t.requires_grad(); });
}

// What `op`'s gradient will read of its inputs and `outputs` (Op::saved_tensors), each with the id and version
// of its storage now, right after the forward pass: backward compares them (engine.cpp) so that a value
// overwritten in the meantime raises instead of giving a wrong gradient. Integer loads and compares only.
std::vector<SavedVersion> record_saved_versions(const Op& op, const std::vector<Tensor>& inputs,
                                                std::span<const NDArray> outputs) {
  NeedsGrad needs_grad(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) needs_grad[i] = inputs[i].requires_grad();
  const SavedTensors saved = op.saved_tensors(needs_grad);
  std::vector<SavedVersion> versions;
  const auto save = [&](const NDArray& value, std::size_t index, bool output) {
    const Storage& storage = *value.storage();
    versions.push_back({static_cast<std::uint32_t>(index), output, storage.id(), storage.version()});
  };
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (saved.saves_input(i)) save(inputs[i].value(), i, false);
  }
  if (saved.saves_outputs) {
    for (std::size_t j = 0; j < outputs.size(); ++j) save(outputs[j], j, true);
  }
  return versions;
}

std::vector<NDArray> values_of(const std::vector<Tensor>& inputs) {
  std::vector<NDArray> values;
  values.reserve(inputs.size());
  for (const Tensor& input : inputs) values.push_back(input.value());
  return values;
}

}  // namespace

Tensor Tensor::from_op(std::shared_ptr<const Op> op, std::vector<Tensor> inputs) {
  const SingleOutputOp* single = op->single_output();
  if (single == nullptr) {
    NEEDLE_CHECK(op->num_outputs() == 1, RuntimeError, op->name(), ": an op with ", op->num_outputs(),
                 " outputs is applied with Tensor::from_op_outputs");
    return from_op_outputs(op, inputs).front();
  }
  const std::vector<NDArray> values = values_of(inputs);
  std::shared_ptr<TensorImpl> impl;
  if (debug::detail::enabled()) [[unlikely]] {
    impl = std::make_shared<TensorImpl>();  // the debugging tools record the call site against the tensor
    impl->value = std::move(debug::detail::compute_op(*op, values, call_site_of(*impl)).front());
  } else {
    impl = std::make_shared<TensorImpl>(single->compute(values));
  }
  // Only floating results carry gradients; comparisons, argmax and friends never do.
  if (is_floating(impl->value.dtype()) && records(inputs)) {
    impl->requires_grad = true;
    impl->saved_versions = record_saved_versions(*op, inputs, std::span<const NDArray>(&impl->value, 1));
    impl->op = std::move(op);
    impl->inputs = std::move(inputs);
  }
  return Tensor(std::move(impl));
}

std::vector<Tensor> Tensor::from_op_outputs(const std::shared_ptr<const Op>& op, const std::vector<Tensor>& inputs) {
  const std::vector<NDArray> values = values_of(inputs);
  std::vector<std::shared_ptr<TensorImpl>> impls;
  for (std::size_t i = 0; i < op->num_outputs(); ++i) impls.push_back(std::make_shared<TensorImpl>());
  std::vector<NDArray> results = debug::detail::enabled()
                                     ? debug::detail::compute_op(*op, values, call_site_of(*impls.front()))
                                     : op->compute_outputs(values);
  NEEDLE_CHECK(results.size() == impls.size(), RuntimeError, op->name(), ": computed ", results.size(),
               " outputs, expected ", impls.size());
  const bool record = records(inputs);
  auto group = record ? std::make_shared<OutputGroup>() : nullptr;
  // One record for the node, kept by each output (backward checks it on whichever it reaches first).
  const std::vector<SavedVersion> versions =
      record ? record_saved_versions(*op, inputs, results) : std::vector<SavedVersion>();
  std::vector<Tensor> outputs;
  for (std::size_t i = 0; i < impls.size(); ++i) {
    TensorImpl& impl = *impls[i];
    impl.value = results[i];
    if (record) {
      // Every output is a node of the graph (the op computes all their gradients at once); only floating
      // ones can carry a gradient.
      impl.requires_grad = is_floating(impl.value.dtype());
      impl.op = op;
      impl.inputs = inputs;
      impl.group = group;
      impl.saved_versions = versions;
      group->outputs.push_back(impls[i]);
      group->values.push_back(results[i]);
    }
    outputs.emplace_back(impls[i]);
  }
  return outputs;
}

const NDArray& Tensor::value() const { return checked(impl_).value; }

void Tensor::set_value(const NDArray& value) {
  const NDArray& current = checked(impl_).value;
  NEEDLE_CHECK(value.dtype() == current.dtype() && value.device() == current.device(), TypeError,
               "Tensor.data: cannot assign a ", dtype_name(value.dtype()), " array on ", value.device(), " to a ",
               dtype_name(current.dtype()), " tensor on ", current.device());
  impl_->value = value;
}

bool Tensor::requires_grad() const { return checked(impl_).requires_grad; }

void Tensor::set_requires_grad(bool requires_grad) {
  NEEDLE_CHECK(!requires_grad || is_floating(dtype()), TypeError,
               "requires_grad: only floating-point tensors can require gradients, got dtype ", dtype_name(dtype()));
  impl_->requires_grad = requires_grad;
}

bool Tensor::is_leaf() const { return checked(impl_).op == nullptr; }

const std::shared_ptr<const Op>& Tensor::op() const { return checked(impl_).op; }

const std::vector<Tensor>& Tensor::inputs() const { return checked(impl_).inputs; }

Tensor Tensor::detach() const { return Tensor(value(), false); }

Tensor Tensor::grad() const { return Tensor(checked(impl_).grad); }

void Tensor::set_grad(const Tensor& grad) {
  checked(impl_);
  if (grad.defined()) {
    NEEDLE_CHECK(grad.shape() == shape(), ValueError, "Tensor.grad: gradient of shape ", shape_str(grad.shape()),
                 " does not match the tensor's shape ", shape_str(shape()));
  }
  impl_->grad = grad.impl();
}

void Tensor::backward(const Tensor& out_grad, bool retain_graph, bool create_graph) const {
  autograd::backward(*this, out_grad, retain_graph, create_graph);
}

std::uint64_t Tensor::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const {
  NEEDLE_CHECK(defined() && is_leaf(), TypeError,
               "register_post_accumulate_grad_hook: only a leaf tensor (a parameter) accumulates a gradient, got ",
               describe());
  static std::atomic<std::uint64_t> next_id{1};
  const std::uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
  impl_->grad_hooks.emplace_back(id, std::move(hook));
  return id;
}

void Tensor::remove_post_accumulate_grad_hook(std::uint64_t id) const {
  if (!defined()) return;
  std::erase_if(impl_->grad_hooks, [id](const auto& entry) { return entry.first == id; });
}

std::string Tensor::describe() const {
  if (!defined()) return "Tensor(undefined)";
  return str("Tensor(shape=", shape_str(shape()), ", dtype=", dtype_name(dtype()), ", device=", device(),
             ", requires_grad=", requires_grad() ? "true" : "false", impl_->op ? ", op=" + impl_->op->name() : "", ")");
}

}  // namespace needle
