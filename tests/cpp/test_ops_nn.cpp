// Neural-network functions: softmax family, losses, dropout, layer/batch norm and attention, against
// naive loops over std::vector, with gradients checked by finite differences, on both devices.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gradcheck.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_error;
using testing::expect_gradients_match;
using testing::expect_second_gradients_match;
using testing::random_array;
using testing::values_of;
using V = std::vector<Tensor>;

std::vector<double> values_of(const NDArray& a) { return a.astype(DType::Float64).to_vector<double>(); }

void expect_all_near(const std::vector<double>& actual, const std::vector<double>& expected, double tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tolerance * std::max(1.0, std::abs(expected[i]))) << "at element " << i;
  }
}

// Softmax (or log-softmax) of x viewed as (outer, n, inner) along the middle axis, shifting by the max.
std::vector<double> naive_softmax(const std::vector<double>& x, std::size_t outer, std::size_t n, std::size_t inner,
                                  bool log_space) {
  std::vector<double> out(x.size());
  for (std::size_t o = 0; o < outer; ++o) {
    for (std::size_t i = 0; i < inner; ++i) {
      const auto at = [&](std::size_t k) { return (o * n + k) * inner + i; };
      double top = -std::numeric_limits<double>::infinity();
      for (std::size_t k = 0; k < n; ++k) top = std::max(top, x[at(k)]);
      double total = 0.0;
      for (std::size_t k = 0; k < n; ++k) total += std::exp(x[at(k)] - top);
      for (std::size_t k = 0; k < n; ++k) {
        out[at(k)] = log_space ? x[at(k)] - top - std::log(total) : std::exp(x[at(k)] - top) / total;
      }
    }
  }
  return out;
}

class NnOpsTest : public ::testing::TestWithParam<Device> {
 protected:
  [[nodiscard]] Tensor make(const std::vector<double>& values, const Shape& shape, DType dtype = DType::Float64,
                            bool requires_grad = false) const {
    return Tensor(NDArray::from_vector(values, shape, GetParam()).astype(dtype), requires_grad);
  }
  [[nodiscard]] Tensor labels(const std::vector<std::int64_t>& values) const {
    return Tensor(NDArray::from_vector(values, {static_cast<std::int64_t>(values.size())}, GetParam()));
  }
};

// ---- softmax family -------------------------------------------------------------------------------

TEST_P(NnOpsTest, SoftmaxAndLogSoftmaxMatchANaiveLoopOnEveryAxis) {
  const NDArray x = random_array({2, 3, 4}, GetParam(), 1, -3.0, 3.0);
  const std::vector<double> xs = values_of(x);
  struct Case {
    std::int64_t axis;
    std::size_t outer, n, inner;
  };
  for (const Case& c : {Case{0, 1, 2, 12}, Case{1, 2, 3, 4}, Case{-1, 6, 4, 1}, Case{2, 6, 4, 1}}) {
    SCOPED_TRACE(c.axis);
    expect_all_near(values_of(ops::softmax(Tensor(x), c.axis)), naive_softmax(xs, c.outer, c.n, c.inner, false), 1e-12);
    expect_all_near(values_of(ops::logsoftmax(Tensor(x), c.axis)), naive_softmax(xs, c.outer, c.n, c.inner, true),
                    1e-12);
  }
}

TEST_P(NnOpsTest, SoftmaxFamilyIsStableForHugeLogits) {
  const std::vector<double> logits = {1e4, 1e4 - 2, -1e4, 0, -1e4, -1e4 + 1, -1e4 + 3, -2e4};
  const Tensor x = make(logits, {2, 4}, DType::Float32);
  const std::vector<double> log_probs = values_of(ops::logsoftmax(x));
  const std::vector<double> probs = values_of(ops::softmax(x));
  for (double v : log_probs) EXPECT_TRUE(std::isfinite(v));
  for (double v : probs) EXPECT_TRUE(std::isfinite(v));
  expect_all_near(log_probs, naive_softmax(logits, 2, 4, 1, true), 1e-6);
  expect_all_near(probs, naive_softmax(logits, 2, 4, 1, false), 1e-6);

  const double loss = ops::cross_entropy(x, labels({1, 2})).value().item().to<double>();
  const std::vector<double> reference = naive_softmax(logits, 2, 4, 1, true);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(loss, -(reference[1] + reference[4 + 2]) / 2, 1e-6 * std::abs(loss));

  // The gradients stay finite too.
  const Tensor leaf = make(logits, {2, 4}, DType::Float32, true);
  ops::cross_entropy(leaf, labels({0, 3})).backward();
  for (double v : values_of(leaf.grad())) EXPECT_TRUE(std::isfinite(v));
}

TEST_P(NnOpsTest, SoftmaxFamilyGradientsMatchFiniteDifferences) {
  const NDArray x = random_array({2, 3, 4}, GetParam(), 2, -2.0, 2.0);
  for (std::int64_t axis : {0, 1, 2}) {
    SCOPED_TRACE(axis);
    expect_gradients_match([axis](const V& t) { return ops::logsoftmax(t[0], axis); }, {x});
    expect_gradients_match([axis](const V& t) { return ops::softmax(t[0], axis); }, {x});
  }
}

TEST_P(NnOpsTest, LogSoftmaxIsTwiceDifferentiable) {
  const NDArray x = random_array({2, 4}, GetParam(), 3, -2.0, 2.0);
  expect_second_gradients_match([](const V& t) { return ops::logsoftmax(t[0], 1); }, {x}, 1e-5, 1e-5);
  expect_second_gradients_match([](const V& t) { return ops::softmax(t[0], 0); }, {x}, 1e-5, 1e-5);
}

// ---- losses ---------------------------------------------------------------------------------------

TEST_P(NnOpsTest, CrossEntropyIsTheMeanNegativeLogLikelihood) {
  const NDArray x = random_array({3, 5}, GetParam(), 4, -2.0, 2.0);
  const Tensor y = labels({4, 0, 2});
  const std::vector<double> log_probs = naive_softmax(values_of(x), 3, 5, 1, true);
  const double expected = -(log_probs[4] + log_probs[5] + log_probs[12]) / 3;
  const Tensor loss = ops::cross_entropy(Tensor(x), y);
  EXPECT_EQ(loss.shape(), Shape{});
  EXPECT_NEAR(loss.value().item().to<double>(), expected, 1e-12);
  expect_gradients_match([&](const V& t) { return ops::cross_entropy(t[0], y); }, {x});
  // int32 labels work the same way.
  const Tensor y32(y.value().astype(DType::Int32));
  EXPECT_NEAR(ops::cross_entropy(Tensor(x), y32).value().item().to<double>(), expected, 1e-12);
}

TEST_P(NnOpsTest, MseLossIsTheMeanSquaredDifference) {
  const NDArray p = random_array({3, 4}, GetParam(), 5);
  const NDArray t = random_array({3, 4}, GetParam(), 6);
  const std::vector<double> ps = values_of(p);
  const std::vector<double> ts = values_of(t);
  double expected = 0.0;
  for (std::size_t i = 0; i < ps.size(); ++i) expected += (ps[i] - ts[i]) * (ps[i] - ts[i]);
  expected /= static_cast<double>(ps.size());
  EXPECT_NEAR(ops::mse_loss(Tensor(p), Tensor(t)).value().item().to<double>(), expected, 1e-12);
  expect_gradients_match([](const V& v) { return ops::mse_loss(v[0], v[1]); }, {p, t});
}

// ---- dropout --------------------------------------------------------------------------------------

TEST_P(NnOpsTest, DropoutIsTheIdentityWithoutTrainingOrWithPZero) {
  const Tensor x = make({1, 2, 3}, {3}, DType::Float32, true);
  EXPECT_TRUE(ops::dropout(x, 0.0).same(x));
  EXPECT_TRUE(ops::dropout(x, 0.7, /*training=*/false).same(x));
}

TEST_P(NnOpsTest, DropoutZeroesAboutPAndScalesTheRest) {
  manual_seed(7);
  const double p = 0.3;
  const std::int64_t n = 100000;
  const Tensor x(NDArray::full({n}, Scalar(2.0), DType::Float32, GetParam()), true);
  const Tensor y = ops::dropout(x, p);
  const std::vector<double> ys = values_of(y);
  std::int64_t zeros = 0;
  for (double v : ys) {
    if (v == 0.0) {
      ++zeros;
    } else {
      EXPECT_NEAR(v, 2.0 / (1.0 - p), 1e-6);
    }
  }
  EXPECT_NEAR(static_cast<double>(zeros) / static_cast<double>(n), p, 0.01);
  // The gradient is the same mask and scale.
  y.backward();
  const std::vector<double> grad = values_of(x.grad());
  for (std::size_t i = 0; i < ys.size(); ++i) ASSERT_DOUBLE_EQ(grad[i], ys[i] / 2.0);
  // Two draws differ (the default generator advances).
  EXPECT_NE(values_of(ops::dropout(x, p)), ys);
}

// ---- layer norm -----------------------------------------------------------------------------------

TEST_P(NnOpsTest, LayerNormMatchesANaiveLoop) {
  const std::size_t rows = 6;
  const std::size_t dim = 5;
  const NDArray x = random_array({2, 3, 5}, GetParam(), 8, -3.0, 3.0);
  const NDArray w = random_array({5}, GetParam(), 9);
  const NDArray b = random_array({5}, GetParam(), 10);
  const double eps = 1e-5;
  const std::vector<double> xs = values_of(x);
  const std::vector<double> ws = values_of(w);
  const std::vector<double> bs = values_of(b);
  std::vector<double> plain(xs.size());
  std::vector<double> affine(xs.size());
  for (std::size_t r = 0; r < rows; ++r) {
    double mean = 0.0;
    for (std::size_t d = 0; d < dim; ++d) mean += xs[r * dim + d] / static_cast<double>(dim);
    double var = 0.0;
    for (std::size_t d = 0; d < dim; ++d) var += std::pow(xs[r * dim + d] - mean, 2) / static_cast<double>(dim);
    for (std::size_t d = 0; d < dim; ++d) {
      plain[r * dim + d] = (xs[r * dim + d] - mean) / std::sqrt(var + eps);
      affine[r * dim + d] = plain[r * dim + d] * ws[d] + bs[d];
    }
  }
  expect_all_near(values_of(ops::layer_norm(Tensor(x), Tensor(), Tensor(), eps)), plain, 1e-10);
  expect_all_near(values_of(ops::layer_norm(Tensor(x), Tensor(w), Tensor(b), eps)), affine, 1e-10);
  expect_gradients_match([](const V& t) { return ops::layer_norm(t[0], t[1], t[2]); }, {x, w, b});
  expect_gradients_match([](const V& t) { return ops::layer_norm(t[0], Tensor(), Tensor()); }, {x});
}

// The affine layer norm is one node that keeps only x and the weight: the normalized rows and their scaled
// copy are not alive between forward and backward. Its second derivatives go through the recomputed rows.
TEST_P(NnOpsTest, AffineLayerNormIsOneNodeWithSecondDerivatives) {
  const NDArray x = random_array({3, 4}, GetParam(), 11, -2.0, 2.0);
  const NDArray w = random_array({4}, GetParam(), 12);
  const NDArray b = random_array({4}, GetParam(), 13);
  const Tensor xt(x, true);
  const Tensor y = ops::layer_norm(xt, Tensor(w, true), Tensor(b, true));
  EXPECT_EQ(y.op()->name(), "layer_norm");
  EXPECT_TRUE(y.inputs()[0].same(xt));
  expect_second_gradients_match([](const V& t) { return ops::layer_norm(t[0], t[1], t[2]); }, {x, w, b}, 1e-5, 1e-5);
  // Only some inputs needing a gradient: each still gets the right one.
  expect_gradients_match([&](const V& t) { return ops::layer_norm(t[0], Tensor(w), Tensor(b)); }, {x});
  expect_gradients_match([&](const V& t) { return ops::layer_norm(Tensor(x), t[0], t[1]); }, {w, b});
}

// ---- linear ---------------------------------------------------------------------------------------

// linear(x, W, b) against matmul + add, on rows, on a batch of sequences and with a (1, out) bias; its
// gradients against finite differences, first and second.
TEST_P(NnOpsTest, LinearIsMatmulPlusBiasInOneNode) {
  const NDArray w = random_array({4, 3}, GetParam(), 14);
  const NDArray b = random_array({3}, GetParam(), 15);
  for (const Shape& shape : {Shape{5, 4}, Shape{2, 3, 4}, Shape{1, 4}}) {
    SCOPED_TRACE(shape_str(shape));
    const NDArray x = random_array(shape, GetParam(), 16);
    const Tensor y = ops::linear(Tensor(x, true), Tensor(w), Tensor(b));
    EXPECT_EQ(y.op()->name(), "linear");
    Shape expected = shape;
    expected.back() = 3;
    EXPECT_EQ(y.shape(), expected);
    expect_all_near(values_of(y), values_of(ops::matmul(Tensor(x), Tensor(w)) + Tensor(b)), 1e-12);
    expect_gradients_match([](const V& t) { return ops::linear(t[0], t[1], t[2]); }, {x, w, b});
    expect_gradients_match([](const V& t) { return ops::linear(t[0], t[1], t[2]); }, {x, w, b.reshape({1, 3})});
    expect_second_gradients_match([](const V& t) { return ops::linear(t[0] * t[0], t[1], t[2]); }, {x, w, b}, 1e-5,
                                  1e-5);
  }
  // What the fused node does not cover gives matmul's and add's results: a 1-d x, a bias that broadcasts
  // otherwise, mixed dtypes.
  const NDArray row = random_array({4}, GetParam(), 17);
  expect_all_near(values_of(ops::linear(Tensor(row), Tensor(w), Tensor(b))),
                  values_of(ops::matmul(Tensor(row), Tensor(w)) + Tensor(b)), 1e-12);
  const NDArray x = random_array({5, 4}, GetParam(), 18);
  const NDArray column = random_array({5, 1}, GetParam(), 19);
  expect_all_near(values_of(ops::linear(Tensor(x), Tensor(w), Tensor(column))),
                  values_of(ops::matmul(Tensor(x), Tensor(w)) + Tensor(column)), 1e-12);
  EXPECT_EQ(ops::linear(Tensor(x), Tensor(w), Tensor(b.astype(DType::Float32))).dtype(), DType::Float64);
  expect_error<ValueError>([&] { (void)ops::linear(Tensor(x), Tensor(w), Tensor(random_array({4}, GetParam(), 20))); },
                           "cannot be broadcast together");
}

// ---- batch norm -----------------------------------------------------------------------------------

// Per-channel mean and biased variance of x (N, C, spatial...) laid out as (N, C, inner).
void channel_stats(const std::vector<double>& x, std::size_t n, std::size_t c, std::size_t inner,
                   std::vector<double>& mean, std::vector<double>& var) {
  mean.assign(c, 0.0);
  var.assign(c, 0.0);
  const auto count = static_cast<double>(n * inner);
  for (std::size_t b = 0; b < n; ++b) {
    for (std::size_t ch = 0; ch < c; ++ch) {
      for (std::size_t i = 0; i < inner; ++i) mean[ch] += x[(b * c + ch) * inner + i] / count;
    }
  }
  for (std::size_t b = 0; b < n; ++b) {
    for (std::size_t ch = 0; ch < c; ++ch) {
      for (std::size_t i = 0; i < inner; ++i) var[ch] += std::pow(x[(b * c + ch) * inner + i] - mean[ch], 2) / count;
    }
  }
}

std::vector<double> naive_batch_norm(const std::vector<double>& x, std::size_t n, std::size_t c, std::size_t inner,
                                     const std::vector<double>& mean, const std::vector<double>& var,
                                     const std::vector<double>& w, const std::vector<double>& b, double eps) {
  std::vector<double> out(x.size());
  for (std::size_t s = 0; s < n; ++s) {
    for (std::size_t ch = 0; ch < c; ++ch) {
      for (std::size_t i = 0; i < inner; ++i) {
        const std::size_t at = (s * c + ch) * inner + i;
        out[at] = (x[at] - mean[ch]) / std::sqrt(var[ch] + eps) * w[ch] + b[ch];
      }
    }
  }
  return out;
}

TEST_P(NnOpsTest, BatchNormTrainsOnBatchStatisticsAndUpdatesTheRunningOnes) {
  struct Case {
    Shape shape;
    std::size_t n, c, inner;
  };
  for (const Case& cs : {Case{{4, 3}, 4, 3, 1}, Case{{2, 3, 2, 3}, 2, 3, 6}}) {
    SCOPED_TRACE(shape_str(cs.shape));
    const NDArray x = random_array(cs.shape, GetParam(), 11, -2.0, 3.0);
    const NDArray w = random_array({3}, GetParam(), 12);
    const NDArray b = random_array({3}, GetParam(), 13);
    const Tensor running_mean(NDArray::from_vector(std::vector<double>{0.5, -1.0, 0.0}, {3}, GetParam()));
    const Tensor running_var(NDArray::from_vector(std::vector<double>{1.0, 2.0, 0.5}, {3}, GetParam()));
    const double momentum = 0.2;
    const double eps = 1e-5;
    std::vector<double> mean;
    std::vector<double> var;
    channel_stats(values_of(x), cs.n, cs.c, cs.inner, mean, var);

    const Tensor y = ops::batch_norm(Tensor(x), Tensor(w), Tensor(b), running_mean, running_var, true, momentum, eps);
    expect_all_near(values_of(y),
                    naive_batch_norm(values_of(x), cs.n, cs.c, cs.inner, mean, var, values_of(w), values_of(b), eps),
                    1e-10);
    const auto count = static_cast<double>(cs.n * cs.inner);
    const std::vector<double> old_mean = {0.5, -1.0, 0.0};
    const std::vector<double> old_var = {1.0, 2.0, 0.5};
    std::vector<double> new_mean(3);
    std::vector<double> new_var(3);
    for (std::size_t ch = 0; ch < 3; ++ch) {
      new_mean[ch] = (1 - momentum) * old_mean[ch] + momentum * mean[ch];
      new_var[ch] = (1 - momentum) * old_var[ch] + momentum * var[ch] * count / (count - 1);  // unbiased
    }
    expect_all_near(values_of(running_mean), new_mean, 1e-12);
    expect_all_near(values_of(running_var), new_var, 1e-12);
    EXPECT_FALSE(running_mean.requires_grad());
    EXPECT_TRUE(running_mean.is_leaf());

    // Eval mode normalizes with the running statistics and leaves them alone.
    const std::vector<double> mean_before_eval = values_of(running_mean);
    const Tensor z = ops::batch_norm(Tensor(x), Tensor(w), Tensor(b), running_mean, running_var, false, momentum, eps);
    expect_all_near(
        values_of(z),
        naive_batch_norm(values_of(x), cs.n, cs.c, cs.inner, new_mean, new_var, values_of(w), values_of(b), eps),
        1e-10);
    EXPECT_EQ(values_of(running_mean), mean_before_eval);

    // Without weight, bias or running statistics, training still normalizes.
    const Tensor plain = ops::batch_norm(Tensor(x), Tensor(), Tensor(), Tensor(), Tensor(), true);
    expect_all_near(values_of(plain),
                    naive_batch_norm(values_of(x), cs.n, cs.c, cs.inner, mean, var, {1, 1, 1}, {0, 0, 0}, 1e-5), 1e-10);

    expect_gradients_match(
        [&](const V& t) { return ops::batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), true, momentum, eps); },
        {x, w, b});
    expect_gradients_match(
        [&](const V& t) { return ops::batch_norm(t[0], t[1], t[2], running_mean, running_var, false, momentum, eps); },
        {x, w, b});
  }
}

// ---- attention ------------------------------------------------------------------------------------

// softmax(q k^T / sqrt(d)) v for q (B, L, D), k (B, S, D), v (B, S, E), causal masking j > i.
std::vector<double> naive_attention(const std::vector<double>& q, const std::vector<double>& k,
                                    const std::vector<double>& v, std::size_t batch, std::size_t len, std::size_t src,
                                    std::size_t dim, std::size_t vdim, bool causal) {
  std::vector<double> out(batch * len * vdim, 0.0);
  for (std::size_t b = 0; b < batch; ++b) {
    for (std::size_t i = 0; i < len; ++i) {
      std::vector<double> scores(src, -std::numeric_limits<double>::infinity());
      double top = -std::numeric_limits<double>::infinity();
      for (std::size_t j = 0; j < src; ++j) {
        if (causal && j > i) continue;
        double dot = 0.0;
        for (std::size_t d = 0; d < dim; ++d) dot += q[(b * len + i) * dim + d] * k[(b * src + j) * dim + d];
        scores[j] = dot / std::sqrt(static_cast<double>(dim));
        top = std::max(top, scores[j]);
      }
      double total = 0.0;
      for (std::size_t j = 0; j < src; ++j) total += std::exp(scores[j] - top);
      for (std::size_t j = 0; j < src; ++j) {
        const double weight = std::exp(scores[j] - top) / total;
        for (std::size_t e = 0; e < vdim; ++e) out[(b * len + i) * vdim + e] += weight * v[(b * src + j) * vdim + e];
      }
    }
  }
  return out;
}

TEST_P(NnOpsTest, AttentionMatchesANaiveLoopWithAndWithoutCausalMask) {
  const NDArray q = random_array({2, 3, 4}, GetParam(), 14, -2.0, 2.0);
  const NDArray k = random_array({2, 5, 4}, GetParam(), 15, -2.0, 2.0);
  const NDArray v = random_array({2, 5, 6}, GetParam(), 16);
  for (bool causal : {false, true}) {
    SCOPED_TRACE(causal);
    const Tensor out = ops::scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), causal);
    EXPECT_EQ(out.shape(), (Shape{2, 3, 6}));
    expect_all_near(values_of(out), naive_attention(values_of(q), values_of(k), values_of(v), 2, 3, 5, 4, 6, causal),
                    1e-12);
  }
  // Leading batch dimensions broadcast like matmul's: q (2, 1, 3, 4) against k, v (3, 5, 4).
  const NDArray q4 = random_array({2, 1, 3, 4}, GetParam(), 17);
  const NDArray k3 = random_array({3, 5, 4}, GetParam(), 18);
  const NDArray v3 = random_array({3, 5, 2}, GetParam(), 19);
  const Tensor out = ops::scaled_dot_product_attention(Tensor(q4), Tensor(k3), Tensor(v3), true);
  EXPECT_EQ(out.shape(), (Shape{2, 3, 3, 2}));
  // Batch (a, c) uses q[a, 0] and k[c], v[c].
  const std::vector<double> qs = values_of(q4);
  const std::vector<double> ks = values_of(k3);
  const std::vector<double> vs = values_of(v3);
  const std::vector<double> got = values_of(out);
  for (std::size_t a = 0; a < 2; ++a) {
    for (std::size_t c = 0; c < 3; ++c) {
      const std::vector<double> expected =
          naive_attention(std::vector<double>(qs.begin() + static_cast<std::ptrdiff_t>(a * 12),
                                              qs.begin() + static_cast<std::ptrdiff_t>((a + 1) * 12)),
                          std::vector<double>(ks.begin() + static_cast<std::ptrdiff_t>(c * 20),
                                              ks.begin() + static_cast<std::ptrdiff_t>((c + 1) * 20)),
                          std::vector<double>(vs.begin() + static_cast<std::ptrdiff_t>(c * 10),
                                              vs.begin() + static_cast<std::ptrdiff_t>((c + 1) * 10)),
                          1, 3, 5, 4, 2, true);
      for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_NEAR(got[(a * 3 + c) * 6 + i], expected[i], 1e-12);
      }
    }
  }
}

TEST_P(NnOpsTest, CausalAttentionGivesMaskedPositionsExactlyZeroWeight) {
  // With v the identity, the output rows are the attention weights themselves. The scores are large
  // (thousands), where adding a finite negative constant instead of masking could still leave weight.
  const std::int64_t len = 4;
  const NDArray q = random_array({len, 3}, GetParam(), 20, 50.0, 100.0).astype(DType::Float32);
  const NDArray k = random_array({len, 3}, GetParam(), 21, 50.0, 100.0).astype(DType::Float32);
  std::vector<double> eye(static_cast<std::size_t>(len * len), 0.0);
  for (std::int64_t i = 0; i < len; ++i) eye[static_cast<std::size_t>(i * len + i)] = 1.0;
  const Tensor v = make(eye, {len, len}, DType::Float32);
  const std::vector<double> weights =
      values_of(ops::scaled_dot_product_attention(Tensor(q), Tensor(k), v, /*causal=*/true));
  for (std::int64_t i = 0; i < len; ++i) {
    double total = 0.0;
    for (std::int64_t j = 0; j < len; ++j) {
      const double w = weights[static_cast<std::size_t>(i * len + j)];
      if (j > i) {
        EXPECT_EQ(w, 0.0) << "row " << i << " column " << j;
      }
      EXPECT_TRUE(std::isfinite(w));
      total += w;
    }
    EXPECT_NEAR(total, 1.0, 1e-6);
  }
}

TEST_P(NnOpsTest, AttentionGradientsMatchFiniteDifferences) {
  const NDArray q = random_array({2, 3, 2}, GetParam(), 22);
  const NDArray k = random_array({2, 4, 2}, GetParam(), 23);
  const NDArray v = random_array({2, 4, 3}, GetParam(), 24);
  for (bool causal : {false, true}) {
    SCOPED_TRACE(causal);
    expect_gradients_match([causal](const V& t) { return ops::scaled_dot_product_attention(t[0], t[1], t[2], causal); },
                           {q, k, v});
  }
}

// ---- errors ---------------------------------------------------------------------------------------

TEST_P(NnOpsTest, BadArgumentsRaiseClearErrors) {
  const Tensor x(random_array({2, 3}, GetParam(), 25));
  expect_error<IndexError>(
      [&] {
        (void)ops::cross_entropy(x, labels({0, 3}));
      },
      "cross_entropy: labels must lie in [0, 3) for logits of shape (2, 3), got 3");
  expect_error<IndexError>([&] { (void)ops::cross_entropy(x, labels({-1, 0})); }, "cross_entropy");
  expect_error<ValueError>(
      [&] {
        (void)ops::cross_entropy(x, labels({0, 1, 2}));
      },
      "cross_entropy: expected logits (N, C) and labels (N,), got shapes (2, 3) and (3,)");
  expect_error<ValueError>([&] { (void)ops::cross_entropy(ops::reshape(x, {6}), labels({0})); }, "cross_entropy");
  expect_error<TypeError>([&] { (void)ops::cross_entropy(x, make({0, 1}, {2})); }, "cross_entropy: labels");
  expect_error<ValueError>(
      [&] {
        (void)ops::mse_loss(x, ops::reshape(x, {3, 2}));
      },
      "mse_loss: prediction and target must have the same shape, got (2, 3) and (3, 2)");
  expect_error<ValueError>([&] { (void)ops::dropout(x, 1.0); }, "dropout: p must lie in [0, 1), got 1");
  expect_error<ValueError>([&] { (void)ops::dropout(x, -0.1); }, "dropout: p");
  expect_error<IndexError>([&] { (void)ops::softmax(x, 2); }, "softmax");
  expect_error<IndexError>([&] { (void)ops::logsoftmax(x, -3); }, "logsoftmax");
  expect_error<TypeError>([&] { (void)ops::softmax(Tensor(NDArray::arange(3, DType::Int64, GetParam()))); },
                          "softmax: expected a floating-point tensor");
  expect_error<ValueError>(
      [&] {
        (void)ops::layer_norm(x, make({1, 1}, {2}), Tensor());
      },
      "layer_norm: weight must have shape (3,) for input of shape (2, 3), got (2,)");
  expect_error<ValueError>(
      [&] {
        (void)ops::batch_norm(x, Tensor(), make({1, 1}, {2}), Tensor(), Tensor(), true);
      },
      "batch_norm: bias must have shape (3,)");
  expect_error<ValueError>(
      [&] { (void)ops::batch_norm(ops::reshape(x, {6}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
      "batch_norm: input must be (N, C)");
  expect_error<ValueError>([&] { (void)ops::batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); },
                           "batch_norm: eval mode needs running_mean");
  expect_error<ValueError>(
      [&] {
        (void)ops::batch_norm(ops::reshape(x, {1, 6}), Tensor(), Tensor(), Tensor(), Tensor(), true);
      },
      "more than 1 value per channel");
  const Tensor q(random_array({2, 3, 4}, GetParam(), 26));
  const Tensor k(random_array({2, 5, 3}, GetParam(), 27));
  expect_error<ValueError>([&] { (void)ops::scaled_dot_product_attention(q, k, k); },
                           "scaled_dot_product_attention: expected q (..., L, d), k (..., S, d) and v (..., S, dv), "
                           "got shapes (2, 3, 4), (2, 5, 3) and (2, 5, 3)");
  const Tensor k2(random_array({3, 5, 4}, GetParam(), 28));
  expect_error<ValueError>([&] { (void)ops::scaled_dot_product_attention(q, k2, k2); }, "scaled_dot_product_attention");
}

INSTANTIATE_TEST_SUITE_P(Devices, NnOpsTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
