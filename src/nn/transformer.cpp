// Attention and transformers over (batch, seq, dim): MultiHeadAttention, the pre-LayerNorm
// TransformerLayer and the decoder-only Transformer language model, with its key/value cache and its
// generate() loop. Layers call their children by name at every forward (not through pointers kept at
// construction), so a child replaced with Module::set_child (quantize_dynamic) computes from then on.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "needle/autograd/grad_mode.h"
#include "needle/core/array_ops.h"
#include "needle/core/fused_ops.h"
#include "needle/nn/layers.h"
#include "needle/ops/ops.h"
#include "nn/layer_util.h"

namespace needle::nn {

namespace {

// The device of a layer's weights: its first parameter's, or its first buffer's (a quantized layer has
// only buffers).
Device state_device(const Module& layer) {
  const std::vector<Tensor> parameters = layer.parameters();
  if (!parameters.empty()) return parameters.front().device();
  return layer.named_buffers().front().second.device();
}

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
  for (const char* name : {"q_projection", "k_projection", "v_projection", "out_projection"}) {
    register_module(name, std::make_shared<Linear>(embed_dim, embed_dim, bias, device, dtype));
  }
}

std::shared_ptr<Linear> MultiHeadAttention::q_projection() const {
  return std::dynamic_pointer_cast<Linear>(child("q_projection"));
}
std::shared_ptr<Linear> MultiHeadAttention::k_projection() const {
  return std::dynamic_pointer_cast<Linear>(child("k_projection"));
}
std::shared_ptr<Linear> MultiHeadAttention::v_projection() const {
  return std::dynamic_pointer_cast<Linear>(child("v_projection"));
}
std::shared_ptr<Linear> MultiHeadAttention::out_projection() const {
  return std::dynamic_pointer_cast<Linear>(child("out_projection"));
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
  const Device device = state_device(*child("q_projection"));
  check_device(q, device);
  check_device(k, device);
  check_device(v, device);
  const std::int64_t batch = q.shape()[0];
  const std::int64_t head_dim = embed_dim_ / num_heads_;
  // (batch, seq, embed_dim) -> (batch, heads, seq, head_dim): each head attends on its own slice.
  const auto split_heads = [&](const Tensor& t) {
    return ops::permute(ops::reshape(t, {batch, t.shape()[1], num_heads_, head_dim}), {0, 2, 1, 3});
  };
  const Tensor qh = split_heads(child("q_projection")->forward(q));
  const Tensor kh = split_heads(child("k_projection")->forward(k));
  const Tensor vh = split_heads(child("v_projection")->forward(v));
  const Tensor heads = training() && dropout_ > 0.0 ? attention_with_dropout(qh, kh, vh, causal_, dropout_)
                                                    : ops::scaled_dot_product_attention(qh, kh, vh, causal_);
  const Tensor joined = ops::reshape(ops::permute(heads, {0, 2, 1, 3}), {batch, q.shape()[1], embed_dim_});
  return child("out_projection")->forward(joined);
}

Tensor MultiHeadAttention::forward_cached(const Tensor& x, const NDArray& keys, const NDArray& values,
                                          std::int64_t start) {
  NEEDLE_CHECK(causal_, ValueError, "MultiHeadAttention: a key/value cache needs a causal layer (each position ",
               "attends only to earlier ones), this one is not causal");
  detail::expect_ndim("MultiHeadAttention", x, 3, "(batch, seq, embed_dim)");
  detail::expect_dim("MultiHeadAttention", x, 2, embed_dim_, "last dimension");
  const std::int64_t batch = x.shape()[0];
  const std::int64_t length = x.shape()[1];
  const std::int64_t head_dim = embed_dim_ / num_heads_;
  const std::int64_t capacity = keys.ndim() == 4 ? keys.shape()[2] : 0;
  const Shape cache_shape{batch, num_heads_, capacity, head_dim};
  NEEDLE_CHECK(keys.shape() == cache_shape && values.shape() == cache_shape, ValueError,
               "MultiHeadAttention: the cache must hold (batch, num_heads, capacity, head_dim) = ",
               shape_str(cache_shape), " keys and values for input ", shape_str(x.shape()), ", got ",
               shape_str(keys.shape()), " and ", shape_str(values.shape()));
  NEEDLE_CHECK(start >= 0 && start + length <= capacity, ValueError, "MultiHeadAttention: ", length,
               " new positions after ", start, " cached ones exceed the cache's capacity ", capacity);
  const NoGradGuard no_grad;
  // (batch, n, embed_dim) -> (batch, heads, n, head_dim), as in forward.
  const auto split_heads = [&](const Tensor& t) {
    return t.value().reshape({batch, length, num_heads_, head_dim}).permute({0, 2, 1, 3});
  };
  const NDArray qh = split_heads(child("q_projection")->forward(x));
  const NDArray kh = split_heads(child("k_projection")->forward(x));
  const NDArray vh = split_heads(child("v_projection")->forward(x));
  NDArray cached_keys = keys;
  NDArray cached_values = values;
  const Index new_rows{IndexItem::range(), IndexItem::range(), IndexItem::range(start, start + length),
                       IndexItem::range()};
  cached_keys.assign(new_rows, kh);
  cached_values.assign(new_rows, vh);

  // Every position up to the newest, per (batch, head) problem, read in place from the cache.
  const std::int64_t visible = start + length;
  const std::int64_t problems = batch * num_heads_;
  const Index prefix{IndexItem::range(), IndexItem::range(0, visible), IndexItem::range()};
  const NDArray k_prefix = keys.reshape({problems, capacity, head_dim}).index(prefix);
  const NDArray v_prefix = values.reshape({problems, capacity, head_dim}).index(prefix);
  const NDArray q_rows = qh.compact().reshape({problems, length, head_dim});
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  NDArray heads;  // (problems, n, head_dim)
  if (length == 1) {
    // Decode: the newest position sees every cached one; one query row per problem.
    heads = decode_attention(q_rows.reshape({problems, head_dim}), k_prefix, v_prefix, scale)
                .reshape({problems, 1, head_dim});
  } else if (start == 0) {
    // Prefill of an empty cache: plain causal attention over the new positions.
    heads = attention(q_rows, k_prefix, v_prefix, scale, /*causal=*/true).out;
  } else {
    // Several positions after cached ones: position start + i sees j <= start + i (the causal mask
    // aligned to the end of the keys), composed from array functions.
    NDArray scores = matmul(q_rows, k_prefix.swapaxes(1, 2));
    scores = binary(BinaryOp::Mul, scores, Scalar(scale));
    const NDArray rows =
        binary(BinaryOp::Add, NDArray::arange(length, DType::Int64, keys.device()).reshape({length, 1}), Scalar(start));
    const NDArray cols = NDArray::arange(visible, DType::Int64, keys.device()).reshape({1, visible});
    const NDArray hidden_value =
        NDArray::full({}, Scalar(-std::numeric_limits<double>::infinity()), scores.dtype(), keys.device());
    scores = where(le(cols, rows), scores, hidden_value);
    heads = matmul(softmax(scores, 2), v_prefix);
  }
  const NDArray joined = heads.reshape({batch, num_heads_, length, head_dim})
                             .permute({0, 2, 1, 3})
                             .compact()
                             .reshape({batch, length, embed_dim_});
  return child("out_projection")->forward(Tensor(joined));
}

TransformerLayer::TransformerLayer(std::int64_t dim, std::int64_t num_heads, std::int64_t hidden_size, double dropout,
                                   bool causal, Device device, DType dtype)
    : dim_(dim) {
  detail::expect_positive("TransformerLayer", "hidden_size", hidden_size);
  register_module("ln1", std::make_shared<LayerNorm1d>(dim, 1e-5, device, dtype));
  attn_ = register_module("attn",
                          std::make_shared<MultiHeadAttention>(dim, num_heads, causal, dropout, false, device, dtype));
  register_module("ln2", std::make_shared<LayerNorm1d>(dim, 1e-5, device, dtype));
  register_module(
      "mlp", std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
                 std::make_shared<Linear>(dim, hidden_size, true, device, dtype), std::make_shared<GELU>(),
                 std::make_shared<Dropout>(dropout), std::make_shared<Linear>(hidden_size, dim, true, device, dtype)}));
  register_module("dropout", std::make_shared<Dropout>(dropout));
}

Tensor TransformerLayer::forward(const Tensor& x) {
  detail::expect_ndim("TransformerLayer", x, 3, "(batch, seq, dim)");
  detail::expect_dim("TransformerLayer", x, 2, dim_, "last dimension");
  Module& dropout = *child("dropout");
  const Tensor h = x + dropout(attn_->forward(child("ln1")->forward(x)));
  return h + dropout(child("mlp")->forward(child("ln2")->forward(h)));
}

Tensor TransformerLayer::forward_cached(const Tensor& x, const NDArray& keys, const NDArray& values,
                                        std::int64_t start) {
  detail::expect_ndim("TransformerLayer", x, 3, "(batch, seq, dim)");
  detail::expect_dim("TransformerLayer", x, 2, dim_, "last dimension");
  const Tensor h = x + attn_->forward_cached(child("ln1")->forward(x), keys, values, start);
  return h + child("mlp")->forward(child("ln2")->forward(h));
}

Transformer::Transformer(std::int64_t vocab_size, std::int64_t dim, std::int64_t num_layers, std::int64_t num_heads,
                         std::int64_t hidden_size, std::int64_t max_seq_len, double dropout, bool causal, Device device,
                         DType dtype)
    : vocab_size_(vocab_size), max_seq_len_(max_seq_len), dim_(dim), num_heads_(num_heads), causal_(causal) {
  detail::expect_positive("Transformer", "num_layers", num_layers);
  register_module("token_embedding", std::make_shared<Embedding>(vocab_size, dim, device, dtype));
  register_module("positional_embedding", std::make_shared<Embedding>(max_seq_len, dim, device, dtype));
  const auto layers = register_module("layers", std::make_shared<Sequential>());
  for (std::int64_t l = 0; l < num_layers; ++l) {
    blocks_.push_back(std::make_shared<TransformerLayer>(dim, num_heads, hidden_size, dropout, causal, device, dtype));
    layers->append(blocks_.back());
  }
  register_module("norm", std::make_shared<LayerNorm1d>(dim, 1e-5, device, dtype));
  register_module("head", std::make_shared<Linear>(dim, vocab_size, true, device, dtype));
}

Tensor Transformer::forward(const Tensor& tokens) {
  detail::expect_ndim("Transformer", tokens, 2, "(batch, seq) of token ids");
  const std::int64_t length = tokens.shape()[1];
  NEEDLE_CHECK(length <= max_seq_len_, ValueError, "Transformer: sequence length ", length, " exceeds max_seq_len ",
               max_seq_len_, " (input shape ", shape_str(tokens.shape()), ")");
  const Device device = child("token_embedding")->parameter("weight").device();
  check_device(tokens, device);
  const Tensor positions(NDArray::arange(length, DType::Int64, device));
  // (batch, seq, dim) + (seq, dim): every sequence gets the same learned position vectors.
  const Tensor x = child("token_embedding")->forward(tokens) + child("positional_embedding")->forward(positions);
  return child("head")->forward(child("norm")->forward(child("layers")->forward(x)));
}

Tensor Transformer::forward(const Tensor& tokens, KVCache& cache) {
  detail::expect_ndim("Transformer", tokens, 2, "(batch, seq) of token ids");
  const std::int64_t start = cache.length();
  const std::int64_t length = tokens.shape()[1];
  NEEDLE_CHECK(cache.num_layers() == num_layers() && tokens.shape()[0] == cache.batch(), ValueError,
               "Transformer: the cache holds ", cache.batch(), " sequences for ", cache.num_layers(),
               " layers, got tokens of shape ", shape_str(tokens.shape()), " for a model of ", num_layers(), " layers");
  NEEDLE_CHECK(start + length <= cache.capacity(), ValueError, "Transformer: ", length, " new tokens after ", start,
               " cached ones exceed the cache's capacity ", cache.capacity(), " (input shape ",
               shape_str(tokens.shape()), ")");
  const Device device = child("token_embedding")->parameter("weight").device();
  check_device(tokens, device);
  const NoGradGuard no_grad;
  const Tensor positions(binary(BinaryOp::Add, NDArray::arange(length, DType::Int64, device), Scalar(start)));
  Tensor x = child("token_embedding")->forward(tokens) + child("positional_embedding")->forward(positions);
  for (std::size_t l = 0; l < blocks_.size(); ++l) {
    x = blocks_[l]->forward_cached(x, cache.keys_[l], cache.values_[l], start);
  }
  cache.length_ = start + length;
  return child("head")->forward(child("norm")->forward(x));
}

namespace {

// The next token of one sequence from its last position's logits (GenerationOptions says how).
std::int64_t pick_token(std::vector<double> logits, const GenerationOptions& options, std::mt19937_64& rng) {
  const auto vocab = static_cast<std::int64_t>(logits.size());
  if (options.temperature == 0.0) {
    return std::max_element(logits.begin(), logits.end()) - logits.begin();
  }
  // Tokens by decreasing logit (ties by id), cut to top_k, then to the nucleus of mass top_p.
  std::vector<std::int64_t> order(logits.size());
  for (std::int64_t i = 0; i < vocab; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return logits[a] > logits[b]; });
  std::int64_t kept = options.top_k > 0 ? std::min(options.top_k, vocab) : vocab;
  std::vector<double> probs(kept);
  const double largest = logits[order[0]];
  double total = 0.0;
  for (std::int64_t i = 0; i < kept; ++i) {
    probs[i] = std::exp((logits[order[i]] - largest) / options.temperature);
    total += probs[i];
  }
  if (options.top_p < 1.0) {
    double mass = 0.0;
    std::int64_t nucleus = 0;
    while (nucleus < kept && mass < options.top_p * total) mass += probs[nucleus++];
    kept = std::max<std::int64_t>(nucleus, 1);
    total = 0.0;
    for (std::int64_t i = 0; i < kept; ++i) total += probs[i];
  }
  // A uniform draw in [0, total) from the top 53 bits of the generator (exact and the same everywhere).
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
  double running = 0.0;
  for (std::int64_t i = 0; i < kept; ++i) {
    running += probs[i];
    if (u < running) return order[i];
  }
  return order[kept - 1];
}

// Restores a module's training mode when generate() returns or throws.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(Module& module) : module_(module), was_training_(module.training()) { module.eval(); }
  ~EvalModeGuard() { module_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;
  EvalModeGuard(EvalModeGuard&&) = delete;
  EvalModeGuard& operator=(EvalModeGuard&&) = delete;

 private:
  Module& module_;
  bool was_training_;
};

}  // namespace

NDArray Transformer::generate(const NDArray& prompt, std::int64_t max_new_tokens, const GenerationOptions& options,
                              KVCache* cache) {
  NEEDLE_CHECK(prompt.ndim() == 2 && prompt.shape()[1] >= 1 && prompt.shape()[0] >= 1, ValueError,
               "Transformer.generate: expected prompt ids of shape (batch, seq) with seq >= 1, got shape ",
               shape_str(prompt.shape()));
  NEEDLE_CHECK(is_integral(prompt.dtype()), TypeError, "Transformer.generate: prompt ids must be integers, got dtype ",
               dtype_name(prompt.dtype()));
  NEEDLE_CHECK(max_new_tokens >= 0, ValueError, "Transformer.generate: max_new_tokens must be >= 0, got ",
               max_new_tokens);
  NEEDLE_CHECK(options.temperature >= 0.0 && std::isfinite(options.temperature), ValueError,
               "Transformer.generate: temperature must be finite and >= 0, got ", options.temperature);
  NEEDLE_CHECK(options.top_k >= 0, ValueError, "Transformer.generate: top_k must be >= 0, got ", options.top_k);
  NEEDLE_CHECK(options.top_p > 0.0 && options.top_p <= 1.0, ValueError,
               "Transformer.generate: top_p must lie in (0, 1], got ", options.top_p);
  const std::int64_t batch = prompt.shape()[0];
  const std::int64_t total = prompt.shape()[1] + max_new_tokens;
  NEEDLE_CHECK(total <= max_seq_len_, ValueError, "Transformer.generate: prompt length ", prompt.shape()[1], " plus ",
               max_new_tokens, " new tokens exceeds max_seq_len ", max_seq_len_);
  const Device device = child("token_embedding")->parameter("weight").device();
  const EvalModeGuard eval_mode(*this);
  const NoGradGuard no_grad;

  std::mt19937_64 rng(options.seed);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(batch * total));  // row-major (batch, total)
  {
    const std::vector<std::int64_t> host = prompt.astype(DType::Int64).to_vector<std::int64_t>();
    for (std::int64_t b = 0; b < batch; ++b) {
      for (std::int64_t t = 0; t < prompt.shape()[1]; ++t) ids[b * total + t] = host[b * prompt.shape()[1] + t];
    }
  }
  // The ids of positions [from, to) of every sequence, on the model's device.
  const auto tokens = [&](std::int64_t from, std::int64_t to) {
    std::vector<std::int64_t> slice;
    for (std::int64_t b = 0; b < batch; ++b) {
      slice.insert(slice.end(), ids.begin() + b * total + from, ids.begin() + b * total + to);
    }
    return Tensor(NDArray::from_vector(slice, {batch, to - from}, device));
  };

  std::unique_ptr<KVCache> own_cache;
  if (options.use_cache && cache == nullptr) {
    own_cache = std::make_unique<KVCache>(*this, batch, total);
    cache = own_cache.get();
  }
  if (options.use_cache) cache->reset();
  std::int64_t filled = prompt.shape()[1];
  for (std::int64_t step = 0; step < max_new_tokens; ++step) {
    // Logits of each sequence's last position, (batch, vocab), on the host.
    const Tensor logits =
        options.use_cache ? forward(tokens(cache->length(), filled), *cache) : forward(tokens(0, filled));
    const std::int64_t positions = logits.shape()[1];
    const NDArray last = logits.value().index({IndexItem::range(), IndexItem::at(positions - 1), IndexItem::range()});
    const std::vector<double> host = last.astype(DType::Float64).to_vector<double>();
    for (std::int64_t b = 0; b < batch; ++b) {
      const auto row = host.begin() + b * vocab_size_;
      ids[b * total + filled] = pick_token(std::vector<double>(row, row + vocab_size_), options, rng);
    }
    ++filled;
  }
  return NDArray::from_vector(ids, {batch, total}, device);
}

KVCache::KVCache(const Transformer& model, std::int64_t batch, std::int64_t capacity)
    : batch_(batch), capacity_(capacity == 0 ? model.max_seq_len() : capacity) {
  NEEDLE_CHECK(model.causal(), ValueError, "KVCache: the model is not causal; a cache serves causal generation");
  detail::expect_positive("KVCache", "batch", batch);
  NEEDLE_CHECK(capacity_ >= 1 && capacity_ <= model.max_seq_len(), ValueError, "KVCache: capacity must lie in [1, ",
               model.max_seq_len(), "] (the model's max_seq_len), got ", capacity);
  const Tensor weight = model.child("token_embedding")->parameter("weight");
  const std::int64_t head_dim = model.dim() / model.num_heads();
  const Shape shape{batch, model.num_heads(), capacity_, head_dim};
  for (std::int64_t l = 0; l < model.num_layers(); ++l) {
    keys_.push_back(NDArray::zeros(shape, weight.dtype(), weight.device()));
    values_.push_back(NDArray::zeros(shape, weight.dtype(), weight.device()));
  }
}

const NDArray& KVCache::keys(std::int64_t layer) const {
  NEEDLE_CHECK(layer >= 0 && layer < num_layers(), IndexError, "KVCache: layer ", layer, " out of range for ",
               num_layers(), " layers");
  return keys_[static_cast<std::size_t>(layer)];
}

const NDArray& KVCache::values(std::int64_t layer) const {
  NEEDLE_CHECK(layer >= 0 && layer < num_layers(), IndexError, "KVCache: layer ", layer, " out of range for ",
               num_layers(), " layers");
  return values_[static_cast<std::size_t>(layer)];
}

}  // namespace needle::nn
