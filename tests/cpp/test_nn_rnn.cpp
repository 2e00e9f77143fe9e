// Recurrent layers against step-by-step host computations of Needle's hw4 formulas: RNNCell (tanh, relu,
// with and without bias), LSTMCell (gates i, f, g, o), multi-layer RNN and LSTM with and without initial
// states; gradients of parameters, inputs and initial states by finite differences; shape errors.
#include <gtest/gtest.h>
#include <needle/needle.h>
#include <needle/nn/layers.h>

#include <cmath>
#include <tuple>
#include <utility>
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

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// x @ W_ih + h @ W_hh + bias_ih + bias_hh for a batch of rows; width = the number of gate columns.
Vec host_pre_activation(const Vec& x, const Vec& h, const Vec& w_ih, const Vec& w_hh, const Vec& b_ih, const Vec& b_hh,
                        std::size_t batch, std::size_t input, std::size_t hidden, std::size_t width) {
  Vec z = host_matmul(x, w_ih, batch, input, width);
  const Vec zh = host_matmul(h, w_hh, batch, hidden, width);
  for (std::size_t i = 0; i < z.size(); ++i) {
    z[i] += zh[i];
    if (!b_ih.empty()) z[i] += b_ih[i % width] + b_hh[i % width];
  }
  return z;
}

Vec host_rnn_step(const nn::RNNCell& cell, const Vec& x, const Vec& h, std::size_t batch) {
  const auto input = static_cast<std::size_t>(cell.input_size());
  const auto hidden = static_cast<std::size_t>(cell.hidden_size());
  const bool has_bias = cell.bias_ih().defined();
  Vec z = host_pre_activation(x, h, host(cell.W_ih()), host(cell.W_hh()), has_bias ? host(cell.bias_ih()) : Vec{},
                              has_bias ? host(cell.bias_hh()) : Vec{}, batch, input, hidden, hidden);
  for (double& v : z) v = cell.nonlinearity() == "tanh" ? std::tanh(v) : std::max(v, 0.0);
  return z;
}

// One LSTM step on the host: returns (h', c').
std::pair<Vec, Vec> host_lstm_step(const nn::LSTMCell& cell, const Vec& x, const Vec& h, const Vec& c,
                                   std::size_t batch) {
  const auto input = static_cast<std::size_t>(cell.input_size());
  const auto hidden = static_cast<std::size_t>(cell.hidden_size());
  const bool has_bias = cell.bias_ih().defined();
  const Vec z = host_pre_activation(x, h, host(cell.W_ih()), host(cell.W_hh()), has_bias ? host(cell.bias_ih()) : Vec{},
                                    has_bias ? host(cell.bias_hh()) : Vec{}, batch, input, hidden, 4 * hidden);
  Vec h_next(batch * hidden);
  Vec c_next(batch * hidden);
  for (std::size_t b = 0; b < batch; ++b) {
    for (std::size_t k = 0; k < hidden; ++k) {
      const auto gate = [&](std::size_t g) { return z[b * 4 * hidden + g * hidden + k]; };
      const double i = sigmoid(gate(0));
      const double f = sigmoid(gate(1));
      const double g = std::tanh(gate(2));
      const double o = sigmoid(gate(3));
      c_next[b * hidden + k] = f * c[b * hidden + k] + i * g;
      h_next[b * hidden + k] = o * std::tanh(c_next[b * hidden + k]);
    }
  }
  return {h_next, c_next};
}

// Rows [t * size, (t + 1) * size) of a host vector (one time step or one layer of a stacked tensor).
Vec slice(const Vec& v, std::size_t t, std::size_t size) {
  return {v.begin() + static_cast<std::ptrdiff_t>(t * size), v.begin() + static_cast<std::ptrdiff_t>((t + 1) * size)};
}

// All outputs of a sequence layer flattened into one tensor, so one gradient check covers them.
Tensor flat_concat(const std::vector<Tensor>& parts) {
  std::vector<Tensor> flat;
  flat.reserve(parts.size());
  for (const Tensor& t : parts) flat.push_back(ops::reshape(t, {t.size()}));
  return ops::concat(flat, 0);
}

class NnRnnTest : public ::testing::TestWithParam<Device> {};

TEST_P(NnRnnTest, RnnCellMatchesItsFormula) {
  const Device d = GetParam();
  const NDArray x = random_array({2, 3}, d, 1);
  const NDArray h = random_array({2, 4}, d, 2);
  for (const char* nonlinearity : {"tanh", "relu"}) {
    for (bool bias : {true, false}) {
      SCOPED_TRACE(str(nonlinearity, bias ? " with bias" : " without bias"));
      nn::RNNCell cell(3, 4, bias, nonlinearity, d, kF64);
      expect_all_near(host(cell(Tensor(x), Tensor(h))), host_rnn_step(cell, host(x), host(h), 2));
      expect_all_near(host(cell(Tensor(x))), host_rnn_step(cell, host(x), Vec(8, 0.0), 2));  // no h: zeros
      expect_gradients_match([&](const V& in) { return cell(in[0], in[1]); }, {x, h});
      expect_parameter_gradients_match(cell, [&] { return cell(Tensor(x), Tensor(h)); });
    }
  }
  nn::RNNCell cell(3, 4, true, "tanh", d, kF64);
  expect_error<ValueError>(
      [&] {
        (void)cell(Tensor(random_array({2, 5}, d, 1)));
      },
      "RNNCell: expected input with input_size (dimension 1) 3, got shape (2, 5)");
  expect_error<ValueError>(
      [&] {
        (void)cell(Tensor(x), Tensor(random_array({3, 4}, d, 1)));
      },
      "RNNCell: expected h of shape (2, 4) for input of shape (2, 3), got shape (3, 4)");
  expect_error<ValueError>([&] { nn::RNNCell bad(3, 4, true, "sigmoid"); },
                           "RNNCell: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'");
}

TEST_P(NnRnnTest, LstmCellMatchesItsFormula) {
  const Device d = GetParam();
  const NDArray x = random_array({2, 3}, d, 3);
  const NDArray h = random_array({2, 2}, d, 4);
  const NDArray c = random_array({2, 2}, d, 5);
  nn::LSTMCell cell(3, 2, true, d, kF64);
  EXPECT_EQ(cell.W_ih().shape(), (Shape{3, 8}));
  const auto [h_next, c_next] = cell(Tensor(x), {Tensor(h), Tensor(c)});
  const auto [h_expected, c_expected] = host_lstm_step(cell, host(x), host(h), host(c), 2);
  expect_all_near(host(h_next), h_expected);
  expect_all_near(host(c_next), c_expected);
  const auto [h_zero, c_zero] = cell(Tensor(x));
  expect_all_near(host(h_zero), host_lstm_step(cell, host(x), Vec(4, 0.0), Vec(4, 0.0), 2).first);
  expect_gradients_match(
      [&](const V& in) {
        const auto [hn, cn] = cell(in[0], {in[1], in[2]});
        return flat_concat({hn, cn});
      },
      {x, h, c});
  expect_parameter_gradients_match(cell, [&] {
    const auto [hn, cn] = cell(Tensor(x), {Tensor(h), Tensor(c)});
    return flat_concat({hn, cn});
  });
  nn::LSTMCell no_bias(3, 2, false, d, kF64);
  EXPECT_EQ(no_bias.parameters().size(), 2U);
  expect_all_near(host(no_bias(Tensor(x), {Tensor(h), Tensor(c)}).first),
                  host_lstm_step(no_bias, host(x), host(h), host(c), 2).first);
}

TEST_P(NnRnnTest, MultiLayerRnnUnrollsItsCells) {
  const Device d = GetParam();
  const std::size_t seq = 3;
  const std::size_t batch = 2;
  const std::size_t hidden = 3;
  nn::RNN rnn(2, 3, 2, true, "tanh", d, kF64);
  const NDArray x = random_array({3, 2, 2}, d, 6);
  const NDArray h0 = random_array({2, 2, 3}, d, 7);
  for (bool with_state : {true, false}) {
    SCOPED_TRACE(with_state ? "with h0" : "without h0");
    const auto [output, h_n] = with_state ? rnn(Tensor(x), Tensor(h0)) : rnn(Tensor(x));
    EXPECT_EQ(output.shape(), (Shape{3, 2, 3}));
    EXPECT_EQ(h_n.shape(), (Shape{2, 2, 3}));
    // Layer by layer, step by step, on the host.
    std::vector<Vec> inputs;
    for (std::size_t t = 0; t < seq; ++t) inputs.push_back(slice(host(x), t, batch * 2));
    Vec finals;
    for (std::size_t l = 0; l < 2; ++l) {
      Vec h = with_state ? slice(host(h0), l, batch * hidden) : Vec(batch * hidden, 0.0);
      for (Vec& step : inputs) {
        h = host_rnn_step(*rnn.cell(static_cast<std::int64_t>(l)), step, h, batch);
        step = h;
      }
      finals.insert(finals.end(), h.begin(), h.end());
    }
    Vec expected_output;
    for (const Vec& step : inputs) expected_output.insert(expected_output.end(), step.begin(), step.end());
    expect_all_near(host(output), expected_output);
    expect_all_near(host(h_n), finals);
  }
  expect_gradients_match(
      [&](const V& in) {
        const auto [output, h_n] = rnn(in[0], in[1]);
        return flat_concat({output, h_n});
      },
      {x, h0});
  expect_parameter_gradients_match(rnn, [&] {
    const auto [output, h_n] = rnn(Tensor(x), Tensor(h0));
    return flat_concat({output, h_n});
  });
  expect_error<ValueError>(
      [&] {
        (void)rnn(Tensor(random_array({3, 2}, d, 1)));
      },
      "RNN: expected input (seq_len, batch, input_size) with 3 dimensions, got shape (3, 2)");
  expect_error<ValueError>(
      [&] {
        (void)rnn(Tensor(x), Tensor(random_array({1, 2, 3}, d, 1)));
      },
      "RNN: expected h0 of shape (2, 2, 3) for input of shape (3, 2, 2), got shape (1, 2, 3)");
}

TEST_P(NnRnnTest, MultiLayerLstmUnrollsItsCells) {
  const Device d = GetParam();
  const std::size_t seq = 3;
  const std::size_t batch = 2;
  const std::size_t hidden = 2;
  nn::LSTM lstm(3, 2, 2, true, d, kF64);
  const NDArray x = random_array({3, 2, 3}, d, 8);
  const NDArray h0 = random_array({2, 2, 2}, d, 9);
  const NDArray c0 = random_array({2, 2, 2}, d, 10);
  for (bool with_state : {true, false}) {
    SCOPED_TRACE(with_state ? "with (h0, c0)" : "without a state");
    const auto [output, state] = with_state ? lstm(Tensor(x), {Tensor(h0), Tensor(c0)}) : lstm(Tensor(x));
    std::vector<Vec> inputs;
    for (std::size_t t = 0; t < seq; ++t) inputs.push_back(slice(host(x), t, batch * 3));
    Vec h_finals;
    Vec c_finals;
    for (std::size_t l = 0; l < 2; ++l) {
      Vec h = with_state ? slice(host(h0), l, batch * hidden) : Vec(batch * hidden, 0.0);
      Vec c = with_state ? slice(host(c0), l, batch * hidden) : Vec(batch * hidden, 0.0);
      for (Vec& step : inputs) {
        std::tie(h, c) = host_lstm_step(*lstm.cell(static_cast<std::int64_t>(l)), step, h, c, batch);
        step = h;
      }
      h_finals.insert(h_finals.end(), h.begin(), h.end());
      c_finals.insert(c_finals.end(), c.begin(), c.end());
    }
    Vec expected_output;
    for (const Vec& step : inputs) expected_output.insert(expected_output.end(), step.begin(), step.end());
    expect_all_near(host(output), expected_output);
    expect_all_near(host(state.first), h_finals);
    expect_all_near(host(state.second), c_finals);
  }
  expect_gradients_match(
      [&](const V& in) {
        const auto [output, state] = lstm(in[0], {in[1], in[2]});
        return flat_concat({output, state.first, state.second});
      },
      {x, h0, c0});
  expect_parameter_gradients_match(lstm, [&] {
    const auto [output, state] = lstm(Tensor(x), {Tensor(h0), Tensor(c0)});
    return flat_concat({output, state.first, state.second});
  });
  expect_error<ValueError>(
      [&] {
        (void)lstm(Tensor(x), {Tensor(h0), Tensor(random_array({2, 3, 2}, d, 1))});
      },
      "LSTM: expected c0 of shape (2, 2, 2) for input of shape (3, 2, 3), got shape (2, 3, 2)");
  expect_error<IndexError>([&] { (void)lstm.cell(2); }, "LSTM: layer 2 is out of range for 2 layers");
}

INSTANTIATE_TEST_SUITE_P(Devices, NnRnnTest, ::testing::ValuesIn(testing::test_devices()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
