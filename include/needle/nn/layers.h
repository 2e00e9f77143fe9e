// The layers of needle.nn, as C++ Modules (Needle's names, shapes and initializations; PyTorch's where
// Needle has none). Every layer's forward is built from the op library, so its gradient comes from the
// ops', and every parameter is registered under the name Needle gives the attribute ("weight", "bias",
// "W_ih", ...) and also reachable through an accessor.
//
// Constructors take every option explicitly, ending with (device, dtype): the parameters are created
// there, and inputs must be on the parameters' device (RuntimeError naming both otherwise). Inputs are
// validated in forward with errors naming the layer and the shapes.
//
// Random initial values come from init's initializer source (nn/init.h), drawn with Needle's formulas in
// a fixed order: a layer's parameters in registration order (Linear: weight, then bias; Conv: weight, then
// bias; RNNCell/LSTMCell: W_ih, W_hh, bias_ih, bias_hh), composite layers' parts in registration order. A
// source replaying NumPy's global state therefore reproduces the course Needle's numbers.
//
// Layers with one input and one output override Module::forward(x). Losses, recurrent layers and
// attention have several inputs or outputs: they offer forward(...) and operator()(...) with their own
// signature (optional states are undefined Tensors, meaning zeros) and leave Module::forward(x) refusing.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "needle/core/dtype.h"
#include "needle/nn/module.h"

namespace needle::nn {

// ---- basic layers (src/nn/basic.cpp) --------------------------------------------------------------

class Identity final : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  [[nodiscard]] std::string name() const override { return "Identity"; }
};

// y = x @ weight + bias over the last axis of x (..., in_features) -> (..., out_features). As in Needle:
// weight (in_features, out_features) from kaiming_uniform(in, out); bias (1, out_features) from
// kaiming_uniform(out, 1) reshaped.
class Linear final : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true, Device device = default_device(),
         DType dtype = kDefaultFloat);
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "Linear"; }
  [[nodiscard]] std::int64_t in_features() const { return in_features_; }
  [[nodiscard]] std::int64_t out_features() const { return out_features_; }
  [[nodiscard]] Tensor weight() const { return parameter("weight"); }
  [[nodiscard]] Tensor bias() const { return optional_parameter("bias"); }  // undefined without bias

 private:
  std::int64_t in_features_;
  std::int64_t out_features_;
};

// (N, d1, d2, ...) -> (N, d1 * d2 * ...).
class Flatten final : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "Flatten"; }
};

class ReLU final : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "ReLU"; }
};

class Tanh final : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "Tanh"; }
};

class Sigmoid final : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "Sigmoid"; }
};

// Exact GELU, x * Phi(x) (PyTorch's default).
class GELU final : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "GELU"; }
};

// An indexable list of modules registered as "0", "1", ... (no forward of its own).
class ModuleList : public Module {
 public:
  ModuleList() = default;
  explicit ModuleList(const std::vector<std::shared_ptr<Module>>& modules);
  void append(std::shared_ptr<Module> module);
  void add(std::shared_ptr<Module> module) { append(std::move(module)); }
  [[nodiscard]] std::size_t size() const { return named_children().size(); }
  // Throws IndexError when out of range; negative indices count from the end.
  [[nodiscard]] std::shared_ptr<Module> at(std::int64_t index) const;
  [[nodiscard]] std::shared_ptr<Module> operator[](std::int64_t index) const { return at(index); }
  [[nodiscard]] std::string name() const override { return "ModuleList"; }
};

// Applies its modules in order.
class Sequential final : public ModuleList {
 public:
  Sequential() = default;
  explicit Sequential(const std::vector<std::shared_ptr<Module>>& modules) : ModuleList(modules) {}
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "Sequential"; }
};

// fn(x) + x (the submodule is registered as "fn").
class Residual final : public Module {
 public:
  explicit Residual(std::shared_ptr<Module> fn);
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "Residual"; }
  [[nodiscard]] const std::shared_ptr<Module>& fn() const { return fn_; }

 private:
  std::shared_ptr<Module> fn_;
};

// Mean over the batch of the cross entropy of logits (N, C) and integer labels (N,) (floating labels
// holding whole numbers, as Needle's data pipeline produces, are accepted and converted).
class SoftmaxLoss final : public Module {
 public:
  using Module::forward;
  Tensor forward(const Tensor& logits, const Tensor& labels);
  Tensor operator()(const Tensor& logits, const Tensor& labels) { return forward(logits, labels); }
  [[nodiscard]] std::string name() const override { return "SoftmaxLoss"; }
};
using CrossEntropyLoss = SoftmaxLoss;

// Mean of squared differences of two tensors of one shape.
class MSELoss final : public Module {
 public:
  using Module::forward;
  Tensor forward(const Tensor& prediction, const Tensor& target);
  Tensor operator()(const Tensor& prediction, const Tensor& target) { return forward(prediction, target); }
  [[nodiscard]] std::string name() const override { return "MSELoss"; }
};

// Zeroes each element with probability p and scales the others by 1 / (1 - p) in training; the identity
// in eval mode.
class Dropout final : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "Dropout"; }
  [[nodiscard]] double p() const { return p_; }
  // Also settable between steps; ValueError outside [0, 1).
  void set_p(double p);

 private:
  double p_ = 0.5;
};

// Rows of weight (num_embeddings, embedding_dim), initialised N(0, 1), picked by integer indices of any
// shape (Needle: (seq_len, batch)): indices.shape + (embedding_dim,). Floating indices holding whole
// numbers are accepted and converted.
class Embedding final : public Module {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, Device device = default_device(),
            DType dtype = kDefaultFloat);
  Tensor forward(const Tensor& indices) override;
  [[nodiscard]] std::string name() const override { return "Embedding"; }
  [[nodiscard]] std::int64_t num_embeddings() const { return num_embeddings_; }
  [[nodiscard]] std::int64_t embedding_dim() const { return embedding_dim_; }
  [[nodiscard]] Tensor weight() const { return parameter("weight"); }

 private:
  std::int64_t num_embeddings_;
  std::int64_t embedding_dim_;
};

// ---- normalization (src/nn/norm.cpp) --------------------------------------------------------------

// Batch normalization over every axis but 1 of x (N, C) [BatchNorm1d] or (N, C, H, W) [BatchNorm2d].
// weight (C,) = 1 and bias (C,) = 0 are parameters; running_mean (C,) = 0 and running_var (C,) = 1 are
// buffers. Training normalizes with the batch statistics and updates running = (1 - momentum) * running
// + momentum * batch with the biased batch variance, as Needle does; eval uses the running statistics.
class BatchNorm : public Module {
 public:
  [[nodiscard]] std::int64_t num_features() const { return num_features_; }
  [[nodiscard]] double eps() const { return eps_; }
  [[nodiscard]] double momentum() const { return momentum_; }
  // Also settable between steps: ValueError unless eps >= 0 and momentum in [0, 1].
  void set_eps(double eps);
  void set_momentum(double momentum);
  [[nodiscard]] Tensor weight() const { return parameter("weight"); }
  [[nodiscard]] Tensor bias() const { return parameter("bias"); }
  [[nodiscard]] Tensor running_mean() const { return buffer("running_mean"); }
  [[nodiscard]] Tensor running_var() const { return buffer("running_var"); }
  Tensor forward(const Tensor& x) override;

 protected:
  BatchNorm(std::int64_t num_features, double eps, double momentum, Device device, DType dtype,
            std::int64_t input_ndim);

 private:
  std::int64_t num_features_;
  double eps_;
  double momentum_;
  std::int64_t input_ndim_;  // 2 for BatchNorm1d, 4 for BatchNorm2d
};

class BatchNorm1d final : public BatchNorm {
 public:
  explicit BatchNorm1d(std::int64_t dim, double eps = 1e-5, double momentum = 0.1, Device device = default_device(),
                       DType dtype = kDefaultFloat)
      : BatchNorm(dim, eps, momentum, device, dtype, 2) {}
  [[nodiscard]] std::string name() const override { return "BatchNorm1d"; }
};

class BatchNorm2d final : public BatchNorm {
 public:
  explicit BatchNorm2d(std::int64_t channels, double eps = 1e-5, double momentum = 0.1,
                       Device device = default_device(), DType dtype = kDefaultFloat)
      : BatchNorm(channels, eps, momentum, device, dtype, 4) {}
  [[nodiscard]] std::string name() const override { return "BatchNorm2d"; }
};

// Normalizes over the last axis of x (..., dim) (Needle's LayerNorm1d takes (N, dim)); weight (dim,) = 1,
// bias (dim,) = 0; biased variance.
class LayerNorm1d final : public Module {
 public:
  explicit LayerNorm1d(std::int64_t dim, double eps = 1e-5, Device device = default_device(),
                       DType dtype = kDefaultFloat);
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "LayerNorm1d"; }
  [[nodiscard]] std::int64_t dim() const { return dim_; }
  [[nodiscard]] double eps() const { return eps_; }
  void set_eps(double eps);  // ValueError unless eps >= 0
  [[nodiscard]] Tensor weight() const { return parameter("weight"); }
  [[nodiscard]] Tensor bias() const { return parameter("bias"); }

 private:
  std::int64_t dim_;
  double eps_;
};
using LayerNorm = LayerNorm1d;

// ---- convolution and pooling (src/nn/conv.cpp) ----------------------------------------------------

// Needle's Conv: x (N, C_in, H, W) -> (N, C_out, H_out, W_out) with "same" padding kernel_size / 2 unless
// `padding` is given. weight (K, K, C_in, C_out) from kaiming_uniform(fan_in = C_in*K*K,
// fan_out = C_out*K*K); bias (C_out,) uniform in +-1 / sqrt(C_in*K*K). Computed in NHWC with ops::conv.
class Conv : public Module {
 public:
  Conv(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size, std::int64_t stride = 1,
       bool bias = true, Device device = default_device(), DType dtype = kDefaultFloat,
       std::optional<std::int64_t> padding = std::nullopt);
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "Conv"; }
  [[nodiscard]] std::int64_t in_channels() const { return in_channels_; }
  [[nodiscard]] std::int64_t out_channels() const { return out_channels_; }
  [[nodiscard]] std::int64_t kernel_size() const { return kernel_size_; }
  [[nodiscard]] std::int64_t stride() const { return stride_; }
  [[nodiscard]] std::int64_t padding() const { return padding_; }
  [[nodiscard]] Tensor weight() const { return parameter("weight"); }
  [[nodiscard]] Tensor bias() const { return optional_parameter("bias"); }  // undefined without bias

 private:
  std::int64_t in_channels_;
  std::int64_t out_channels_;
  std::int64_t kernel_size_;
  std::int64_t stride_;
  std::int64_t padding_;
};

// Conv with PyTorch's argument order and explicit padding (default 0); same parameters as Conv.
class Conv2d final : public Conv {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size, std::int64_t stride = 1,
         std::int64_t padding = 0, bool bias = true, Device device = default_device(), DType dtype = kDefaultFloat)
      : Conv(in_channels, out_channels, kernel_size, stride, bias, device, dtype, padding) {}
  [[nodiscard]] std::string name() const override { return "Conv2d"; }
};

// Pooling over NCHW (ops::max_pool2d / ops::avg_pool2d); stride defaults to kernel_size.
class MaxPool2d final : public Module {
 public:
  explicit MaxPool2d(std::int64_t kernel_size, std::optional<std::int64_t> stride = std::nullopt,
                     std::int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "MaxPool2d"; }

 private:
  std::int64_t kernel_size_;
  std::int64_t stride_;
  std::int64_t padding_;
};

class AvgPool2d final : public Module {
 public:
  explicit AvgPool2d(std::int64_t kernel_size, std::optional<std::int64_t> stride = std::nullopt,
                     std::int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "AvgPool2d"; }

 private:
  std::int64_t kernel_size_;
  std::int64_t stride_;
  std::int64_t padding_;
};

// ---- recurrent layers (src/nn/rnn.cpp) ------------------------------------------------------------
// As in Needle's hw4: W_ih (input_size, G * hidden_size), W_hh (hidden_size, G * hidden_size), bias_ih
// and bias_hh (G * hidden_size,) (G = 1 for RNN, 4 for LSTM), all uniform in +-sqrt(1 / hidden_size).
// Sequences are (seq_len, batch, input_size); states (num_layers, batch, hidden_size).

// h' = nonlinearity(x @ W_ih + bias_ih + h @ W_hh + bias_hh), x (batch, input_size), h (batch, hidden_size)
// (undefined: zeros). nonlinearity is "tanh" or "relu".
class RNNCell final : public Module {
 public:
  RNNCell(std::int64_t input_size, std::int64_t hidden_size, bool bias = true, const std::string& nonlinearity = "tanh",
          Device device = default_device(), DType dtype = kDefaultFloat);
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()); }
  Tensor forward(const Tensor& x, const Tensor& h);
  using Module::operator();
  Tensor operator()(const Tensor& x, const Tensor& h) { return forward(x, h); }
  [[nodiscard]] std::string name() const override { return "RNNCell"; }
  [[nodiscard]] std::int64_t input_size() const { return input_size_; }
  [[nodiscard]] std::int64_t hidden_size() const { return hidden_size_; }
  [[nodiscard]] const std::string& nonlinearity() const { return nonlinearity_; }
  [[nodiscard]] Tensor W_ih() const { return parameter("W_ih"); }  // NOLINT(readability-identifier-naming)
  [[nodiscard]] Tensor W_hh() const { return parameter("W_hh"); }  // NOLINT(readability-identifier-naming)
  [[nodiscard]] Tensor bias_ih() const { return optional_parameter("bias_ih"); }
  [[nodiscard]] Tensor bias_hh() const { return optional_parameter("bias_hh"); }

 private:
  std::int64_t input_size_;
  std::int64_t hidden_size_;
  std::string nonlinearity_;
};

// Gates i, f, g, o (in that order along the 4 * hidden_size axis): i, f, o sigmoid, g tanh;
// c' = f * c + i * g, h' = o * tanh(c'). state = (h, c), each (batch, hidden_size) or undefined (zeros).
class LSTMCell final : public Module {
 public:
  LSTMCell(std::int64_t input_size, std::int64_t hidden_size, bool bias = true, Device device = default_device(),
           DType dtype = kDefaultFloat);
  using Module::forward;
  std::pair<Tensor, Tensor> forward(const Tensor& x, const std::pair<Tensor, Tensor>& state);
  std::pair<Tensor, Tensor> operator()(const Tensor& x, const std::pair<Tensor, Tensor>& state = {}) {
    return forward(x, state);
  }
  [[nodiscard]] std::string name() const override { return "LSTMCell"; }
  [[nodiscard]] std::int64_t input_size() const { return input_size_; }
  [[nodiscard]] std::int64_t hidden_size() const { return hidden_size_; }
  [[nodiscard]] Tensor W_ih() const { return parameter("W_ih"); }  // NOLINT(readability-identifier-naming)
  [[nodiscard]] Tensor W_hh() const { return parameter("W_hh"); }  // NOLINT(readability-identifier-naming)
  [[nodiscard]] Tensor bias_ih() const { return optional_parameter("bias_ih"); }
  [[nodiscard]] Tensor bias_hh() const { return optional_parameter("bias_hh"); }

 private:
  std::int64_t input_size_;
  std::int64_t hidden_size_;
};

// A stack of num_layers RNNCells ("rnn_cells.0", ...), layer l > 0 reading layer l - 1's outputs.
// (x (seq_len, batch, input_size), h0 (num_layers, batch, hidden_size) or undefined) ->
// (output (seq_len, batch, hidden_size) of the last layer, h_n (num_layers, batch, hidden_size)).
class RNN final : public Module {
 public:
  RNN(std::int64_t input_size, std::int64_t hidden_size, std::int64_t num_layers = 1, bool bias = true,
      const std::string& nonlinearity = "tanh", Device device = default_device(), DType dtype = kDefaultFloat);
  using Module::forward;
  std::pair<Tensor, Tensor> forward(const Tensor& x, const Tensor& h0);
  std::pair<Tensor, Tensor> operator()(const Tensor& x, const Tensor& h0 = Tensor()) { return forward(x, h0); }
  [[nodiscard]] std::string name() const override { return "RNN"; }
  [[nodiscard]] std::int64_t input_size() const { return input_size_; }
  [[nodiscard]] std::int64_t hidden_size() const { return hidden_size_; }
  [[nodiscard]] std::int64_t num_layers() const { return static_cast<std::int64_t>(cells_.size()); }
  [[nodiscard]] const std::shared_ptr<RNNCell>& cell(std::int64_t layer) const;

 private:
  std::int64_t input_size_;
  std::int64_t hidden_size_;
  std::vector<std::shared_ptr<RNNCell>> cells_;
};

// A stack of num_layers LSTMCells ("lstm_cells.0", ...). (x, (h0, c0)) -> (output, (h_n, c_n)), shapes as
// for RNN; h0 and c0 may each be undefined (zeros).
class LSTM final : public Module {
 public:
  LSTM(std::int64_t input_size, std::int64_t hidden_size, std::int64_t num_layers = 1, bool bias = true,
       Device device = default_device(), DType dtype = kDefaultFloat);
  using Module::forward;
  std::pair<Tensor, std::pair<Tensor, Tensor>> forward(const Tensor& x, const std::pair<Tensor, Tensor>& state);
  std::pair<Tensor, std::pair<Tensor, Tensor>> operator()(const Tensor& x,
                                                          const std::pair<Tensor, Tensor>& state = {}) {
    return forward(x, state);
  }
  [[nodiscard]] std::string name() const override { return "LSTM"; }
  [[nodiscard]] std::int64_t input_size() const { return input_size_; }
  [[nodiscard]] std::int64_t hidden_size() const { return hidden_size_; }
  [[nodiscard]] std::int64_t num_layers() const { return static_cast<std::int64_t>(cells_.size()); }
  [[nodiscard]] const std::shared_ptr<LSTMCell>& cell(std::int64_t layer) const;

 private:
  std::int64_t input_size_;
  std::int64_t hidden_size_;
  std::vector<std::shared_ptr<LSTMCell>> cells_;
};

// ---- attention and transformers (src/nn/transformer.cpp) ------------------------------------------

class KVCache;

// How Transformer::generate picks each next token from the logits of the last position: greedily (the
// largest logit, the first on ties) when temperature is 0, else by sampling softmax(logits / temperature)
// restricted to the top_k largest (0: no limit) and then to the smallest set of most probable tokens whose
// probabilities sum to at least top_p (1: no limit). `seed` fixes the sampling: the same seed, prompt and
// model give the same tokens.
struct GenerationOptions {
  double temperature = 1.0;
  std::int64_t top_k = 0;
  double top_p = 1.0;
  std::uint64_t seed = 0;
  bool use_cache = true;
};

// Multi-head attention over (batch, seq, embed_dim): q/k/v projections ("q_projection", "k_projection",
// "v_projection": Linear(embed_dim, embed_dim, bias)), split into num_heads heads of embed_dim / num_heads,
// softmax(q k^T / sqrt(d) [+ causal mask]) v per head (ops::scaled_dot_product_attention), with dropout on
// the attention probabilities in training, heads joined and projected by "out_projection". Needle's
// AttentionLayer projects without bias, hence bias = false by default.
class MultiHeadAttention final : public Module {
 public:
  MultiHeadAttention(std::int64_t embed_dim, std::int64_t num_heads, bool causal = false, double dropout = 0.0,
                     bool bias = false, Device device = default_device(), DType dtype = kDefaultFloat);
  // Self-attention: forward(x, x, x).
  Tensor forward(const Tensor& x) override { return forward(x, x, x); }
  // q (batch, L, embed_dim), k and v (batch, S, embed_dim) -> (batch, L, embed_dim).
  Tensor forward(const Tensor& q, const Tensor& k, const Tensor& v);
  using Module::operator();
  Tensor operator()(const Tensor& q, const Tensor& k, const Tensor& v) { return forward(q, k, v); }
  [[nodiscard]] std::string name() const override { return "MultiHeadAttention"; }
  [[nodiscard]] std::int64_t embed_dim() const { return embed_dim_; }
  [[nodiscard]] std::int64_t num_heads() const { return num_heads_; }
  [[nodiscard]] bool causal() const { return causal_; }
  [[nodiscard]] double dropout() const { return dropout_; }
  // The projections while they are Linear layers (nullptr once replaced, e.g. by quantize_dynamic's
  // QuantizedLinear: forward calls whatever module is registered under the name).
  [[nodiscard]] std::shared_ptr<Linear> q_projection() const;
  [[nodiscard]] std::shared_ptr<Linear> k_projection() const;
  [[nodiscard]] std::shared_ptr<Linear> v_projection() const;
  [[nodiscard]] std::shared_ptr<Linear> out_projection() const;

  // Causal self-attention of the n new positions x (batch, n, embed_dim) that follow the `start` positions
  // already in `keys` and `values` (batch, num_heads, capacity, head_dim): their keys and values are written
  // at [start, start + n), and each new position i attends to the positions <= start + i. Inference only
  // (no graph is recorded); dropout is not applied. Needs a causal layer and start + n <= capacity.
  Tensor forward_cached(const Tensor& x, const NDArray& keys, const NDArray& values, std::int64_t start);

 private:
  std::int64_t embed_dim_;
  std::int64_t num_heads_;
  bool causal_;
  double dropout_;
};

// Pre-LayerNorm transformer block on (batch, seq, dim): x + dropout(attn(ln1(x))), then
// x + dropout(mlp(ln2(x))) with mlp = Linear(dim, hidden) -> GELU -> Dropout -> Linear(hidden, dim).
// Children: "ln1", "attn", "ln2", "mlp" (a Sequential), "dropout".
class TransformerLayer final : public Module {
 public:
  TransformerLayer(std::int64_t dim, std::int64_t num_heads, std::int64_t hidden_size, double dropout = 0.0,
                   bool causal = true, Device device = default_device(), DType dtype = kDefaultFloat);
  Tensor forward(const Tensor& x) override;
  // The block over n new positions with the attention's keys and values cached
  // (MultiHeadAttention::forward_cached).
  Tensor forward_cached(const Tensor& x, const NDArray& keys, const NDArray& values, std::int64_t start);
  [[nodiscard]] std::string name() const override { return "TransformerLayer"; }
  [[nodiscard]] const std::shared_ptr<MultiHeadAttention>& attn() const { return attn_; }

 private:
  std::int64_t dim_;
  std::shared_ptr<MultiHeadAttention> attn_;
};

// Decoder-only transformer language model: token ids (batch, seq) -> logits (batch, seq, vocab_size).
// Children: "token_embedding" (vocab_size, dim), "positional_embedding" (max_seq_len, dim), "layers" (a
// Sequential of num_layers TransformerLayers), "norm" (final LayerNorm), "head" (Linear(dim, vocab_size)).
class Transformer final : public Module {
 public:
  Transformer(std::int64_t vocab_size, std::int64_t dim, std::int64_t num_layers, std::int64_t num_heads,
              std::int64_t hidden_size, std::int64_t max_seq_len = 2048, double dropout = 0.0, bool causal = true,
              Device device = default_device(), DType dtype = kDefaultFloat);
  Tensor forward(const Tensor& tokens) override;
  // Logits (batch, n, vocab_size) of n new tokens (batch, n) that continue the cache's sequences: their
  // positions are cache.length() + [0, n), every layer attends to the cached keys and values and appends
  // the new ones, and the cache's length grows by n. Inference only (no graph is recorded). The prompt in
  // one call (prefill), then one token per call (decode), gives the logits of forward() on the whole
  // sequence.
  Tensor forward(const Tensor& tokens, KVCache& cache);
  using Module::operator();
  Tensor operator()(const Tensor& tokens, KVCache& cache) { return forward(tokens, cache); }
  // prompt (batch, T) of int64 token ids followed by max_new_tokens sampled ones: (batch, T +
  // max_new_tokens). Runs in evaluation mode (the module's mode is restored afterwards). With use_cache
  // (the default) the prompt is run once and each new token in one decode step against `cache` (reset and
  // reused when given, else allocated for this call); without it, every step runs forward() on the whole
  // sequence so far: the same tokens, slower.
  NDArray generate(const NDArray& prompt, std::int64_t max_new_tokens, const GenerationOptions& options = {},
                   KVCache* cache = nullptr);
  [[nodiscard]] std::string name() const override { return "Transformer"; }
  [[nodiscard]] std::int64_t vocab_size() const { return vocab_size_; }
  [[nodiscard]] std::int64_t max_seq_len() const { return max_seq_len_; }
  [[nodiscard]] std::int64_t dim() const { return dim_; }
  [[nodiscard]] std::int64_t num_layers() const { return static_cast<std::int64_t>(blocks_.size()); }
  [[nodiscard]] std::int64_t num_heads() const { return num_heads_; }
  [[nodiscard]] bool causal() const { return causal_; }

 private:
  std::int64_t vocab_size_;
  std::int64_t max_seq_len_;
  std::int64_t dim_;
  std::int64_t num_heads_;
  bool causal_;
  std::vector<std::shared_ptr<TransformerLayer>> blocks_;  // the children of "layers", in order
};

// The keys and values that a Transformer's attention layers computed for the positions seen so far, per
// layer an array (batch, num_heads, capacity, head_dim) allocated once, on the model's device and in its
// dtype, so that each decode step appends one position instead of recomputing the sequence. Positions
// [0, length()) are filled. One cache serves one model (its shape is checked at each use) and may be
// reused across generate() calls (reset() empties it without freeing).
class KVCache {
 public:
  // capacity 0 means the model's max_seq_len; it may not exceed it (the positional embedding ends there).
  KVCache(const Transformer& model, std::int64_t batch, std::int64_t capacity = 0);
  [[nodiscard]] std::int64_t batch() const { return batch_; }
  [[nodiscard]] std::int64_t capacity() const { return capacity_; }
  [[nodiscard]] std::int64_t length() const { return length_; }
  [[nodiscard]] std::int64_t num_layers() const { return static_cast<std::int64_t>(keys_.size()); }
  [[nodiscard]] const NDArray& keys(std::int64_t layer) const;
  [[nodiscard]] const NDArray& values(std::int64_t layer) const;
  void reset() { length_ = 0; }

 private:
  friend class Transformer;
  std::int64_t batch_;
  std::int64_t capacity_;
  std::int64_t length_ = 0;
  std::vector<NDArray> keys_;
  std::vector<NDArray> values_;
};

}  // namespace needle::nn
