// Matrix multiplication, and the linear layer's x @ W + b as one op.
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::make;

namespace {

// dB of C = A B: A^T dC summed over the batch dimensions. When B is one matrix shared by a batch of A (x @ W
// with x (batch, ..., m, k), a layer applied to a sequence), that sum is one matmul of A's rows stacked,
// (batch * m, k)^T (batch * m, n), not a batched matmul whose results a reduction then adds up.
Tensor weight_gradient(const Tensor& a2, const Tensor& b2, const Tensor& g2) {
  if (b2.ndim() == 2 && a2.ndim() > 2) {
    const Shape& shape = a2.shape();
    const std::int64_t rows = numel(Shape(shape.begin(), shape.end() - 1));
    return matmul(transpose(reshape(a2, {rows, shape.back()})), reshape(g2, {rows, g2.shape().back()}));
  }
  return sum_to_shape(matmul(transpose(a2), g2), b2.shape());
}

class MatmulOp final : public SingleOutputOp {
 public:
  std::string name() const override { return "matmul"; }
  // dA reads B and dB reads A.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return detail::saves_the_other_input(needs_grad);
  }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::matmul(in[0], in[1]); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    const Tensor& a = node.inputs()[0];
    const Tensor& b = node.inputs()[1];
    // NumPy's vector rules: treat 1-d operands as a row (a) or a column (b), as the forward did.
    const Tensor a2 = a.ndim() == 1 ? unsqueeze(a, 0) : a;
    const Tensor b2 = b.ndim() == 1 ? unsqueeze(b, 1) : b;
    Tensor g2 = g;
    if (a.ndim() == 1) g2 = unsqueeze(g2, g2.ndim() - (b.ndim() == 1 ? 0 : 1));
    if (b.ndim() == 1) g2 = unsqueeze(g2, g2.ndim());
    // dA = dC B^T, dB = A^T dC, then summed over broadcast batch dimensions.
    return {detail::grad_if(needs_grad[0],
                            [&] { return reshape(sum_to_shape(matmul(g2, transpose(b2)), a2.shape()), a.shape()); }),
            detail::grad_if(needs_grad[1], [&] { return reshape(weight_gradient(a2, b2, g2), b.shape()); })};
  }
};

// x (..., in) @ weight (in, out) + bias, bias of shape (out,) or (1, out), as one node. As matmul then add,
// the product before the bias would stay alive until backward (the add's node holds it as its input) though
// no gradient reads it: for a transformer's MLP that is a (tokens, 4 * width) array per layer.
class LinearOp final : public SingleOutputOp {
 public:
  std::string name() const override { return "linear"; }
  // dx reads the weight and dW reads x; the bias's gradient reads nothing.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return detail::saves_the_other_input(needs_grad);
  }
  NDArray compute(const std::vector<NDArray>& in) const override {
    NDArray out = needle::matmul(in[0], in[1]);
    binary_in_place(BinaryOp::Add, out, in[2]);
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    const Tensor& x = node.inputs()[0];
    const Tensor& weight = node.inputs()[1];
    const Tensor& bias = node.inputs()[2];
    return {detail::grad_if(needs_grad[0], [&] { return matmul(g, transpose(weight)); }),
            detail::grad_if(needs_grad[1], [&] { return weight_gradient(x, weight, g); }),
            detail::grad_if(needs_grad[2], [&] { return sum_to_shape(g, bias.shape()); })};
  }
};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) { return make<MatmulOp>({a, b}); }

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (!bias.defined()) return matmul(x, weight);
  // The fused node covers what a layer sees: rows x (..., in) and a weight (in, out) of one dtype, a bias of
  // one row. Anything else (a 1-d x, which follows matmul's vector rule; mixed dtypes, which promote; a bias
  // that broadcasts otherwise; shapes that do not fit) gets matmul's and add's results and errors.
  const bool fused = x.ndim() >= 2 && weight.ndim() == 2 && x.shape().back() == weight.shape()[0] &&
                     (bias.shape() == Shape{weight.shape()[1]} || bias.shape() == Shape({1, weight.shape()[1]})) &&
                     weight.dtype() == x.dtype() && bias.dtype() == x.dtype() && weight.device() == x.device() &&
                     bias.device() == x.device();
  return fused ? make<LinearOp>({x, weight, bias}) : matmul(x, weight) + bias;
}

}  // namespace needle::ops
