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

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "needle/autograd/tensor.h"
#include "needle/core/ndarray.h"

namespace needle {

// Which inputs of a node need a gradient: needs_grad[i] is input i's requires_grad(). An op computes the
// gradients of those inputs only and may leave the others undefined (a network's first layer never needs
// the gradient of its input batch; a constant exponent needs no log of the base).
using NeedsGrad = std::vector<bool>;

// Which of a node's tensors its gradient reads the values of: the tensors the node "saves for backward".
// When the node is recorded, the version of each (Storage::version) is recorded with it, and backward
// refuses to run the gradient if one has been written in place since (it would compute with the new
// values). Shapes, dtypes and devices never change in place, so a gradient that reads only those (add,
// sum, reshape, ...) saves nothing, and writing its inputs after the forward pass stays allowed.
//
// Built by chaining: SavedTensors{}.input(0).input(1, needs_grad[0]).outputs(needs_grad[1]).
struct SavedTensors {
  std::uint64_t input_mask = 0;  // bit i: input i (inputs from 63 on share bit 63)
  bool saves_outputs = false;    // every output of the node

  // Everything: what an op that does not say (Op's default) is assumed to read.
  static constexpr SavedTensors all() { return {~std::uint64_t{0}, true}; }

  // This set plus input i, when `when`.
  [[nodiscard]] constexpr SavedTensors input(std::size_t i, bool when = true) const {
    return {when ? input_mask | bit(i) : input_mask, saves_outputs};
  }
  // This set plus the node's outputs, when `when`.
  [[nodiscard]] constexpr SavedTensors outputs(bool when = true) const { return {input_mask, saves_outputs || when}; }
  [[nodiscard]] constexpr bool saves_input(std::size_t i) const { return (input_mask & bit(i)) != 0; }

 private:
  static constexpr std::uint64_t bit(std::size_t i) { return std::uint64_t{1} << std::min<std::size_t>(i, 63); }
};

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
  // What gradient_outputs() will read the values of, given which inputs require a gradient at the forward
  // pass (an input whose gradient is not computed need not be read: x @ W with a constant x reads only x).
  // The default, everything, is always safe; an op that reads less says so, so that writing what it does
  // not read after the forward pass is allowed.
  [[nodiscard]] virtual SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const {
    return SavedTensors::all();
  }
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
