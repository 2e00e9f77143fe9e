// Attention and transformers: MultiHeadAttention against a per-head host computation (self and cross
// attention, with and without the causal mask and biases), the causal property, attention dropout,
// TransformerLayer and Transformer against compositions of their verified parts, gradients of every
// parameter and of the inputs by finite differences, and errors.
#include <gtest/gtest.h>
#include <needle/needle.h>
#include <needle/nn/layers.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "gradcheck.h"
#include "nn_test_util.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_all_near;
using testing::expect_error;
using testing::expect_gradients_match;
using testing::expect_parameter_gradients_match;
using testing::host;
using testing::host_matmul;
using testing::random_array;
using V = std::vector<Tensor>;
using Vec = std::vector<double>;
constexpr DType kF64 = DType::Float64;

// rows x in @ Linear's weight (+ bias), on the host.
Vec host_linear(const nn::Linear& linear, const Vec& x, std::size_t rows) {
  const auto in = static_cast<std::size_t>(linear.in_features());
  const auto out = static_cast<std::size_t>(linear.out_features());
  Vec y = host_matmul(x, host(linear.weight()), rows, in, out);
  if (linear.bias().defined()) {
    const Vec b = host(linear.bias());
    for (std::size_t i = 0; i < y.size(); ++i) y[i] += b[i % out];
  }
  return y;
}

// Multi-head attention of q (batch, L, D) over k, v (batch, S, D), head by head with explicit loops.
Vec host_mha(const nn::MultiHeadAttention& mha, const Vec& q, const Vec& k, const Vec& v, std::size_t batch,
             std::size_t length, std::size_t source) {
  const auto dim = static_cast<std::size_t>(mha.embed_dim());
  const auto heads = static_cast<std::size_t>(mha.num_heads());
  const std::size_t hd = dim / heads;
  const Vec qp = host_linear(*mha.q_projection(), q, batch * length);
  const Vec kp = host_linear(*mha.k_projection(), k, batch * source);
  const Vec vp = host_linear(*mha.v_projection(), v, batch * source);
  Vec joined(batch * length * dim, 0.0);
  for (std::size_t b = 0; b < batch; ++b) {
    for (std::size_t h = 0; h < heads; ++h) {
      for (std::size_t i = 0; i < length; ++i) {
        Vec scores(source, -std::numeric_limits<double>::infinity());
        double top = -std::numeric_limits<double>::infinity();
        for (std::size_t j = 0; j < source; ++j) {
          if (mha.causal() && j > i) continue;
          double s = 0.0;
          for (std::size_t e = 0; e < hd; ++e)
            s += qp[(b * length + i) * dim + h * hd + e] * kp[(b * source + j) * dim + h * hd + e];
          scores[j] = s / std::sqrt(static_cast<double>(hd));
          top = std::max(top, scores[j]);
        }
        double total = 0.0;
        for (double& s : scores) total += (s = std::exp(s - top));
        for (std::size_t j = 0; j < source; ++j) {
          for (std::size_t e = 0; e < hd; ++e) {
            joined[(b * length + i) * dim + h * hd + e] += scores[j] / total * vp[(b * source + j) * dim + h * hd + e];
          }
        }
      }
    }
  }
  return host_linear(*mha.out_projection(), joined, batch * length);
}

TEST(NnAttention, MultiHeadAttentionMatchesPerHeadLoops) {
  for (const Device d : testing::test_devices()) {
    for (bool causal : {false, true}) {
      for (bool bias : {false, true}) {
        SCOPED_TRACE(str(d.name(), causal ? " causal" : " full", bias ? " with bias" : ""));
        nn::MultiHeadAttention mha(4, 2, causal, 0.0, bias, d, kF64);
        const NDArray x = random_array({2, 3, 4}, d, 1);
        expect_all_near(host(mha(Tensor(x))), host_mha(mha, host(x), host(x), host(x), 2, 3, 3));
        // Cross attention: 2 queries over 3 keys.
        const NDArray q = random_array({2, 2, 4}, d, 2);
        const NDArray kv = random_array({2, 3, 4}, d, 3);
        const NDArray v = random_array({2, 3, 4}, d, 4);
        expect_all_near(host(mha(Tensor(q), Tensor(kv), Tensor(v))),
                        host_mha(mha, host(q), host(kv), host(v), 2, 2, 3));
      }
    }
  }
}

TEST(NnAttention, CausalOutputsIgnoreLaterPositions) {
  nn::MultiHeadAttention causal(4, 2, true, 0.0, true, cpu_device(), kF64);
  nn::MultiHeadAttention full(4, 2, false, 0.0, true, cpu_device(), kF64);
  full.load_state_dict(causal.state_dict());
  const NDArray x = random_array({1, 4, 4}, cpu_device(), 5);
  NDArray changed = x.copy();
  changed.assign({IndexItem::range(), IndexItem::at(3)}, random_array({1, 4}, cpu_device(), 6));
  const Vec before = host(causal(Tensor(x)));
  const Vec after = host(causal(Tensor(changed)));
  for (std::size_t i = 0; i < 12; ++i) EXPECT_DOUBLE_EQ(before[i], after[i]) << "position " << i / 4;
  EXPECT_NE(Vec(before.begin() + 12, before.end()), Vec(after.begin() + 12, after.end()));
  const Vec full_before = host(full(Tensor(x)));
  const Vec full_after = host(full(Tensor(changed)));
  EXPECT_NE(Vec(full_before.begin(), full_before.begin() + 4), Vec(full_after.begin(), full_after.begin() + 4));
}

TEST(NnAttention, GradientsOfParametersAndInputs) {
  for (bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "full");
    nn::MultiHeadAttention mha(4, 2, causal, 0.0, true, cpu_device(), kF64);
    const NDArray x = random_array({2, 3, 4}, cpu_device(), 7);
    expect_gradients_match([&](const V& in) { return mha(in[0]); }, {x});
    expect_gradients_match([&](const V& in) { return mha(in[0], in[1], in[2]); },
                           {random_array({1, 2, 4}, cpu_device(), 8), x.index({IndexItem::at(0)}).unsqueeze(0).copy(),
                            random_array({1, 3, 4}, cpu_device(), 9)});
    expect_parameter_gradients_match(mha, [&] { return mha(Tensor(x)); });
  }
}

TEST(NnAttention, AttentionDropoutActsOnlyInTraining) {
  manual_seed(3);
  nn::MultiHeadAttention mha(4, 2, true, 0.5, false, cpu_device(), kF64);
  const Tensor x(random_array({2, 5, 4}, cpu_device(), 10));
  const Vec expected = host_mha(mha, host(x), host(x), host(x), 2, 5, 5);
  EXPECT_NE(host(mha(x)), expected);  // probabilities dropped and rescaled
  mha.eval();
  expect_all_near(host(mha(x)), expected);
  // The training path's own attention (mask, softmax, dropout, product) agrees when it keeps everything.
  nn::MultiHeadAttention nearly_no_drop(4, 2, true, 1e-15, false, cpu_device(), kF64);
  nearly_no_drop.load_state_dict(mha.state_dict());
  expect_all_near(host(nearly_no_drop(x)), expected);
}

TEST(NnAttention, MultiHeadAttentionErrors) {
  expect_error<ValueError>([] { nn::MultiHeadAttention bad(6, 4); },
                           "MultiHeadAttention: embed_dim 6 is not divisible by num_heads 4");
  nn::MultiHeadAttention mha(4, 2);
  expect_error<ValueError>(
      [&] {
        (void)mha(Tensor(NDArray::zeros({2, 3, 5})));
      },
      "MultiHeadAttention: expected q (batch, L, 4), k and v (batch, S, 4), got shapes (2, 3, 5)");
  expect_error<RuntimeError>(
      [&] {
        (void)mha(Tensor(NDArray::zeros({2, 3, 4}, kDefaultFloat, ref_device())));
      },
      "MultiHeadAttention: input is on device ref but the module's parameters are on device cpu");
}

TEST(NnTransformer, TransformerLayerIsPreNormResidualAttentionAndMlp) {
  nn::TransformerLayer layer(4, 2, 8, 0.0, true, cpu_device(), kF64);
  const Tensor x(random_array({2, 3, 4}, cpu_device(), 11));
  nn::Module& ln1 = *layer.child("ln1");
  nn::Module& ln2 = *layer.child("ln2");
  nn::Module& mlp = *layer.child("mlp");
  const Tensor h = x + (*layer.attn())(ln1(x));
  expect_all_near(host(layer(x)), host(h + mlp(ln2(h))));
  const auto mlp_list = std::dynamic_pointer_cast<nn::Sequential>(layer.child("mlp"));
  ASSERT_NE(mlp_list, nullptr);
  EXPECT_EQ(mlp_list->at(1)->name(), "GELU");
  expect_gradients_match([&](const V& in) { return layer(in[0]); }, {x.value()});
  expect_parameter_gradients_match(layer, [&] { return layer(x); });
  expect_error<ValueError>(
      [&] {
        (void)layer(Tensor(random_array({2, 3, 5}, cpu_device(), 1)));
      },
      "TransformerLayer: expected input with last dimension 4, got shape (2, 3, 5)");
}

TEST(NnTransformer, DecoderOnlyTransformerMapsTokensToCausalLogits) {
  nn::Transformer model(7, 4, 2, 2, 8, 5, 0.0, true, cpu_device(), kF64);
  const std::vector<std::int64_t> ids = {1, 6, 0, 3, 2, 2, 5, 4};
  const Tensor tokens(NDArray::from_vector(ids, {2, 4}));
  const Tensor logits = model(tokens);
  EXPECT_EQ(logits.shape(), (Shape{2, 4, 7}));

  // The same computation assembled from the model's verified parts.
  const Tensor positions(NDArray::arange(4));
  const Tensor x = (*model.child("token_embedding"))(tokens) + (*model.child("positional_embedding"))(positions);
  const Tensor expected = (*model.child("head"))((*model.child("norm"))((*model.child("layers"))(x)));
  expect_all_near(host(logits), host(expected));

  // Causal: changing the last token leaves the logits of earlier positions unchanged.
  std::vector<std::int64_t> changed = ids;
  changed[3] = 5;
  const Vec a = host(logits);
  const Vec b = host(model(Tensor(NDArray::from_vector(changed, {2, 4}))));
  for (std::size_t i = 0; i < 3 * 7; ++i) EXPECT_DOUBLE_EQ(a[i], b[i]);
  EXPECT_NE(Vec(a.begin() + 21, a.begin() + 28), Vec(b.begin() + 21, b.begin() + 28));

  nn::Transformer small(5, 4, 1, 2, 6, 3, 0.0, true, cpu_device(), kF64);
  const Tensor short_tokens(NDArray::from_vector(std::vector<std::int64_t>{4, 0, 2}, {1, 3}));
  expect_parameter_gradients_match(small, [&] { return small(short_tokens); });

  expect_error<ValueError>(
      [&] {
        (void)model(Tensor(NDArray::zeros({1, 6}, DType::Int64)));
      },
      "Transformer: sequence length 6 exceeds max_seq_len 5 (input shape (1, 6))");
  expect_error<RuntimeError>(
      [&] {
        (void)model(Tensor(NDArray::zeros({1, 2}, DType::Int64, ref_device())));
      },
      "Transformer: input is on device ref but the module's parameters are on device cpu");
}

// ---- key/value cache and generation ------------------------------------------------------------------

// Random token ids (batch, length) below vocab.
NDArray random_tokens(std::int64_t batch, std::int64_t length, std::int64_t vocab, std::uint64_t seed) {
  std::vector<std::int64_t> ids(static_cast<std::size_t>(batch * length));
  std::uint64_t state = seed;
  for (auto& id : ids) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    id = static_cast<std::int64_t>((state >> 33) % static_cast<std::uint64_t>(vocab));
  }
  return NDArray::from_vector(ids, {batch, length});
}

// Columns [from, to) of a (batch, length) id array.
Tensor columns(const NDArray& ids, std::int64_t from, std::int64_t to, Device device) {
  return Tensor(ids.index({IndexItem::range(), IndexItem::range(from, to)}).compact().to(device));
}

class NnTransformerCache : public ::testing::TestWithParam<Device> {};

// Prefill, multi-token chunks after cached positions and single-token decode steps give the logits of the
// plain forward on the whole sequence, position by position, for float64 and float32 models.
TEST_P(NnTransformerCache, CachedForwardMatchesTheFullForwardForEveryChunking) {
  const Device device = GetParam();
  for (const DType dtype : {DType::Float64, DType::Float32}) {
    const double tolerance = dtype == DType::Float64 ? 1e-10 : 2e-5;
    nn::Transformer model(11, 16, 2, 4, 24, 32, 0.0, true, device, dtype);
    model.eval();
    const NDArray ids = random_tokens(2, 13, 11, 7);
    const Vec full = host(model(columns(ids, 0, 13, device)));  // (2, 13, 11)
    // Chunkings of the 13 positions: one prefill then decode steps, uneven chunks, all at once.
    for (const std::vector<std::int64_t>& chunks :
         std::vector<std::vector<std::int64_t>>{{5, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 3, 4, 1, 4}, {13}}) {
      nn::KVCache cache(model, 2, 20);
      std::int64_t start = 0;
      for (const std::int64_t n : chunks) {
        const Vec logits = host(model(columns(ids, start, start + n, device), cache));
        ASSERT_EQ(cache.length(), start + n);
        for (std::int64_t b = 0; b < 2; ++b) {
          for (std::int64_t t = 0; t < n; ++t) {
            for (std::int64_t c = 0; c < 11; ++c) {
              const double expected = full[static_cast<std::size_t>((b * 13 + start + t) * 11 + c)];
              const double actual = logits[static_cast<std::size_t>((b * n + t) * 11 + c)];
              ASSERT_NEAR(actual, expected, tolerance * (1.0 + std::abs(expected)))
                  << dtype_name(dtype) << " chunk at " << start << " of " << n << " sequence " << b;
            }
          }
        }
        start += n;
      }
    }
  }
}

// Greedy generation with and without the cache gives the same tokens, continuing the prompt; sampling is
// reproducible from its seed; top_k = 1 is greedy; a given cache is reset and reused.
TEST_P(NnTransformerCache, GenerateIsTheSameWithAndWithoutTheCacheAndReproducible) {
  const Device device = GetParam();
  nn::Transformer model(13, 16, 2, 2, 32, 40, 0.1, true, device, kF64);
  const NDArray prompt = random_tokens(3, 4, 13, 3).to(device);
  const auto generate = [&](const nn::GenerationOptions& options, nn::KVCache* cache = nullptr) {
    return model.generate(prompt, 12, options, cache).to_vector<std::int64_t>();
  };
  const std::vector<std::int64_t> cached = generate({.temperature = 0.0});
  const std::vector<std::int64_t> uncached = generate({.temperature = 0.0, .use_cache = false});
  EXPECT_EQ(cached, uncached);
  ASSERT_EQ(cached.size(), 3U * 16U);
  const std::vector<std::int64_t> prompt_ids = prompt.to_vector<std::int64_t>();
  for (std::size_t b = 0; b < 3; ++b) {
    for (std::size_t t = 0; t < 4; ++t) EXPECT_EQ(cached[b * 16 + t], prompt_ids[b * 4 + t]);
  }
  EXPECT_TRUE(model.training()) << "generate restores the training mode";
  EXPECT_EQ(generate({.temperature = 0.7, .top_k = 1}), cached);

  const nn::GenerationOptions sampling{.temperature = 1.5, .top_k = 8, .top_p = 0.9, .seed = 5};
  const std::vector<std::int64_t> sampled = generate(sampling);
  EXPECT_EQ(generate(sampling), sampled);
  nn::KVCache reused(model, 3, 20);
  EXPECT_EQ(generate(sampling, &reused), sampled);
  EXPECT_EQ(reused.length(), 15);  // prompt and 11 decode steps (the last token is not run)
  nn::GenerationOptions uncached_sampling = sampling;
  uncached_sampling.use_cache = false;
  EXPECT_EQ(generate(uncached_sampling), sampled);
  nn::GenerationOptions other_seed = sampling;
  other_seed.seed = 6;
  EXPECT_NE(generate(other_seed), sampled);
  for (const std::int64_t id : sampled) EXPECT_TRUE(id >= 0 && id < 13);
}

// Sampling follows the distribution it is given: with top_p small enough only the most likely token of the
// model's first step survives, and temperature sampling over many seeds picks more than one token.
TEST_P(NnTransformerCache, SamplingRespectsTopPAndVaries) {
  const Device device = GetParam();
  nn::Transformer model(7, 8, 1, 2, 16, 10, 0.0, true, device, kF64);
  const NDArray prompt = NDArray::from_vector(std::vector<std::int64_t>{1, 2}, {1, 2}, device);
  const std::int64_t greedy = model.generate(prompt, 1, {.temperature = 0.0}).to_vector<std::int64_t>()[2];
  std::vector<int> seen(7, 0);
  for (std::uint64_t seed = 0; seed < 40; ++seed) {
    EXPECT_EQ(model.generate(prompt, 1, {.top_p = 1e-9, .seed = seed}).to_vector<std::int64_t>()[2], greedy);
    ++seen[static_cast<std::size_t>(
        model.generate(prompt, 1, {.temperature = 5.0, .seed = seed}).to_vector<std::int64_t>()[2])];
  }
  EXPECT_GE(7 - std::count(seen.begin(), seen.end(), 0), 3);
}

TEST_P(NnTransformerCache, ErrorsNameTheCallAndTheLimits) {
  const Device device = GetParam();
  nn::Transformer model(5, 8, 1, 2, 16, 6, 0.0, true, device, kF64);
  nn::KVCache cache(model, 1, 4);
  (void)model(Tensor(NDArray::zeros({1, 3}, DType::Int64, device)), cache);
  expect_error<ValueError>(
      [&] {
        (void)model(Tensor(NDArray::zeros({1, 2}, DType::Int64, device)), cache);
      },
      "Transformer: 2 new tokens after 3 cached ones exceed the cache's capacity 4");
  expect_error<ValueError>(
      [&] {
        (void)model(Tensor(NDArray::zeros({2, 1}, DType::Int64, device)), cache);
      },
      "the cache holds 1 sequences");
  expect_error<ValueError>([&] { nn::KVCache too_long(model, 1, 7); }, "KVCache: capacity must lie in [1, 6]");
  nn::Transformer bidirectional(5, 8, 1, 2, 16, 6, 0.0, false, device, kF64);
  expect_error<ValueError>([&] { nn::KVCache cache2(bidirectional, 1); }, "KVCache: the model is not causal");
  const NDArray prompt = NDArray::zeros({1, 2}, DType::Int64, device);
  expect_error<ValueError>([&] { (void)model.generate(prompt, 5); },
                           "Transformer.generate: prompt length 2 plus 5 new tokens exceeds max_seq_len 6");
  expect_error<ValueError>([&] { (void)model.generate(prompt, 1, {.top_p = 0.0}); }, "top_p must lie in (0, 1]");
  expect_error<ValueError>([&] { (void)model.generate(prompt, 1, {.temperature = -1.0}); }, "temperature");
  expect_error<TypeError>(
      [&] {
        (void)model.generate(NDArray::zeros({1, 2}, DType::Float32, device), 1);
      },
      "prompt ids must be integers");
  expect_error<ValueError>([&] { (void)model.generate(NDArray::zeros({2}, DType::Int64, device), 1); },
                           "expected prompt ids of shape (batch, seq)");
}

INSTANTIATE_TEST_SUITE_P(Devices, NnTransformerCache, ::testing::Values(cpu_device(), ref_device()),
                         [](const auto& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
