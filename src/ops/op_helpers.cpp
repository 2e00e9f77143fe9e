#include "ops/op_helpers.h"

#include <numbers>
#include <optional>

#include "needle/autograd/grad_mode.h"
#include "needle/core/fused_ops.h"

namespace needle::ops::detail {

void check_same_device(std::string_view op, const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) {
    NEEDLE_CHECK(t.device() == tensors.front().device(), RuntimeError, op,
                 ": expected all tensors on the same device, got ", tensors.front().device(), " and ", t.device());
  }
}

void check_floating(std::string_view op, const Tensor& t) {
  NEEDLE_CHECK(is_floating(t.dtype()), TypeError, op, ": expected a floating-point tensor, got dtype ",
               dtype_name(t.dtype()), " (shape ", shape_str(t.shape()), ")");
}

std::vector<Tensor> promoted(std::vector<Tensor> tensors) {
  std::optional<DType> common;
  for (const Tensor& t : tensors) {
    if (t.defined()) common = common ? promote_types(*common, t.dtype()) : t.dtype();
  }
  for (Tensor& t : tensors) {
    if (t.defined()) t = astype(t, *common);
  }
  return tensors;
}

Tensor sign_of(const Tensor& a) {
  const NDArray& x = a.value();
  const NDArray zero = NDArray::zeros({}, x.dtype(), x.device());
  const DType dtype = float_result_type(x.dtype());
  return constant(needle::gt(x, zero).astype(dtype) - needle::lt(x, zero).astype(dtype));
}

Tensor relu_gradient(const Tensor& g, const Tensor& a) {
  const NDArray& x = a.value();
  // g where a > 0, else 0 (also where g is inf or NaN, as PyTorch's threshold_backward). A plain backward
  // takes one fused pass; while a graph of the gradient is recorded, a comparison and a select, so that the
  // result is differentiable in g (multiplying by a 0/1 mask would need the mask converted first).
  if (!grad_enabled()) return constant(needle::relu_backward(g.value(), x));
  return where(constant(needle::gt(x, NDArray::zeros({}, x.dtype(), x.device()))), g,
               constant(NDArray::zeros({}, g.dtype(), g.device())));
}

Tensor gelu_gradient(const Tensor& g, const Tensor& a) {
  // g * gelu_grad(a): one fused pass in a plain backward; while a graph of the gradient is recorded, the
  // product of ops, so that it can be differentiated again.
  if (!grad_enabled()) return constant(needle::gelu_backward(g.value(), a.value()));
  return multiply(g, gelu_grad(a));
}

Tensor gelu_second_derivative(const Tensor& a) {
  const Tensor a2 = multiply(a, a);
  const Tensor phi =
      mul_scalar(exp(mul_scalar(a2, Scalar(-0.5))), Scalar(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2));
  return multiply(phi, add_scalar(negate(a2), Scalar(2.0)));
}

}  // namespace needle::ops::detail
