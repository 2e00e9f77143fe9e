// Small helpers shared by the op families in src/ops/.
#pragma once

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

// Constants and factors of the gradients in unary_ops.def.
inline constexpr double kTwoOverSqrtPi = 1.1283791670955126;  // d erf / dx at 0
// sign(a) as a constant (-1, 0 or 1 in a's float dtype): d|a|/da.
Tensor sign_of(const Tensor& a);
// 1 where a > 0, else 0 (NaN gives 0), as a constant: d relu(a)/da.
Tensor positive_mask(const Tensor& a);
// d^2 gelu / da^2 = phi(a) (2 - a^2), composed of ops (needed only for gradients of gradients).
Tensor gelu_second_derivative(const Tensor& a);

// An input's gradient as computed by `fn` when `needed` (its entry of the NeedsGrad mask), else an undefined
// tensor (which backward skips): a network's first layer never needs the gradient of its input batch, and
// for a matmul or a convolution that saves a third of the backward pass.
template <typename Fn>
Tensor grad_if(bool needed, Fn&& fn) {
  return needed ? std::forward<Fn>(fn)() : Tensor();
}

}  // namespace needle::ops::detail
