// Op: one differentiable operation, in one place. Its forward (compute) works on NDArrays through the
// array layer (so on any device); its backward (gradient) is written with Tensor ops, so gradients are
// themselves differentiable.
//
// Most ops have one output: subclass SingleOutputOp in a file of src/ops/, give it any parameters as
// members, implement compute() and gradient(), and add the function that users call (in
// include/needle/ops/ops.h) which does the argument checks and returns
// Tensor::from_op(std::make_shared<YourOp>(...), {inputs...}). An op with several outputs (attention's
// output and the logsumexp its backward needs, BatchNorm's output and batch statistics, the LSTM's h and c)
// subclasses Op itself and is applied with Tensor::from_op_outputs.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "needle/autograd/tensor.h"
#include "needle/core/ndarray.h"

namespace needle {

// Which inputs of a node need a gradient: needs_grad[i] is input i's requires_grad(). An op computes the
// gradients of those inputs only and may leave the others undefined (a network's first layer never needs
// the gradient of its input batch; a constant exponent needs no log of the base).
using NeedsGrad = std::vector<bool>;

class SingleOutputOp;

class Op {
 public:
  Op() = default;
  virtual ~Op() = default;
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

  // Short name used in errors, traces and graphs: "add", "matmul", "conv", ...
  [[nodiscard]] virtual std::string name() const = 0;
  // How many arrays compute_outputs() returns.
  [[nodiscard]] virtual std::size_t num_outputs() const = 0;
  // The forward computation on the inputs' values: num_outputs() arrays.
  [[nodiscard]] virtual std::vector<NDArray> compute_outputs(const std::vector<NDArray>& inputs) const = 0;
  // The gradient of each input given `out_grads`, the gradient of each output (an undefined Tensor for an
  // output no gradient reached: it counts as zeros), the node's `outputs` (its output tensors; an output the
  // program no longer holds is a constant of its value) and `inputs`. One entry per input; an undefined
  // Tensor means that input receives no gradient (e.g. integer indices, or needs_grad[i] is false).
  [[nodiscard]] virtual std::vector<Tensor> gradient_outputs(const std::vector<Tensor>& out_grads,
                                                             const std::vector<Tensor>& outputs,
                                                             const std::vector<Tensor>& inputs,
                                                             const NeedsGrad& needs_grad) const = 0;
  // This op as a SingleOutputOp, or null: Tensor::from_op's fast path for the common case.
  [[nodiscard]] virtual const SingleOutputOp* single_output() const { return nullptr; }
};

// An op with one output, the common case.
class SingleOutputOp : public Op {
 public:
  // The forward computation on the inputs' values.
  [[nodiscard]] virtual NDArray compute(const std::vector<NDArray>& inputs) const = 0;
  // The gradient of each input, given the gradient of the output (`out_grad`, same shape as `node`), the
  // output tensor itself (`node`: its inputs() and value are available) and which inputs need one.
  [[nodiscard]] virtual std::vector<Tensor> gradient(const Tensor& out_grad, const Tensor& node,
                                                     const NeedsGrad& needs_grad) const = 0;

  [[nodiscard]] std::size_t num_outputs() const final { return 1; }
  [[nodiscard]] std::vector<NDArray> compute_outputs(const std::vector<NDArray>& inputs) const final {
    return {compute(inputs)};
  }
  [[nodiscard]] std::vector<Tensor> gradient_outputs(const std::vector<Tensor>& out_grads,
                                                     const std::vector<Tensor>& outputs,
                                                     const std::vector<Tensor>& /*inputs*/,
                                                     const NeedsGrad& needs_grad) const final {
    return gradient(out_grads.front(), outputs.front(), needs_grad);
  }
  [[nodiscard]] const SingleOutputOp* single_output() const final { return this; }
};

}  // namespace needle
