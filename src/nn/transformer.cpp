// Attention and transformers over (batch, seq, dim): MultiHeadAttention, the pre-LayerNorm
// TransformerLayer and the decoder-only Transformer language model.
#include <cmath>
#include <limits>

#include "needle/core/array_ops.h"
#include "needle/nn/layers.h"
#include "needle/ops/ops.h"
#include "nn/layer_util.h"

namespace needle::nn {

namespace {

// softmax(q k^T / sqrt(d) [+ causal mask]) with dropout on the probabilities, then @ v. Only used when
// attention dropout is active, since ops::scaled_dot_product_attention has no dropout; the mask is the
// op's (position i sees j <= i, masked scores -inf so their weights are exactly 0).
Tensor attention_with_dropout(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double p) {
  const std::int64_t length = q.shape()[2];
  const std::int64_t source_length = k.shape()[2];
  const std::int64_t dim = q.shape()[3];
  Tensor scores = ops::matmul(q, ops::transpose(k)) * Scalar(1.0 / std::sqrt(static_cast<double>(dim)));
  if (causal) {
    const NDArray rows = NDArray::arange(length, DType::Int64, q.device()).reshape({length, 1});
    const NDArray cols = NDArray::arange(source_length, DType::Int64, q.device()).reshape({1, source_length});
    const Tensor visible(needle::le(cols, rows));
    const Tensor masked(
        NDArray::full({}, Scalar(-std::numeric_limits<double>::infinity()), scores.dtype(), q.device()));
    scores = ops::where(visible, scores, masked);
  }
  return ops::matmul(ops::dropout(ops::softmax(scores, -1), p, /*training=*/true), v);
}

}  // namespace

MultiHeadAttention::MultiHeadAttention(std::int64_t embed_dim, std::int64_t num_heads, bool causal, double dropout,
                                       bool bias, Device device, DType dtype)
    : embed_dim_(embed_dim), num_heads_(num_heads), causal_(causal), dropout_(dropout) {
  detail::expect_positive("MultiHeadAttention", "embed_dim", embed_dim);
  detail::expect_positive("MultiHeadAttention", "num_heads", num_heads);
  NEEDLE_CHECK(embed_dim % num_heads == 0, ValueError, "MultiHeadAttention: embed_dim ", embed_dim,
               " is not divisible by num_heads ", num_heads);
  NEEDLE_CHECK(dropout >= 0.0 && dropout < 1.0, ValueError, "MultiHeadAttention: dropout must lie in [0, 1), got ",
               dropout);
  q_projection_ = register_module("q_projection", std::make_shared<Linear>(embed_dim, embed_dim, bias, device, dtype));
  k_projection_ = register_module("k_projection", std::make_shared<Linear>(embed_dim, embed_dim, bias, device, dtype));
  v_projection_ = register_module("v_projection", std::make_shared<Linear>(embed_dim, embed_dim, bias, device, dtype));
  out_projection_ =
      register_module("out_projection", std::make_shared<Linear>(embed_dim, embed_dim, bias, device, dtype));
}

Tensor MultiHeadAttention::forward(const Tensor& q, const Tensor& k, const Tensor& v) {
  const auto shapes = [&] {
    return str(shape_str(q.shape()), ", ", shape_str(k.shape()), " and ", shape_str(v.shape()));
  };
  const bool ranks = q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3;
  NEEDLE_CHECK(ranks && q.shape()[2] == embed_dim_ && k.shape()[2] == embed_dim_ && v.shape()[2] == embed_dim_ &&
                   k.shape()[0] == q.shape()[0] && v.shape()[0] == q.shape()[0] && v.shape()[1] == k.shape()[1],
               ValueError, "MultiHeadAttention: expected q (batch, L, ", embed_dim_, "), k and v (batch, S, ",
               embed_dim_, "), got shapes ", shapes());
  const Device device = q_projection_->weight().device();
  check_device(q, device);
  check_device(k, device);
  check_device(v, device);
  const std::int64_t batch = q.shape()[0];
  const std::int64_t head_dim = embed_dim_ / num_heads_;
  // (batch, seq, embed_dim) -> (batch, heads, seq, head_dim): each head attends on its own slice.
  const auto split_heads = [&](const Tensor& t) {
    return ops::permute(ops::reshape(t, {batch, t.shape()[1], num_heads_, head_dim}), {0, 2, 1, 3});
  };
  const Tensor qh = split_heads(q_projection_->forward(q));
  const Tensor kh = split_heads(k_projection_->forward(k));
  const Tensor vh = split_heads(v_projection_->forward(v));
  const Tensor heads = training() && dropout_ > 0.0 ? attention_with_dropout(qh, kh, vh, causal_, dropout_)
                                                    : ops::scaled_dot_product_attention(qh, kh, vh, causal_);
  const Tensor joined = ops::reshape(ops::permute(heads, {0, 2, 1, 3}), {batch, q.shape()[1], embed_dim_});
  return out_projection_->forward(joined);
}

TransformerLayer::TransformerLayer(std::int64_t dim, std::int64_t num_heads, std::int64_t hidden_size, double dropout,
                                   bool causal, Device device, DType dtype)
    : dim_(dim) {
  detail::expect_positive("TransformerLayer", "hidden_size", hidden_size);
  ln1_ = register_module("ln1", std::make_shared<LayerNorm1d>(dim, 1e-5, device, dtype));
  attn_ = register_module("attn",
                          std::make_shared<MultiHeadAttention>(dim, num_heads, causal, dropout, false, device, dtype));
  ln2_ = register_module("ln2", std::make_shared<LayerNorm1d>(dim, 1e-5, device, dtype));
  mlp_ = register_module(
      "mlp", std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
                 std::make_shared<Linear>(dim, hidden_size, true, device, dtype), std::make_shared<GELU>(),
                 std::make_shared<Dropout>(dropout), std::make_shared<Linear>(hidden_size, dim, true, device, dtype)}));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(dropout));
}

Tensor TransformerLayer::forward(const Tensor& x) {
  detail::expect_ndim("TransformerLayer", x, 3, "(batch, seq, dim)");
  detail::expect_dim("TransformerLayer", x, 2, dim_, "last dimension");
  const Tensor h = x + dropout_->forward(attn_->forward(ln1_->forward(x)));
  return h + dropout_->forward(mlp_->forward(ln2_->forward(h)));
}

Transformer::Transformer(std::int64_t vocab_size, std::int64_t dim, std::int64_t num_layers, std::int64_t num_heads,
                         std::int64_t hidden_size, std::int64_t max_seq_len, double dropout, bool causal, Device device,
                         DType dtype)
    : vocab_size_(vocab_size), max_seq_len_(max_seq_len) {
  detail::expect_positive("Transformer", "num_layers", num_layers);
  token_embedding_ = register_module("token_embedding", std::make_shared<Embedding>(vocab_size, dim, device, dtype));
  positional_embedding_ =
      register_module("positional_embedding", std::make_shared<Embedding>(max_seq_len, dim, device, dtype));
  layers_ = register_module("layers", std::make_shared<Sequential>());
  for (std::int64_t l = 0; l < num_layers; ++l) {
    layers_->append(std::make_shared<TransformerLayer>(dim, num_heads, hidden_size, dropout, causal, device, dtype));
  }
  norm_ = register_module("norm", std::make_shared<LayerNorm1d>(dim, 1e-5, device, dtype));
  head_ = register_module("head", std::make_shared<Linear>(dim, vocab_size, true, device, dtype));
}

Tensor Transformer::forward(const Tensor& tokens) {
  detail::expect_ndim("Transformer", tokens, 2, "(batch, seq) of token ids");
  const std::int64_t length = tokens.shape()[1];
  NEEDLE_CHECK(length <= max_seq_len_, ValueError, "Transformer: sequence length ", length, " exceeds max_seq_len ",
               max_seq_len_, " (input shape ", shape_str(tokens.shape()), ")");
  const Device device = token_embedding_->weight().device();
  check_device(tokens, device);
  const Tensor positions(NDArray::arange(length, DType::Int64, device));
  // (batch, seq, dim) + (seq, dim): every sequence gets the same learned position vectors.
  const Tensor x = token_embedding_->forward(tokens) + positional_embedding_->forward(positions);
  return head_->forward(norm_->forward(layers_->forward(x)));
}

}  // namespace needle::nn
