// conv: forward against a direct 7-loop convolution and gradients against finite differences, over
// strides, paddings (also >= K) and kernel sizes, including sizes where (H + 2p - K) % stride != 0, so
// the last padded rows are never read; plus second derivatives and argument errors. Both devices.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cstdint>
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

struct ConvCase {
  std::int64_t n, h, w, c_in, c_out, k, stride, padding;
};

std::string describe(const ConvCase& c) {
  return str("N=", c.n, " H=", c.h, " W=", c.w, " C_in=", c.c_in, " C_out=", c.c_out, " K=", c.k, " stride=", c.stride,
             " padding=", c.padding);
}

// out[n, y, x, o] = sum over i, j, c of a[n, y*s + i - p, x*s + j - p, c] * b[i, j, c, o] (zero outside a).
std::vector<double> direct_conv(const std::vector<double>& a, const std::vector<double>& b, const ConvCase& c) {
  const std::int64_t h_out = (c.h + 2 * c.padding - c.k) / c.stride + 1;
  const std::int64_t w_out = (c.w + 2 * c.padding - c.k) / c.stride + 1;
  std::vector<double> out(static_cast<std::size_t>(c.n * h_out * w_out * c.c_out), 0.0);
  for (std::int64_t n = 0; n < c.n; ++n) {
    for (std::int64_t y = 0; y < h_out; ++y) {
      for (std::int64_t x = 0; x < w_out; ++x) {
        for (std::int64_t i = 0; i < c.k; ++i) {
          for (std::int64_t j = 0; j < c.k; ++j) {
            const std::int64_t row = y * c.stride + i - c.padding;
            const std::int64_t col = x * c.stride + j - c.padding;
            if (row < 0 || row >= c.h || col < 0 || col >= c.w) continue;
            for (std::int64_t ci = 0; ci < c.c_in; ++ci) {
              for (std::int64_t o = 0; o < c.c_out; ++o) {
                out[static_cast<std::size_t>(((n * h_out + y) * w_out + x) * c.c_out + o)] +=
                    a[static_cast<std::size_t>(((n * c.h + row) * c.w + col) * c.c_in + ci)] *
                    b[static_cast<std::size_t>(((i * c.k + j) * c.c_in + ci) * c.c_out + o)];
              }
            }
          }
        }
      }
    }
  }
  return out;
}

// Strides 1-3, paddings 0-3 (some >= K, so K - 1 - p < 0), K = 1, 2, 3, 5, batch > 1, C_in != C_out, and
// H, W with (H + 2p - K) % stride != 0.
const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {2, 5, 5, 2, 3, 3, 1, 1},  // same-size output
      {1, 5, 4, 2, 2, 3, 2, 0},  // W: (4 - 3) % 2 = 1
      {2, 6, 5, 1, 2, 2, 3, 1},  // W: (5 + 2 - 2) % 3 = 2
      {1, 4, 4, 2, 1, 1, 2, 3},  // K = 1 with padding 3 (a crop in the backward), 9 % 2 = 1
      {1, 3, 4, 1, 2, 5, 1, 2},  // K = 5 bigger than H
      {1, 4, 5, 2, 2, 3, 3, 3},  // padding = K, stride 3: 7 % 3 = 1 and 8 % 3 = 2
      {1, 7, 6, 1, 1, 5, 2, 0},  // K = 5, stride 2, W: 1 % 2 = 1
      {2, 3, 3, 2, 2, 2, 2, 2},  // padding = K = 2: 5 % 2 = 1
      {1, 6, 7, 3, 2, 2, 1, 0},  // K = 2, no padding
  };
  return cases;
}

class ConvOpsTest : public ::testing::TestWithParam<Device> {};

TEST_P(ConvOpsTest, ForwardMatchesADirectLoop) {
  std::uint64_t seed = 100;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(describe(c));
    const NDArray a = random_array({c.n, c.h, c.w, c.c_in}, GetParam(), ++seed);
    const NDArray b = random_array({c.k, c.k, c.c_in, c.c_out}, GetParam(), ++seed);
    const Tensor out = ops::conv(Tensor(a), Tensor(b), c.stride, c.padding);
    const std::int64_t h_out = (c.h + 2 * c.padding - c.k) / c.stride + 1;
    const std::int64_t w_out = (c.w + 2 * c.padding - c.k) / c.stride + 1;
    ASSERT_EQ(out.shape(), (Shape{c.n, h_out, w_out, c.c_out}));
    const std::vector<double> expected = direct_conv(values_of(Tensor(a)), values_of(Tensor(b)), c);
    const std::vector<double> got = values_of(out);
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], expected[i], 1e-12) << "at element " << i;
  }
}

TEST_P(ConvOpsTest, ForwardAcceptsViewsAndFloat32) {
  const ConvCase c{2, 4, 5, 3, 2, 3, 2, 1};
  // The input as a permuted (non-compact) view of an NCHW array, the weight as a flipped view.
  const NDArray nchw = random_array({c.n, c.c_in, c.h, c.w}, GetParam(), 7);
  const NDArray a = nchw.permute({0, 2, 3, 1});
  const NDArray b = random_array({c.k, c.k, c.c_in, c.c_out}, GetParam(), 8).flip_view({0});
  const std::vector<double> expected = direct_conv(values_of(Tensor(a)), values_of(Tensor(b)), c);
  const std::vector<double> got = values_of(ops::conv(Tensor(a), Tensor(b), c.stride, c.padding));
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-12);
  const Tensor out32 =
      ops::conv(Tensor(a.astype(DType::Float32)), Tensor(b.astype(DType::Float32)), c.stride, c.padding);
  EXPECT_EQ(out32.dtype(), DType::Float32);
  const std::vector<double> got32 = values_of(out32);
  for (std::size_t i = 0; i < got32.size(); ++i) EXPECT_NEAR(got32[i], expected[i], 1e-5);
}

TEST_P(ConvOpsTest, GradientsMatchFiniteDifferences) {
  std::uint64_t seed = 200;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(describe(c));
    const NDArray a = random_array({c.n, c.h, c.w, c.c_in}, GetParam(), ++seed);
    const NDArray b = random_array({c.k, c.k, c.c_in, c.c_out}, GetParam(), ++seed);
    expect_gradients_match([&c](const V& t) { return ops::conv(t[0], t[1], c.stride, c.padding); }, {a, b});
  }
}

TEST_P(ConvOpsTest, GradientsAreThemselvesDifferentiable) {
  // Stride 2 with a never-read last row: the second derivative runs through conv_input_grad (col2im) and
  // conv_weight_grad, whose own gradients are conv and each other.
  const ConvCase c{1, 4, 3, 2, 2, 2, 2, 1};
  const NDArray a = random_array({c.n, c.h, c.w, c.c_in}, GetParam(), 300);
  const NDArray b = random_array({c.k, c.k, c.c_in, c.c_out}, GetParam(), 301);
  const auto f = [&c](const V& t) { return ops::conv(t[0], t[1], c.stride, c.padding); };
  expect_second_gradients_match(f, {a, b}, 1e-5, 1e-5);
  expect_second_gradients_match([&f](const V& t) { return f({t[1], t[0]}); }, {b, a}, 1e-5, 1e-5);
}

TEST_P(ConvOpsTest, BadArgumentsRaiseClearErrors) {
  const Tensor a(random_array({1, 4, 4, 2}, GetParam(), 1));
  const Tensor b(random_array({3, 3, 2, 5}, GetParam(), 2));
  expect_error<ValueError>(
      [&] {
        (void)ops::conv(ops::reshape(a, {4, 4, 2}), b);
      },
      "conv: expected input (N, H, W, C_in) and weight (K, K, C_in, C_out), got shapes "
      "(4, 4, 2) and (3, 3, 2, 5)");
  expect_error<ValueError>([&] { (void)ops::conv(a, ops::reshape(b, {3, 3, 10})); }, "conv: expected input");
  expect_error<ValueError>(
      [&] {
        (void)ops::conv(a, ops::reshape(b, {3, 3, 5, 2}));
      },
      "conv: input channels 2 do not match weight's C_in 5 (shapes (1, 4, 4, 2) and (3, 3, 5, 2))");
  expect_error<ValueError>(
      [&] {
        (void)ops::conv(a, ops::reshape(b, {1, 9, 2, 5}));
      },
      "conv: weight must be a square kernel");
  expect_error<ValueError>([&] { (void)ops::conv(a, b, 0); }, "conv: stride must be >= 1, got 0");
  expect_error<ValueError>([&] { (void)ops::conv(a, b, 1, -1); }, "conv: padding must be >= 0, got -1");
  const Tensor big(random_array({6, 6, 2, 1}, GetParam(), 3));
  expect_error<ValueError>([&] { (void)ops::conv(a, big, 1, 0); },
                           "conv: kernel size 6 exceeds the padded input (padding 0, shapes (1, 4, 4, 2) and "
                           "(6, 6, 2, 1))");
  EXPECT_EQ(ops::conv(a, big, 1, 1).shape(), (Shape{1, 1, 1, 1}));  // padding makes room
  // Mixed float32/float64 operands promote, as in every op; each gradient comes back in its own dtype.
  const Tensor w32 = ops::astype(b, DType::Float32);
  const Tensor mixed = ops::conv(a, w32);
  EXPECT_EQ(mixed.dtype(), DType::Float64);
  EXPECT_EQ(values_of(mixed), values_of(ops::conv(a, ops::astype(w32, DType::Float64))));
  expect_error<TypeError>([&] { (void)ops::conv(ops::astype(a, DType::Int32), ops::astype(b, DType::Int32)); },
                          "conv: expected a floating-point tensor");
}

INSTANTIATE_TEST_SUITE_P(Devices, ConvOpsTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
