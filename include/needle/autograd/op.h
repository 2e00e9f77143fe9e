// Op: one differentiable operation, in one place. Its forward (compute) works on NDArrays through the
// array layer (so on any device); its backward (gradient) is written with Tensor ops, so gradients are
// themselves differentiable.
//
// To add an op: subclass Op in a file of src/ops/, give it any parameters as members, and add the
// function that users call (in include/needle/ops/ops.h) which does the argument checks and returns
// Tensor::from_op(std::make_shared<YourOp>(...), {inputs...}).
#pragma once

#include <string>
#include <vector>

#include "needle/autograd/tensor.h"
#include "needle/core/ndarray.h"

namespace needle {

class Op {
 public:
  Op() = default;
  virtual ~Op() = default;
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

  // Short name used in errors, traces and graphs: "add", "matmul", "conv", ...
  [[nodiscard]] virtual std::string name() const = 0;
  // The forward computation on the inputs' values.
  [[nodiscard]] virtual NDArray compute(const std::vector<NDArray>& inputs) const = 0;
  // The gradient of each input, given the gradient of the output (`out_grad`, same shape as `node`)
  // and the output tensor itself (`node`: its inputs() and value are available). One entry per input;
  // an undefined Tensor means that input receives no gradient (e.g. integer indices).
  [[nodiscard]] virtual std::vector<Tensor> gradient(const Tensor& out_grad, const Tensor& node) const = 0;
};

}  // namespace needle
