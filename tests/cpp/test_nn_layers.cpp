// Basic and normalization layers against plain loops over std::vector: Linear, Flatten, activations,
// Sequential, Residual, the losses, BatchNorm1d/2d (training, running statistics, eval), LayerNorm1d,
// Dropout and Embedding; gradients of parameters and inputs by finite differences in float64; shape,
// index and device errors that name the layer. Both devices.
#include <gtest/gtest.h>
#include <needle/needle.h>
#include <needle/nn/layers.h>

#include <cmath>
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
constexpr DType kF64 = DType::Float64;

class NnLayersTest : public ::testing::TestWithParam<Device> {};

TEST_P(NnLayersTest, LinearIsXTimesWeightPlusBias) {
  const Device d = GetParam();
  nn::Linear linear(4, 3, true, d, kF64);
  const NDArray x = random_array({2, 5, 4}, d, 1);
  const Tensor y = linear(Tensor(x));
  EXPECT_EQ(y.shape(), (Shape{2, 5, 3}));
  std::vector<double> expected = host_matmul(host(x), host(linear.weight()), 10, 4, 3);
  const std::vector<double> b = host(linear.bias());
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += b[i % 3];
  expect_all_near(host(y), expected);

  nn::Linear no_bias(4, 3, false, d, kF64);
  EXPECT_FALSE(no_bias.bias().defined());
  EXPECT_EQ(no_bias.parameters().size(), 1U);
  expect_all_near(host(no_bias(Tensor(x.reshape({10, 4})))), host_matmul(host(x), host(no_bias.weight()), 10, 4, 3));

  expect_gradients_match([&](const V& in) { return linear(in[0]); }, {random_array({3, 4}, d, 2)});
  const Tensor input(random_array({3, 4}, d, 3));
  expect_parameter_gradients_match(linear, [&] { return linear(input); });
  expect_error<ValueError>(
      [&] {
        (void)linear(Tensor(random_array({2, 3}, d, 4)));
      },
      "Linear: expected input with last dimension 4, got shape (2, 3)");
}

TEST_P(NnLayersTest, FlattenAndActivations) {
  const Device d = GetParam();
  const NDArray x = random_array({2, 3, 4}, d, 5, -2.0, 2.0);
  nn::Flatten flatten;
  const Tensor flat = flatten(Tensor(x));
  EXPECT_EQ(flat.shape(), (Shape{2, 12}));
  EXPECT_EQ(host(flat), host(x));
  expect_error<ValueError>([&] { (void)flatten(Tensor(NDArray::zeros({}, kF64, d))); },
                           "Flatten: expected input with a batch dimension, got shape ()");

  const std::vector<double> xs = host(x);
  const auto apply = [&](nn::Module& m, double (*f)(double)) {
    std::vector<double> expected;
    expected.reserve(xs.size());
    for (double v : xs) expected.push_back(f(v));
    expect_all_near(host(m(Tensor(x))), expected, 1e-12);
    expect_gradients_match([&](const V& in) { return m(in[0]); }, {x});
  };
  nn::ReLU relu;
  nn::Tanh tanh_layer;
  nn::Sigmoid sigmoid;
  nn::GELU gelu;
  nn::Identity identity;
  apply(relu, [](double v) { return v > 0 ? v : 0.0; });
  apply(tanh_layer, [](double v) { return std::tanh(v); });
  apply(sigmoid, [](double v) { return 1.0 / (1.0 + std::exp(-v)); });
  apply(gelu, [](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); });
  apply(identity, [](double v) { return v; });
}

TEST_P(NnLayersTest, SequentialAndResidualCompose) {
  const Device d = GetParam();
  const auto first = std::make_shared<nn::Linear>(3, 3, true, d, kF64);
  const auto second = std::make_shared<nn::Linear>(3, 3, true, d, kF64);
  nn::Sequential seq;
  seq.append(first);
  seq.add(std::make_shared<nn::Tanh>());
  seq.append(second);
  EXPECT_EQ(seq.size(), 3U);
  EXPECT_EQ(seq[1]->name(), "Tanh");
  expect_error<IndexError>([&] { (void)seq.at(3); }, "Sequential: index 3 is out of range for 3 modules");

  const Tensor x(random_array({2, 3}, d, 6));
  expect_all_near(host(seq(x)), host((*second)(ops::tanh((*first)(x)))));
  nn::Sequential empty;
  EXPECT_TRUE(empty(x).same(x));

  nn::Residual residual(std::make_shared<nn::Sequential>(seq.children()));
  expect_all_near(host(residual(x)), host(ops::add(seq(x), x)));
  expect_parameter_gradients_match(residual, [&] { return residual(x); });
  nn::Residual bad(std::make_shared<nn::Linear>(3, 2, true, d, kF64));
  expect_error<ValueError>([&] { (void)bad(x); }, "Residual: fn (Linear) maps shape (2, 3) to (2, 2)");
}

TEST_P(NnLayersTest, SoftmaxLossAndMseLossMatchLoops) {
  const Device d = GetParam();
  const NDArray logits = random_array({4, 3}, d, 7, -3.0, 3.0);
  const std::vector<std::int64_t> labels = {2, 0, 1, 2};
  const Tensor label_tensor(NDArray::from_vector(labels, {4}, d));
  nn::SoftmaxLoss loss;
  const std::vector<double> z = host(logits);
  double expected = 0.0;
  for (std::size_t i = 0; i < 4; ++i) {
    double sum = 0.0;
    for (std::size_t c = 0; c < 3; ++c) sum += std::exp(z[i * 3 + c]);
    expected += std::log(sum) - z[i * 3 + static_cast<std::size_t>(labels[i])];
  }
  expect_all_near(host(loss(Tensor(logits), label_tensor)), {expected / 4.0}, 1e-12);
  // Float labels (Needle's pipeline stores them as float32) are accepted; fractional ones are not.
  const Tensor float_labels(NDArray::from_vector(std::vector<float>{2, 0, 1, 2}, {4}, d));
  expect_all_near(host(nn::CrossEntropyLoss()(Tensor(logits), float_labels)), {expected / 4.0}, 1e-12);
  expect_error<TypeError>(
      [&] {
        (void)loss(Tensor(logits), Tensor(NDArray::from_vector(std::vector<float>{2, 0.5F, 1, 2}, {4}, d)));
      },
      "SoftmaxLoss: indices must be whole numbers, got 1 fractional values");
  expect_error<ValueError>([&] { (void)loss(Tensor(logits), Tensor(NDArray::zeros({3}, DType::Int64, d))); },
                           "SoftmaxLoss: expected logits (N, C) and labels (N,), got shapes (4, 3) and (3,)");
  expect_gradients_match([&](const V& in) { return loss(in[0], label_tensor); }, {logits});

  nn::MSELoss mse;
  const NDArray target = random_array({4, 3}, d, 8);
  const std::vector<double> t = host(target);
  double squares = 0.0;
  for (std::size_t i = 0; i < z.size(); ++i) squares += (z[i] - t[i]) * (z[i] - t[i]);
  expect_all_near(host(mse(Tensor(logits), Tensor(target))), {squares / 12.0}, 1e-12);
  expect_gradients_match([&](const V& in) { return mse(in[0], in[1]); }, {logits, target});
  expect_error<ValueError>([&] { (void)mse(Tensor(logits), Tensor(target.reshape({12}))); },
                           "MSELoss: expected prediction and target of the same shape, got (4, 3) and (12,)");
}

// Per-channel mean and biased variance of x viewed as (n, c, inner).
void channel_stats(const std::vector<double>& x, std::size_t n, std::size_t c, std::size_t inner,
                   std::vector<double>& mean, std::vector<double>& var) {
  mean.assign(c, 0.0);
  var.assign(c, 0.0);
  const auto count = static_cast<double>(n * inner);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t ch = 0; ch < c; ++ch) {
      for (std::size_t k = 0; k < inner; ++k) mean[ch] += x[(i * c + ch) * inner + k] / count;
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t ch = 0; ch < c; ++ch) {
      for (std::size_t k = 0; k < inner; ++k) {
        const double dx = x[(i * c + ch) * inner + k] - mean[ch];
        var[ch] += dx * dx / count;
      }
    }
  }
}

std::vector<double> normalize(const std::vector<double>& x, std::size_t n, std::size_t c, std::size_t inner,
                              const std::vector<double>& mean, const std::vector<double>& var,
                              const std::vector<double>& w, const std::vector<double>& b, double eps) {
  std::vector<double> out(x.size());
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t ch = 0; ch < c; ++ch) {
      for (std::size_t k = 0; k < inner; ++k) {
        const std::size_t at = (i * c + ch) * inner + k;
        out[at] = (x[at] - mean[ch]) / std::sqrt(var[ch] + eps) * w[ch] + b[ch];
      }
    }
  }
  return out;
}

void check_batch_norm(nn::BatchNorm& bn, const Shape& shape, Device d) {
  const std::size_t n = static_cast<std::size_t>(shape[0]);
  const std::size_t c = static_cast<std::size_t>(shape[1]);
  const std::size_t inner = shape.size() == 4 ? static_cast<std::size_t>(shape[2] * shape[3]) : 1;
  // Non-trivial affine parameters so their use is visible.
  bn.weight().set_value(random_array({shape[1]}, d, 20, 0.5, 1.5));
  bn.bias().set_value(random_array({shape[1]}, d, 21));
  const std::vector<double> w = host(bn.weight());
  const std::vector<double> b = host(bn.bias());
  std::vector<double> running_mean(c, 0.0);
  std::vector<double> running_var(c, 1.0);
  for (std::uint64_t step = 0; step < 2; ++step) {
    const NDArray x = random_array(shape, d, 30 + step, -1.0, 3.0);
    std::vector<double> mean;
    std::vector<double> var;
    channel_stats(host(x), n, c, inner, mean, var);
    expect_all_near(host(bn(Tensor(x))), normalize(host(x), n, c, inner, mean, var, w, b, bn.eps()));
    for (std::size_t ch = 0; ch < c; ++ch) {
      // Needle: the biased batch variance enters the running average.
      running_mean[ch] = 0.9 * running_mean[ch] + 0.1 * mean[ch];
      running_var[ch] = 0.9 * running_var[ch] + 0.1 * var[ch];
    }
    expect_all_near(host(bn.running_mean()), running_mean, 1e-12);
    expect_all_near(host(bn.running_var()), running_var, 1e-12);
  }
  bn.eval();
  const NDArray x = random_array(shape, d, 40);
  expect_all_near(host(bn(Tensor(x))), normalize(host(x), n, c, inner, running_mean, running_var, w, b, bn.eps()));
  expect_all_near(host(bn.running_mean()), running_mean, 1e-12);  // eval leaves the statistics alone
  expect_gradients_match([&](const V& in) { return bn(in[0]); }, {x});
  bn.train();
  expect_gradients_match([&](const V& in) { return bn(in[0]); }, {x});
  const Tensor input(x);
  expect_parameter_gradients_match(bn, [&] { return bn(input); });
}

TEST_P(NnLayersTest, BatchNorm1dTrainsOnBatchStatisticsAndEvaluatesOnRunningOnes) {
  const Device d = GetParam();
  nn::BatchNorm1d bn(3, 1e-5, 0.1, d, kF64);
  check_batch_norm(bn, {5, 3}, d);
  expect_error<ValueError>(
      [&] {
        (void)bn(Tensor(random_array({5, 4}, d, 1)));
      },
      "BatchNorm1d: expected input with channels (dimension 1) 3, got shape (5, 4)");
  expect_error<ValueError>(
      [&] {
        (void)bn(Tensor(random_array({5, 3, 2, 2}, d, 1)));
      },
      "BatchNorm1d: expected input (N, C) with 2 dimensions, got shape (5, 3, 2, 2)");
}

TEST_P(NnLayersTest, BatchNorm2dNormalizesEachChannelOverBatchAndSpace) {
  const Device d = GetParam();
  nn::BatchNorm2d bn(2, 1e-5, 0.1, d, kF64);
  check_batch_norm(bn, {3, 2, 2, 3}, d);
  expect_error<ValueError>(
      [&] {
        (void)bn(Tensor(random_array({3, 2}, d, 1)));
      },
      "BatchNorm2d: expected input (N, C, H, W) with 4 dimensions, got shape (3, 2)");
}

TEST_P(NnLayersTest, LayerNormNormalizesTheLastAxis) {
  const Device d = GetParam();
  nn::LayerNorm layer_norm(4, 1e-5, d, kF64);
  layer_norm.weight().set_value(random_array({4}, d, 50, 0.5, 1.5));
  layer_norm.bias().set_value(random_array({4}, d, 51));
  const NDArray x = random_array({2, 3, 4}, d, 52, -2.0, 2.0);
  const std::vector<double> xs = host(x);
  const std::vector<double> w = host(layer_norm.weight());
  const std::vector<double> b = host(layer_norm.bias());
  std::vector<double> expected(xs.size());
  for (std::size_t row = 0; row < 6; ++row) {
    double mean = 0.0;
    for (std::size_t k = 0; k < 4; ++k) mean += xs[row * 4 + k] / 4.0;
    double var = 0.0;
    for (std::size_t k = 0; k < 4; ++k) var += (xs[row * 4 + k] - mean) * (xs[row * 4 + k] - mean) / 4.0;
    for (std::size_t k = 0; k < 4; ++k) {
      expected[row * 4 + k] = (xs[row * 4 + k] - mean) / std::sqrt(var + 1e-5) * w[k] + b[k];
    }
  }
  expect_all_near(host(layer_norm(Tensor(x))), expected);
  expect_gradients_match([&](const V& in) { return layer_norm(in[0]); }, {x});
  const Tensor input(x);
  expect_parameter_gradients_match(layer_norm, [&] { return layer_norm(input); });
  expect_error<ValueError>(
      [&] {
        (void)layer_norm(Tensor(random_array({2, 5}, d, 1)));
      },
      "LayerNorm1d: expected input with last dimension 4, got shape (2, 5)");
}

TEST_P(NnLayersTest, DropoutScalesKeptValuesInTrainingAndIsTheIdentityInEval) {
  const Device d = GetParam();
  nn::Dropout dropout(0.25);
  const NDArray x = random_array({50, 40}, d, 60, 1.0, 2.0);
  const std::vector<double> xs = host(x);
  const std::vector<double> ys = host(dropout(Tensor(x)));
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (ys[i] == 0.0) {
      ++dropped;
    } else {
      EXPECT_NEAR(ys[i], xs[i] / 0.75, 1e-12);
    }
  }
  EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(xs.size()), 0.25, 0.04);
  dropout.eval();
  const Tensor input(x);
  EXPECT_EQ(host(dropout(input)), xs);
  expect_error<ValueError>([] { nn::Dropout bad(1.0); }, "Dropout: p must lie in [0, 1), got 1");
}

TEST_P(NnLayersTest, EmbeddingPicksRowsAndAccumulatesTheirGradients) {
  const Device d = GetParam();
  nn::Embedding embedding(5, 3, d, kF64);
  const std::vector<std::int64_t> ids = {4, 0, 4, 2, 1, 4};  // (seq_len 3, batch 2), repeated ids
  const Tensor indices(NDArray::from_vector(ids, {3, 2}, d));
  const Tensor out = embedding(indices);
  EXPECT_EQ(out.shape(), (Shape{3, 2, 3}));
  const std::vector<double> w = host(embedding.weight());
  std::vector<double> expected;
  for (std::int64_t id : ids) {
    for (std::size_t k = 0; k < 3; ++k) expected.push_back(w[static_cast<std::size_t>(id) * 3 + k]);
  }
  EXPECT_EQ(host(out), expected);
  const Tensor float_ids(NDArray::from_vector(ids, {3, 2}, d).astype(DType::Float32));
  EXPECT_EQ(host(embedding(float_ids)), expected);
  expect_parameter_gradients_match(embedding, [&] { return embedding(indices); });
  expect_error<IndexError>([&] { (void)embedding(Tensor(NDArray::from_vector(std::vector<std::int64_t>{5}, {1}, d))); },
                           "embedding");
}

TEST(NnLayers, InputsOnAnotherDeviceAreReportedByTheLayer) {
  nn::BatchNorm1d bn(2, 1e-5, 0.1, ref_device());
  expect_error<RuntimeError>(
      [&] {
        (void)bn(Tensor(NDArray::zeros({3, 2})));
      },
      "BatchNorm1d: input is on device cpu but the module's parameters are on device ref");
  nn::Embedding embedding(3, 2, ref_device());
  expect_error<RuntimeError>([&] { (void)embedding(Tensor(NDArray::zeros({2}, DType::Int64))); },
                             "Embedding: input is on device cpu but the module's parameters are on device ref");
}

INSTANTIATE_TEST_SUITE_P(Devices, NnLayersTest, ::testing::ValuesIn(testing::test_devices()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
