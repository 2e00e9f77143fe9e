// Small helpers shared by the op families in src/ops/.
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>

#include "needle/autograd/op.h"
#include "needle/core/array_ops.h"
#include "needle/ops/ops.h"

namespace needle::ops::detail {

// A tensor outside the graph (masks, constants) wrapping an array.
inline Tensor constant(const NDArray& value) { return Tensor(value, false); }

// A 0-d constant of `like`'s dtype (or float32 for non-floating tensors) on its device.
inline Tensor scalar_like(const Tensor& like, const Scalar& value) {
  return constant(NDArray::full({}, value, float_result_type(like.dtype()), like.device()));
}

// The value of input `i` of `node`.
inline const NDArray& input_value(const Tensor& node, std::size_t i) { return node.inputs()[i].value(); }

// Creates the output of op `OpType` constructed from `args`.
template <typename OpType, typename... Args>
Tensor make(std::vector<Tensor> inputs, Args&&... args) {
  // Built apart from the call so that call does not depend on Args: clang-tidy then sees inputs moved.
  std::shared_ptr<const Op> op = std::make_shared<const OpType>(std::forward<Args>(args)...);
  return Tensor::from_op(std::move(op), std::move(inputs));
}

// Throws RuntimeError naming `op` unless every tensor is on the first one's device.
void check_same_device(std::string_view op, const std::vector<Tensor>& tensors);

// Throws TypeError naming `op` unless the tensor's dtype is floating point.
void check_floating(std::string_view op, const Tensor& t);

// The defined tensors of `tensors` converted (ops::astype, so gradients flow back in each one's dtype) to
// the dtype they promote to, as every op with several floating operands does: a float32 layer given
// float64 input computes in float64, like an elementwise op would. Undefined tensors stay undefined.
std::vector<Tensor> promoted(std::vector<Tensor> tensors);

// Constants and factors of the gradients in unary_ops.def.
inline constexpr double kTwoOverSqrtPi = 1.1283791670955126;  // d erf / dx at 0
// sign(a) as a constant (-1, 0 or 1 in a's float dtype): d|a|/da.
Tensor sign_of(const Tensor& a);
// The gradient of relu(a) given the output's gradient g: g where a > 0, else 0 (a NaN in a gives 0).
Tensor relu_gradient(const Tensor& g, const Tensor& a);
// The gradient of gelu(a) given the output's gradient g: g * gelu_grad(a).
Tensor gelu_gradient(const Tensor& g, const Tensor& a);
// d^2 gelu / da^2 = phi(a) (2 - a^2), composed of ops (needed only for gradients of gradients).
Tensor gelu_second_derivative(const Tensor& a);

// ---- what gradients read (Op::saved_tensors) -------------------------------------------------------

// A bilinear op of two inputs (multiply, matmul, conv and its adjoints): each input's gradient reads the
// other input, so an input is saved only when the other one needs a gradient.
inline SavedTensors saves_the_other_input(const NeedsGrad& needs_grad) {
  return SavedTensors{}.input(0, needs_grad[1]).input(1, needs_grad[0]);
}

// Whether C++ source text `code` uses the identifier `name` (a whole token, not part of a longer name).
constexpr bool uses_identifier(std::string_view code, std::string_view name) {
  const auto part_of_name = [](char c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  for (std::size_t at = code.find(name); at != std::string_view::npos; at = code.find(name, at + 1)) {
    const std::size_t end = at + name.size();
    if ((at == 0 || !part_of_name(code[at - 1])) && (end == code.size() || !part_of_name(code[end]))) return true;
  }
  return false;
}

// What a gradient written in unary_ops.def reads, from its text: the input when it names `a`, the output
// when it names `out`. Derived from the expression itself, so a row's gradient and what it saves cannot
// disagree.
constexpr SavedTensors saved_by_expression(std::string_view gradient) {
  return SavedTensors{}.input(0, uses_identifier(gradient, "a")).outputs(uses_identifier(gradient, "out"));
}
static_assert(uses_identifier("multiply(g, out)", "out") && !uses_identifier("negate(g)", "a"));
static_assert(!uses_identifier("mul_scalar(out, Scalar(2.0))", "a") && uses_identifier("sign_of(a)", "a"));

// An input's gradient as computed by `fn` when `needed` (its entry of the NeedsGrad mask), else an undefined
// tensor (which backward skips): a network's first layer never needs the gradient of its input batch, and
// for a matmul or a convolution that saves a third of the backward pass.
template <typename Fn>
Tensor grad_if(bool needed, Fn&& fn) {
  return needed ? std::forward<Fn>(fn)() : Tensor();
}

}  // namespace needle::ops::detail
