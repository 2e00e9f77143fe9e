// Scaled dot-product attention. When q, k and v share their batch dimensions and dtype (what a multi-head
// layer hands over), one fused op runs the backend's attention kernel, which never stores the L x S
// probabilities: the forward keeps only each row's logsumexp, and the backward recomputes the
// probabilities from it. Other operands (batch dimensions that broadcast, mixed dtypes) take the
// composition of matmul, transpose, where and softmax, where every piece has its gradient.
#include <cmath>
#include <limits>
#include <memory>
#include <optional>

#include "needle/autograd/grad_mode.h"
#include "needle/core/fused_ops.h"
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::constant;

namespace {

constexpr std::string_view kOp = "scaled_dot_product_attention";

Shape batch_shape(const Shape& shape) { return {shape.begin(), shape.end() - 2}; }

// softmax(scale * q k^T [masked]) by ops, differentiable (twice, too). Masked scores become -inf before
// the softmax, so their weights are exactly exp(-inf) = 0 (never merely small); row i always keeps
// j = 0, so no row is entirely masked.
Tensor composed_probabilities(const Tensor& q, const Tensor& k, double scale, bool causal) {
  Tensor scores = matmul(q, transpose(k)) * Scalar(scale);
  if (causal) {
    // Position i sees j <= i.
    const std::int64_t length = q.shape()[q.shape().size() - 2];
    const std::int64_t source_length = k.shape()[k.shape().size() - 2];
    const NDArray rows = NDArray::arange(length, DType::Int64, q.device()).reshape({length, 1});
    const NDArray cols = NDArray::arange(source_length, DType::Int64, q.device()).reshape({1, source_length});
    const Tensor visible = constant(needle::le(cols, rows));
    scores = where(visible, scores, detail::scalar_like(scores, Scalar(-std::numeric_limits<double>::infinity())));
  }
  return softmax(scores, -1);
}

// q (..., L, d) as the attention array functions take it: with at least one batch dimension. They read
// the operands through their strides (the heads of a projection in place) and lay the results out like
// them.
NDArray with_batch(const NDArray& a) { return a.ndim() == 2 ? a.reshape({1, a.shape()[0], a.shape()[1]}) : a; }

// The fused attention of q (..., L, d), k (..., S, d), v (..., S, dv) with equal batch dimensions and one
// floating dtype, by Backend::attention. Two outputs: out (..., L, dv), and the per-row logsumexp (..., L)
// of the scaled, masked scores, which the backward needs to recompute the probabilities tile by tile.
class AttentionOp final : public Op {
 public:
  AttentionOp(double scale, bool causal) : scale_(scale), causal_(causal) {}
  std::string name() const override { return std::string(kOp); }
  std::size_t num_outputs() const override { return 2; }
  std::vector<NDArray> compute_outputs(const std::vector<NDArray>& in) const override {
    const AttentionResult r =
        needle::attention(with_batch(in[0]), with_batch(in[1]), with_batch(in[2]), scale_, causal_);
    // A 2-d q was given a batch dimension of 1; the output drops it again.
    const Shape& shape = r.out.shape();
    return {in[0].ndim() == 2 ? r.out.reshape(Shape(shape.begin() + 1, shape.end())) : r.out, r.logsumexp};
  }
  std::vector<Tensor> gradient_outputs(const std::vector<Tensor>& out_grads, const std::vector<Tensor>& outputs,
                                       const std::vector<Tensor>& inputs, const NeedsGrad& needs_grad) const override;

 private:
  double scale_;
  bool causal_;
};

// Only out carries a gradient: the logsumexp is an internal output no user op reads.
std::vector<Tensor> AttentionOp::gradient_outputs(const std::vector<Tensor>& out_grads,
                                                  const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                                                  const NeedsGrad& needs_grad) const {
  const Tensor& g = out_grads[0];
  const Tensor& q = inputs[0];
  const Tensor& k = inputs[1];
  const Tensor& v = inputs[2];
  if (!g.defined()) return {Tensor(), Tensor(), Tensor()};
  if (grad_enabled()) {
    // backward(create_graph=true): the gradients must themselves be differentiable, so they are written
    // with ops (FlashAttention's backward formulas on the full probabilities p, recomputed from q and k).
    const Tensor p = composed_probabilities(q, k, scale_, causal_);
    const Tensor dp = matmul(g, transpose(v));
    const Tensor ds = p * (dp - summation(dp * p, {-1}, /*keepdims=*/true)) * Scalar(scale_);
    return {needs_grad[0] ? matmul(ds, k) : Tensor(), needs_grad[1] ? matmul(transpose(ds), q) : Tensor(),
            needs_grad[2] ? matmul(transpose(p), g) : Tensor()};
  }
  // A plain backward records nothing (grad mode is off), so the gradients are plain arrays from the fused
  // kernel, which recomputes the probabilities tile by tile from the logsumexp output.
  const AttentionGrads grads = needle::attention_backward(
      with_batch(g.value()), with_batch(q.value()), with_batch(k.value()), with_batch(v.value()),
      {with_batch(outputs[0].value()), outputs[1].value()}, scale_, causal_);
  return {needs_grad[0] ? constant(grads.dq.reshape(q.shape())) : Tensor(),
          needs_grad[1] ? constant(grads.dk.reshape(k.shape())) : Tensor(),
          needs_grad[2] ? constant(grads.dv.reshape(v.shape())) : Tensor()};
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  NEEDLE_CHECK(q.ndim() >= 2 && k.ndim() >= 2 && v.ndim() >= 2, ValueError, kOp,
               ": q, k and v need at least 2 dimensions (..., L, d), got shapes ", shape_str(q.shape()), ", ",
               shape_str(k.shape()), " and ", shape_str(v.shape()));
  detail::check_floating(kOp, q);
  detail::check_floating(kOp, k);
  detail::check_floating(kOp, v);
  detail::check_same_device(kOp, {q, k, v});
  const std::int64_t dim = q.shape().back();
  const std::int64_t source_length = k.shape()[k.shape().size() - 2];
  NEEDLE_CHECK(k.shape().back() == dim && v.shape()[v.shape().size() - 2] == source_length, ValueError, kOp,
               ": expected q (..., L, d), k (..., S, d) and v (..., S, dv), got shapes ", shape_str(q.shape()), ", ",
               shape_str(k.shape()), " and ", shape_str(v.shape()));
  // The batch dimensions must broadcast together (checked here so the error names this op).
  const Shape batch = batch_shape(q.shape());
  (void)broadcast_shapes(broadcast_shapes(batch, batch_shape(k.shape()), kOp), batch_shape(v.shape()), kOp);

  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
  if (batch == batch_shape(k.shape()) && batch == batch_shape(v.shape()) && q.dtype() == k.dtype() &&
      q.dtype() == v.dtype()) {
    return Tensor::from_op_outputs(std::make_shared<const AttentionOp>(scale, causal), {q, k, v}).front();
  }
  return matmul(composed_probabilities(q, k, scale, causal), v);
}

}  // namespace needle::ops
