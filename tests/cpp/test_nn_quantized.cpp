// int8 layers: QuantizedLinear and QuantizedConv against a host emulation of the scheme (per-channel weight
// scales, per-row or static activation scales, round half to even, exact integer sums), the quantized
// layers close to the float layers they replace, QuantizedLSTM against LSTM, quantize_dynamic inside a
// Transformer (cached generation still equals uncached), saving and loading, no gradient, and errors.
#include <gtest/gtest.h>
#include <needle/needle.h>
#include <needle/nn/quantized.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "file_test_util.h"
#include "gradcheck.h"
#include "nn_test_util.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_all_near;
using testing::expect_error;
using testing::host;
using testing::random_array;
using Vec = std::vector<double>;

// The int8 value of v / scale (round half to even, clamped to +-127), computed in float32 as the kernels do.
double quantize_value(float v, float inverse) {
  const float q = std::nearbyint(v * inverse);
  return std::clamp(q, -127.0F, 127.0F);
}

// rows x cols float32 values quantized per row: (values, scales), scale = max |row| / 127.
std::pair<Vec, Vec> quantize_rows_on_host(const Vec& x, std::size_t rows, std::size_t cols) {
  Vec values(x.size());
  Vec scales(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    float amax = 0.0F;
    for (std::size_t c = 0; c < cols; ++c) amax = std::max(amax, std::abs(static_cast<float>(x[r * cols + c])));
    const float scale = amax == 0.0F ? 1.0F : amax / 127.0F;
    const float inverse = amax == 0.0F ? 0.0F : 127.0F / amax;
    scales[r] = scale;
    for (std::size_t c = 0; c < cols; ++c)
      values[r * cols + c] = quantize_value(static_cast<float>(x[r * cols + c]), inverse);
  }
  return {values, scales};
}

// y (rows, out) = (qx @ qwᵀ) * sx * sw + bias, every product exact.
Vec emulate_int8_linear(const Vec& x, const std::pair<Vec, Vec>& qx, const std::pair<Vec, Vec>& qw, const Vec& bias,
                        std::size_t rows, std::size_t in, std::size_t out) {
  (void)x;
  Vec y(rows * out);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t o = 0; o < out; ++o) {
      double acc = 0.0;
      for (std::size_t k = 0; k < in; ++k) acc += qx.first[r * in + k] * qw.first[o * in + k];
      const auto scale = static_cast<float>(qx.second[r]) * static_cast<float>(qw.second[o]);
      y[r * out + o] = std::fma(static_cast<float>(acc), scale, bias.empty() ? 0.0F : static_cast<float>(bias[o]));
    }
  }
  return y;
}

// The relative size of the difference between two results: |a - b|_max / |b|_max.
double relative_error(const Vec& a, const Vec& b) {
  double diff = 0.0;
  double size = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    size = std::max(size, std::abs(b[i]));
  }
  return diff / size;
}

class NnQuantized : public ::testing::TestWithParam<Device> {};

TEST_P(NnQuantized, LinearFollowsTheSchemeAndStaysCloseToTheFloatLayer) {
  const Device device = GetParam();
  for (const bool bias : {true, false}) {
    nn::Linear linear(37, 19, bias, device);
    const auto quantized = nn::QuantizedLinear::from_linear(linear);
    EXPECT_EQ(quantized->buffer("weight").dtype(), DType::Int8);
    EXPECT_EQ(quantized->buffer("weight").shape(), (Shape{19, 37}));
    const Tensor x(random_array({2, 5, 37}, device, 3, -2.0, 2.0).astype(DType::Float32));
    const Vec actual = host((*quantized)(x));
    // The weight (in, out) transposed to (out, in) and quantized per output channel.
    const auto qw = quantize_rows_on_host(host(linear.weight().value().swapaxes(0, 1)), 19, 37);
    const auto qx = quantize_rows_on_host(host(x), 10, 37);
    const Vec b = bias ? host(linear.bias()) : Vec{};
    expect_all_near(actual, emulate_int8_linear(host(x), qx, qw, b, 10, 37, 19), 1e-6);
    EXPECT_LT(relative_error(actual, host(linear(x))), 0.02);
    EXPECT_EQ((*quantized)(x).shape(), (Shape{2, 5, 19}));
  }
}

TEST_P(NnQuantized, StaticInputScaleQuantizesEveryRowWithIt) {
  const Device device = GetParam();
  nn::Linear linear(8, 4, true, device);
  const auto quantized = nn::QuantizedLinear::from_linear(linear);
  quantized->set_input_scale(0.05);
  EXPECT_NEAR(quantized->input_scale(), 0.05, 1e-8);
  const Vec x = {0.025, -0.075, 0.125, 10.0, -10.0, 0.0, 0.049, 0.051};  // ties go to even; +-10 clamp to +-127
  const Tensor input(NDArray::from_vector(x, {1, 8}, device).astype(DType::Float32));
  Vec qx(8);
  for (std::size_t k = 0; k < 8; ++k) qx[k] = quantize_value(static_cast<float>(x[k]), 1.0F / 0.05F);
  EXPECT_EQ(qx, (Vec{0, -2, 2, 127, -127, 0, 1, 1}));
  const auto qw = quantize_rows_on_host(host(linear.weight().value().swapaxes(0, 1)), 4, 8);
  expect_all_near(host((*quantized)(input)), emulate_int8_linear(x, {qx, Vec{0.05}}, qw, host(linear.bias()), 1, 8, 4),
                  1e-6);
  expect_error<ValueError>([&] { quantized->set_input_scale(-1.0); }, "input_scale must be finite and >= 0");
}

TEST_P(NnQuantized, ConvWithCalibratedScaleMatchesTheSchemeOnIm2colRows) {
  const Device device = GetParam();
  nn::Conv conv(3, 5, 3, 2, true, device);  // stride 2, padding 1
  const Tensor x(random_array({2, 3, 7, 6}, device, 11, -1.0, 1.0).astype(DType::Float32));
  const double scale = 1.0 / 127.0;  // the inputs' range
  const auto quantized = nn::QuantizedConv::from_conv(conv, scale);
  const Vec actual = host((*quantized)(x));
  const Vec expected = host(conv(x));
  ASSERT_EQ(actual.size(), expected.size());
  EXPECT_LT(relative_error(actual, expected), 0.02);
  // The same product by the emulation: im2col rows quantized with the static scale.
  const NDArray cols = im2col(x.value().permute({0, 2, 3, 1}), 3, 2, 1);
  const std::size_t rows = static_cast<std::size_t>(cols.size() / 27);
  const Vec col_values = host(cols);
  Vec qx(col_values.size());
  for (std::size_t i = 0; i < qx.size(); ++i) qx[i] = quantize_value(static_cast<float>(col_values[i]), 127.0F);
  const auto qw = quantize_rows_on_host(host(conv.weight().value().reshape({27, 5}).swapaxes(0, 1)), 5, 27);
  const Vec per_row = emulate_int8_linear(col_values, {qx, Vec(rows, scale)}, qw, host(conv.bias()), rows, 27, 5);
  // (N, H_out, W_out, C_out) -> (N, C_out, H_out, W_out)
  const Shape out_shape = (*quantized)(x).shape();
  const auto n = static_cast<std::size_t>(out_shape[0]);
  const auto h = static_cast<std::size_t>(out_shape[2]);
  const auto w = static_cast<std::size_t>(out_shape[3]);
  Vec nchw(per_row.size());
  for (std::size_t i = 0; i < n * h * w; ++i) {
    for (std::size_t c = 0; c < 5; ++c) nchw[((i / (h * w)) * 5 + c) * h * w + i % (h * w)] = per_row[i * 5 + c];
  }
  expect_all_near(actual, nchw, 1e-6);
}

TEST_P(NnQuantized, LstmStaysCloseToTheFloatLstmWithAndWithoutInitialState) {
  const Device device = GetParam();
  nn::LSTM lstm(6, 10, 2, true, device);
  const auto quantized = nn::QuantizedLSTM::from_lstm(lstm);
  const Tensor x(random_array({5, 3, 6}, device, 21).astype(DType::Float32));
  const Tensor h0(random_array({2, 3, 10}, device, 22, -0.5, 0.5).astype(DType::Float32));
  const Tensor c0(random_array({2, 3, 10}, device, 23, -0.5, 0.5).astype(DType::Float32));
  for (const bool with_state : {false, true}) {
    const std::pair<Tensor, Tensor> state = with_state ? std::make_pair(h0, c0) : std::pair<Tensor, Tensor>{};
    const auto [out, final] = lstm(x, state);
    const auto [qout, qfinal] = (*quantized)(x, state);
    EXPECT_EQ(qout.shape(), out.shape());
    EXPECT_LT(relative_error(host(qout), host(out)), 0.03);
    EXPECT_LT(relative_error(host(qfinal.second), host(final.second)), 0.03);
  }
}

TEST_P(NnQuantized, QuantizeDynamicSwapsEveryProjectionInsideATransformer) {
  const Device device = GetParam();
  nn::Transformer model(17, 32, 2, 4, 64, 24, 0.0, true, device);
  model.eval();
  const NDArray prompt = random_array({2, 6}, device, 5, 0.0, 16.99).astype(DType::Int64);
  const Vec float_logits = host(model(Tensor(prompt)));
  // Per layer q, k, v, out and the MLP's two, and the head.
  EXPECT_EQ(nn::quantize_dynamic(model), 2 * 6 + 1);
  EXPECT_EQ(nn::quantize_dynamic(model), 0);
  EXPECT_EQ(model.child("head")->name(), "QuantizedLinear");
  EXPECT_EQ(model.num_layers(), 2);
  const Vec int8_logits = host(model(Tensor(prompt)));
  EXPECT_LT(relative_error(int8_logits, float_logits), 0.05);
  const std::vector<std::int64_t> cached = model.generate(prompt, 8, {.temperature = 0.0}).to_vector<std::int64_t>();
  EXPECT_EQ(model.generate(prompt, 8, {.temperature = 0.0, .use_cache = false}).to_vector<std::int64_t>(), cached);
}

TEST_P(NnQuantized, SavedQuantizedWeightsLoadIntoAFreshlyQuantizedModel) {
  const Device device = GetParam();
  nn::Sequential model({std::make_shared<nn::Linear>(12, 16, true, device), std::make_shared<nn::ReLU>(),
                        std::make_shared<nn::Linear>(16, 3, true, device)});
  EXPECT_EQ(nn::quantize_dynamic(model), 2);
  const testing::TempDir folder;
  const std::string path = folder.file("int8.safetensors");
  io::save_safetensors(path, model.state_dict());
  nn::Sequential other({std::make_shared<nn::Linear>(12, 16, true, device), std::make_shared<nn::ReLU>(),
                        std::make_shared<nn::Linear>(16, 3, true, device)});
  nn::quantize_dynamic(other);
  other.load_state_dict(io::load_safetensors(path, device));
  const Tensor x(random_array({4, 12}, device, 9).astype(DType::Float32));
  EXPECT_EQ(host(other(x)), host(model(x)));
}

TEST_P(NnQuantized, QuantizedLayersHaveNoGradientAndCheckTheirInput) {
  const Device device = GetParam();
  nn::Linear linear(4, 2, true, device);
  const auto quantized = nn::QuantizedLinear::from_linear(linear);
  const Tensor x(random_array({3, 4}, device, 1).astype(DType::Float32), /*requires_grad=*/true);
  const Tensor y = ops::summation((*quantized)(x));
  expect_error<RuntimeError>([&] { y.backward(); }, "quantized_linear: int8 layers are for inference");
  expect_error<ValueError>(
      [&] {
        (void)(*quantized)(Tensor(NDArray::ones({3, 5}, DType::Float32, device)));
      },
      "QuantizedLinear: expected input with last dimension 4, got shape (3, 5)");
  nn::Conv conv(2, 3, 3, 1, true, device);
  const auto qconv = nn::QuantizedConv::from_conv(conv, 0.1);
  expect_error<ValueError>(
      [&] {
        (void)(*qconv)(Tensor(NDArray::ones({1, 3, 5, 5}, DType::Float32, device)));
      },
      "QuantizedConv: expected input with channels (dimension 1) 2, got shape (1, 3, 5, 5)");
  expect_error<ValueError>(
      [&] { (void)nn::QuantizedLinear::from_weight(NDArray::ones({3}, DType::Float32, device), NDArray()); },
      "QuantizedLinear: expected a float weight (out, in)");
}

INSTANTIATE_TEST_SUITE_P(Devices, NnQuantized, ::testing::Values(cpu_device(), ref_device()),
                         [](const auto& info) { return info.param.name(); });

TEST(QuantizeWithScale, RoundsHalfToEvenClampsAndRejectsNan) {
  const NDArray x = NDArray::from_vector(std::vector<double>{0.5, 1.5, 2.5, -0.5, -2.5, 126.6, 300.0, -300.0}, {8});
  EXPECT_EQ(host(quantize_with_scale(x, 1.0)), (Vec{0, 2, 2, 0, -2, 127, 127, -127}));
  EXPECT_EQ(quantize_with_scale(x, 1.0).dtype(), DType::Int8);
  expect_error<ValueError>(
      [] {
        (void)quantize_with_scale(NDArray::from_vector(std::vector<double>{1.0, NAN}, {2}), 1.0);
      },
      "NaN");
  expect_error<ValueError>([&] { (void)quantize_with_scale(x, 0.0); }, "scale must be finite and > 0");
  expect_error<TypeError>([] { (void)quantize_with_scale(NDArray::ones({2}, DType::Int32), 1.0); }, "float32");
}

}  // namespace
}  // namespace needle
