// Pooling ops (max_pool2d, avg_pool2d) and the convolution and pooling layers over NCHW: forwards against
// direct loops over strides, paddings and kernel sizes (including strides larger than the kernel, which
// leave cells unread), gradients and second derivatives by finite differences, ties, and errors.
#include <gtest/gtest.h>
#include <needle/needle.h>
#include <needle/nn/layers.h>

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
using testing::expect_second_gradients_match;
using testing::host;
using testing::random_array;
using V = std::vector<Tensor>;
constexpr DType kF64 = DType::Float64;

struct PoolCase {
  std::int64_t n, c, h, w, k, stride, padding;
};

// Max (or mean, counting padded zeros) over each window of x (n, c, h, w).
std::vector<double> direct_pool(const std::vector<double>& x, const PoolCase& p, bool is_max) {
  const std::int64_t h_out = (p.h + 2 * p.padding - p.k) / p.stride + 1;
  const std::int64_t w_out = (p.w + 2 * p.padding - p.k) / p.stride + 1;
  std::vector<double> out;
  for (std::int64_t n = 0; n < p.n; ++n) {
    for (std::int64_t c = 0; c < p.c; ++c) {
      for (std::int64_t y = 0; y < h_out; ++y) {
        for (std::int64_t xo = 0; xo < w_out; ++xo) {
          double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
          for (std::int64_t i = 0; i < p.k; ++i) {
            for (std::int64_t j = 0; j < p.k; ++j) {
              const std::int64_t row = y * p.stride + i - p.padding;
              const std::int64_t col = xo * p.stride + j - p.padding;
              if (row < 0 || row >= p.h || col < 0 || col >= p.w) continue;
              const double v = x[static_cast<std::size_t>(((n * p.c + c) * p.h + row) * p.w + col)];
              acc = is_max ? std::max(acc, v) : acc + v;
            }
          }
          out.push_back(is_max ? acc : acc / static_cast<double>(p.k * p.k));
        }
      }
    }
  }
  return out;
}

const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> cases = {
      {2, 2, 4, 4, 2, 2, 0},  // the usual 2x2 / 2
      {1, 2, 5, 5, 3, 1, 1},  // overlapping windows with padding
      {1, 1, 5, 4, 3, 2, 1},  // (4 + 2 - 3) % 2 = 1: the last padded column is never read
      {1, 2, 6, 5, 2, 3, 0},  // stride > kernel: unread cells get no gradient
      {2, 1, 3, 3, 3, 1, 0},  // one window covering the input
  };
  return cases;
}

class NnPoolTest : public ::testing::TestWithParam<Device> {};

TEST_P(NnPoolTest, PoolsMatchDirectLoopsAndFiniteDifferences) {
  const Device d = GetParam();
  std::uint64_t seed = 70;
  for (const PoolCase& p : pool_cases()) {
    SCOPED_TRACE(
        str("N=", p.n, " C=", p.c, " H=", p.h, " W=", p.w, " K=", p.k, " stride=", p.stride, " padding=", p.padding));
    const NDArray x = random_array({p.n, p.c, p.h, p.w}, d, ++seed, -2.0, 2.0);
    expect_all_near(host(ops::max_pool2d(Tensor(x), p.k, p.stride, p.padding)), direct_pool(host(x), p, true));
    expect_all_near(host(ops::avg_pool2d(Tensor(x), p.k, p.stride, p.padding)), direct_pool(host(x), p, false));
    expect_gradients_match([&](const V& in) { return ops::max_pool2d(in[0], p.k, p.stride, p.padding); }, {x});
    expect_gradients_match([&](const V& in) { return ops::avg_pool2d(in[0], p.k, p.stride, p.padding); }, {x});
  }
}

TEST_P(NnPoolTest, PoolGradientsAreDifferentiableAgain) {
  const Device d = GetParam();
  const NDArray x = random_array({1, 2, 5, 5}, d, 80, -2.0, 2.0);
  // Squaring the pooled values makes the first gradient depend on x through fold/unfold.
  expect_second_gradients_match(
      [](const V& in) {
        const Tensor p = ops::avg_pool2d(in[0], 3, 1, 1);
        return p * p;
      },
      {x});
  expect_second_gradients_match(
      [](const V& in) {
        const Tensor p = ops::max_pool2d(in[0], 2, 1);
        return p * p;
      },
      {x});
}

TEST_P(NnPoolTest, MaxPoolSendsTheGradientToTheFirstOfTiedMaxima) {
  const Device d = GetParam();
  // Window [[1, 1], [0, 1]] has three tied maxima (as PyTorch, the first in row-major order takes the whole
  // gradient); window [[2, 0], [0, 0]] has one.
  const Tensor x(NDArray::from_vector(std::vector<double>{1, 1, 2, 0, 0, 1, 0, 0}, {1, 1, 2, 4}, d), true);
  const Tensor y = ops::max_pool2d(x, 2);
  EXPECT_EQ(host(y), (std::vector<double>{1, 2}));
  y.backward();
  expect_all_near(host(x.grad()), {1, 0, 1, 0, 0, 0, 0, 0}, 1e-12);
}

TEST_P(NnPoolTest, PoolLayersAndErrors) {
  const Device d = GetParam();
  const NDArray x = random_array({2, 3, 6, 6}, d, 90);
  nn::MaxPool2d max_pool(2);
  nn::AvgPool2d avg_pool(3, 2, 1);
  EXPECT_EQ(host(max_pool(Tensor(x))), host(ops::max_pool2d(Tensor(x), 2)));
  EXPECT_EQ(max_pool(Tensor(x)).shape(), (Shape{2, 3, 3, 3}));
  EXPECT_EQ(host(avg_pool(Tensor(x))), host(ops::avg_pool2d(Tensor(x), 3, 2, 1)));
  expect_error<ValueError>(
      [&] {
        (void)max_pool(Tensor(x.reshape({6, 6, 6})));
      },
      "MaxPool2d: expected input (N, C, H, W) with 4 dimensions, got shape (6, 6, 6)");
  expect_error<ValueError>([&] { (void)ops::avg_pool2d(Tensor(x), 2, 1, 2); },
                           "avg_pool2d: padding must lie in [0, kernel_size / 2], got padding 2 for kernel_size 2");
  expect_error<ValueError>([&] { (void)ops::max_pool2d(Tensor(x), 7); }, "max_pool2d: kernel_size 7 exceeds");
  expect_error<ValueError>([&] { (void)ops::max_pool2d(Tensor(x), 2, 0); }, "max_pool2d: stride must be >= 1, got 0");
  expect_error<TypeError>(
      [&] {
        (void)ops::max_pool2d(Tensor(NDArray::zeros({1, 1, 2, 2}, DType::Int64, d)), 2);
      },
      "max_pool2d: expected a floating-point tensor");
}

// out[n, o, y, x] = bias[o] + sum over i, j, c of x[n, c, y*s + i - p, x*s + j - p] * w[i, j, c, o].
std::vector<double> direct_conv_nchw(const std::vector<double>& x, const std::vector<double>& w,
                                     const std::vector<double>& bias, const Shape& xs, std::int64_t c_out,
                                     std::int64_t k, std::int64_t s, std::int64_t p) {
  const std::int64_t n = xs[0];
  const std::int64_t c_in = xs[1];
  const std::int64_t h = xs[2];
  const std::int64_t wd = xs[3];
  const std::int64_t h_out = (h + 2 * p - k) / s + 1;
  const std::int64_t w_out = (wd + 2 * p - k) / s + 1;
  std::vector<double> out;
  for (std::int64_t b = 0; b < n; ++b) {
    for (std::int64_t o = 0; o < c_out; ++o) {
      for (std::int64_t y = 0; y < h_out; ++y) {
        for (std::int64_t xo = 0; xo < w_out; ++xo) {
          double acc = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(o)];
          for (std::int64_t i = 0; i < k; ++i) {
            for (std::int64_t j = 0; j < k; ++j) {
              const std::int64_t row = y * s + i - p;
              const std::int64_t col = xo * s + j - p;
              if (row < 0 || row >= h || col < 0 || col >= wd) continue;
              for (std::int64_t c = 0; c < c_in; ++c) {
                acc += x[static_cast<std::size_t>(((b * c_in + c) * h + row) * wd + col)] *
                       w[static_cast<std::size_t>(((i * k + j) * c_in + c) * c_out + o)];
              }
            }
          }
          out.push_back(acc);
        }
      }
    }
  }
  return out;
}

TEST_P(NnPoolTest, ConvLayerIsNeedlesSamePaddedConvolutionOverNchw) {
  const Device d = GetParam();
  struct Case {
    std::int64_t c_in, c_out, k, stride;
    std::optional<std::int64_t> padding;
    bool bias;
  };
  std::uint64_t seed = 100;
  for (const Case& c : {Case{2, 3, 3, 1, std::nullopt, true}, Case{1, 2, 3, 2, std::nullopt, true},
                        Case{2, 2, 2, 1, std::nullopt, false}, Case{2, 1, 3, 1, 0, true}}) {
    SCOPED_TRACE(str("C_in=", c.c_in, " C_out=", c.c_out, " K=", c.k, " stride=", c.stride));
    nn::Conv conv(c.c_in, c.c_out, c.k, c.stride, c.bias, d, kF64, c.padding);
    EXPECT_EQ(conv.padding(), c.padding.value_or(c.k / 2));
    const Shape shape = {2, c.c_in, 5, 4};
    const NDArray x = random_array(shape, d, ++seed);
    const Tensor y = conv(Tensor(x));
    const std::vector<double> bias = c.bias ? host(conv.bias()) : std::vector<double>{};
    expect_all_near(
        host(y), direct_conv_nchw(host(x), host(conv.weight()), bias, shape, c.c_out, c.k, c.stride, conv.padding()));
    const Tensor input(random_array({1, c.c_in, 4, 3}, d, ++seed));
    expect_parameter_gradients_match(conv, [&] { return conv(input); });
    expect_gradients_match([&](const V& in) { return conv(in[0]); }, {input.value()});
  }
  nn::Conv same(2, 4, 3, 1, true, d, kF64);
  EXPECT_EQ(same(Tensor(random_array({1, 2, 5, 6}, d, 1))).shape(), (Shape{1, 4, 5, 6}));
  nn::Conv2d valid(2, 4, 3, 1, 0, true, d, kF64);
  EXPECT_EQ(valid.name(), "Conv2d");
  EXPECT_EQ(valid(Tensor(random_array({1, 2, 5, 6}, d, 1))).shape(), (Shape{1, 4, 3, 4}));
  expect_error<ValueError>(
      [&] {
        (void)same(Tensor(random_array({1, 3, 5, 5}, d, 1)));
      },
      "Conv: expected input with channels (dimension 1) 2, got shape (1, 3, 5, 5)");
  expect_error<ValueError>(
      [&] {
        (void)valid(Tensor(random_array({1, 2, 2, 5}, d, 1)));
      },
      "Conv2d: kernel_size 3 exceeds the padded input (padding 0, shape (1, 2, 2, 5))");
}

TEST(NnConv, SmallConvNetTrainsEndToEnd) {
  // Conv -> BatchNorm2d -> ReLU -> MaxPool -> Flatten -> Linear: gradients reach every parameter.
  nn::Sequential net({std::make_shared<nn::Conv>(1, 2, 3, 1, true, cpu_device(), kF64),
                      std::make_shared<nn::BatchNorm2d>(2, 1e-5, 0.1, cpu_device(), kF64), std::make_shared<nn::ReLU>(),
                      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
                      std::make_shared<nn::Linear>(8, 3, true, cpu_device(), kF64)});
  const Tensor x(random_array({3, 1, 4, 4}, cpu_device(), 120));
  expect_parameter_gradients_match(
      net, [&] { return net(x); }, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Devices, NnPoolTest, ::testing::ValuesIn(testing::test_devices()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
