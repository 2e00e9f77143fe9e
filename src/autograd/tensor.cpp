#include "needle/autograd/tensor.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "needle/autograd/engine.h"
#include "needle/autograd/grad_mode.h"
#include "needle/autograd/op.h"
#include "needle/debug/hooks.h"

namespace needle {

namespace {

const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  NEEDLE_CHECK(impl != nullptr, RuntimeError, "Tensor: this tensor is undefined (it holds no value)");
  return *impl;
}

}  // namespace

namespace {
std::atomic<std::size_t> live_tensors{0};
}  // namespace

TensorImpl::TensorImpl() {
  live_tensors.fetch_add(1, std::memory_order_relaxed);
  if (debug::detail::enabled()) [[unlikely]] {
    debug::detail::on_tensor_created(*this);
  }
}

TensorImpl::~TensorImpl() {
  live_tensors.fetch_sub(1, std::memory_order_relaxed);
  if (tracked) debug::detail::on_tensor_destroyed(*this);
}

std::size_t TensorImpl::live_count() { return live_tensors.load(std::memory_order_relaxed); }

Tensor::Tensor(NDArray value, bool requires_grad) : impl_(std::make_shared<TensorImpl>()) {
  impl_->requires_grad = requires_grad && is_floating(value.dtype());
  impl_->value = std::move(value);
}

Tensor Tensor::from_op(std::shared_ptr<const Op> op, std::vector<Tensor> inputs) {
  std::vector<NDArray> values;
  values.reserve(inputs.size());
  for (const Tensor& input : inputs) values.push_back(input.value());
  auto impl = std::make_shared<TensorImpl>();
  if (debug::detail::enabled()) [[unlikely]] {
    impl->value = debug::detail::compute_op(*op, inputs, values, *impl);
  } else {
    impl->value = op->compute(values);
  }
  const bool any_input_requires_grad =
      std::any_of(inputs.begin(), inputs.end(), [](const Tensor& t) { return t.requires_grad(); });
  // Only floating results carry gradients; comparisons, argmax and friends never do.
  if (grad_enabled() && any_input_requires_grad && is_floating(impl->value.dtype())) {
    impl->requires_grad = true;
    impl->op = std::move(op);
    impl->inputs = std::move(inputs);
  }
  return Tensor(std::move(impl));
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

std::string Tensor::describe() const {
  if (!defined()) return "Tensor(undefined)";
  return str("Tensor(shape=", shape_str(shape()), ", dtype=", dtype_name(dtype()), ", device=", device(),
             ", requires_grad=", requires_grad() ? "true" : "false", impl_->op ? ", op=" + impl_->op->name() : "", ")");
}

}  // namespace needle
