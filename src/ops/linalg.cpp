// Matrix multiplication.
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::make;

namespace {

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

 private:
  // dB = A^T dC summed over the batch dimensions. When B is one matrix shared by a batch of A (x @ W with x
  // (batch, ..., m, k), a layer applied to a sequence), that sum is one matmul of A's rows stacked,
  // (batch * m, k)^T (batch * m, n), not a batched matmul whose results a reduction then adds up.
  static Tensor weight_gradient(const Tensor& a2, const Tensor& b2, const Tensor& g2) {
    if (b2.ndim() == 2 && a2.ndim() > 2) {
      const Shape& shape = a2.shape();
      const std::int64_t rows = numel(Shape(shape.begin(), shape.end() - 1));
      return matmul(transpose(reshape(a2, {rows, shape.back()})), reshape(g2, {rows, g2.shape().back()}));
    }
    return sum_to_shape(matmul(transpose(a2), g2), b2.shape());
  }
};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) { return make<MatmulOp>({a, b}); }

}  // namespace needle::ops
