// Scaled dot-product attention, composed from matmul, transpose, where and softmax: every piece has its
// gradient, so the composition is differentiable (twice, too) without a backward of its own.
#include <cmath>
#include <limits>

#include "ops/op_helpers.h"

namespace needle::ops {

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  constexpr std::string_view kOp = "scaled_dot_product_attention";
  NEEDLE_CHECK(q.ndim() >= 2 && k.ndim() >= 2 && v.ndim() >= 2, ValueError, kOp,
               ": q, k and v need at least 2 dimensions (..., L, d), got shapes ", shape_str(q.shape()), ", ",
               shape_str(k.shape()), " and ", shape_str(v.shape()));
  detail::check_floating(kOp, q);
  detail::check_floating(kOp, k);
  detail::check_floating(kOp, v);
  detail::check_same_device(kOp, {q, k, v});
  const std::int64_t length = q.shape()[q.shape().size() - 2];
  const std::int64_t dim = q.shape().back();
  const std::int64_t source_length = k.shape()[k.shape().size() - 2];
  NEEDLE_CHECK(k.shape().back() == dim && v.shape()[v.shape().size() - 2] == source_length, ValueError, kOp,
               ": expected q (..., L, d), k (..., S, d) and v (..., S, dv), got shapes ", shape_str(q.shape()), ", ",
               shape_str(k.shape()), " and ", shape_str(v.shape()));
  // The batch dimensions must broadcast together (checked here so the error names this op).
  const auto batch = [](const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); };
  (void)broadcast_shapes(broadcast_shapes(batch(q), batch(k), kOp), batch(v), kOp);

  Tensor scores = matmul(q, transpose(k)) * Scalar(1.0 / std::sqrt(static_cast<double>(dim)));
  if (causal) {
    // Position i sees j <= i. Masked scores become -inf before the softmax, so their weights are exactly
    // exp(-inf) = 0 (never merely small); row i always keeps j = 0, so no row is entirely masked.
    const NDArray rows = NDArray::arange(length, DType::Int64, q.device()).reshape({length, 1});
    const NDArray cols = NDArray::arange(source_length, DType::Int64, q.device()).reshape({1, source_length});
    const Tensor visible = detail::constant(needle::le(cols, rows));
    scores = where(visible, scores, detail::scalar_like(scores, Scalar(-std::numeric_limits<double>::infinity())));
  }
  return matmul(softmax(scores, -1), v);
}

}  // namespace needle::ops
