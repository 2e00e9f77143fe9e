// Recurrent layers (Needle's hw4): RNNCell, LSTMCell, and the multi-layer RNN and LSTM that unroll them
// over the first axis of (seq_len, batch, input_size).
#include <cmath>

#include "needle/nn/init.h"
#include "needle/nn/layers.h"
#include "needle/ops/ops.h"
#include "nn/layer_util.h"

namespace needle::nn {

namespace {

// Uniform in +-sqrt(1 / hidden_size), Needle's (and PyTorch's) initialization of every recurrent weight.
NDArray recurrent_init(const Shape& shape, std::int64_t hidden_size, Device device, DType dtype) {
  const double bound = std::sqrt(1.0 / static_cast<double>(hidden_size));
  return init::uniform(shape, -bound, bound, dtype, device);
}

// x (batch, input_size) and, when defined, a state (batch, hidden_size): checked with the layer's name.
void check_step(std::string_view layer, const Tensor& x, std::int64_t input_size, const Tensor& state,
                std::string_view state_name, std::int64_t hidden_size) {
  detail::expect_ndim(layer, x, 2, "(batch, input_size)");
  detail::expect_dim(layer, x, 1, input_size, "input_size (dimension 1)");
  if (!state.defined()) return;
  NEEDLE_CHECK(state.ndim() == 2 && state.shape()[0] == x.shape()[0] && state.shape()[1] == hidden_size, ValueError,
               layer, ": expected ", state_name, " of shape (", x.shape()[0], ", ", hidden_size,
               ") for input of shape ", shape_str(x.shape()), ", got shape ", shape_str(state.shape()));
  NEEDLE_CHECK(state.device() == x.device(), RuntimeError, layer, ": input is on device ", x.device(), " but ",
               state_name, " is on device ", state.device());
}

// x @ W_ih + h @ W_hh (+ both biases): the pre-activation every recurrent cell starts from. An undefined
// h is the zero state, whose product is skipped.
Tensor pre_activation(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh, const Tensor& bias_ih,
                      const Tensor& bias_hh) {
  Tensor z = ops::matmul(x, w_ih);
  if (h.defined()) z = z + ops::matmul(h, w_hh);
  if (bias_ih.defined()) z = z + bias_ih + bias_hh;  // (G * hidden,) broadcasts over the batch
  return z;
}

}  // namespace

// Checks a stacked initial state (num_layers, batch, hidden_size) and splits it by layer (undefined:
// undefined states for every layer).
std::vector<Tensor> detail::layer_states(std::string_view layer, const Tensor& state, std::string_view state_name,
                                         const Tensor& x, std::int64_t num_layers, std::int64_t hidden_size) {
  if (!state.defined()) return std::vector<Tensor>(static_cast<std::size_t>(num_layers));
  NEEDLE_CHECK(state.ndim() == 3 && state.shape()[0] == num_layers && state.shape()[1] == x.shape()[1] &&
                   state.shape()[2] == hidden_size,
               ValueError, layer, ": expected ", state_name, " of shape (", num_layers, ", ", x.shape()[1], ", ",
               hidden_size, ") for input of shape ", shape_str(x.shape()), ", got shape ", shape_str(state.shape()));
  return ops::split(state, 0);
}

void detail::check_sequence(std::string_view layer, const Tensor& x, std::int64_t input_size) {
  detail::expect_ndim(layer, x, 3, "(seq_len, batch, input_size)");
  detail::expect_dim(layer, x, 2, input_size, "input_size (dimension 2)");
  NEEDLE_CHECK(x.shape()[0] >= 1, ValueError, layer, ": expected at least one time step, got shape ",
               shape_str(x.shape()));
}

RNNCell::RNNCell(std::int64_t input_size, std::int64_t hidden_size, bool bias, const std::string& nonlinearity,
                 Device device, DType dtype)
    : input_size_(input_size), hidden_size_(hidden_size), nonlinearity_(nonlinearity) {
  detail::expect_positive("RNNCell", "input_size", input_size);
  detail::expect_positive("RNNCell", "hidden_size", hidden_size);
  NEEDLE_CHECK(nonlinearity == "tanh" || nonlinearity == "relu", ValueError,
               "RNNCell: nonlinearity must be 'tanh' or 'relu', got '", nonlinearity, "'");
  register_parameter("W_ih", recurrent_init({input_size, hidden_size}, hidden_size, device, dtype));
  register_parameter("W_hh", recurrent_init({hidden_size, hidden_size}, hidden_size, device, dtype));
  if (bias) {
    register_parameter("bias_ih", recurrent_init({hidden_size}, hidden_size, device, dtype));
    register_parameter("bias_hh", recurrent_init({hidden_size}, hidden_size, device, dtype));
  }
}

Tensor RNNCell::forward(const Tensor& x, const Tensor& h) {
  check_step("RNNCell", x, input_size_, h, "h", hidden_size_);
  const Tensor w_ih = W_ih();
  check_device(x, w_ih.device());
  const Tensor z = pre_activation(x, h, w_ih, W_hh(), bias_ih(), bias_hh());
  return nonlinearity_ == "tanh" ? ops::tanh(z) : ops::relu(z);
}

LSTMCell::LSTMCell(std::int64_t input_size, std::int64_t hidden_size, bool bias, Device device, DType dtype)
    : input_size_(input_size), hidden_size_(hidden_size) {
  detail::expect_positive("LSTMCell", "input_size", input_size);
  detail::expect_positive("LSTMCell", "hidden_size", hidden_size);
  const std::int64_t gates = 4 * hidden_size;
  register_parameter("W_ih", recurrent_init({input_size, gates}, hidden_size, device, dtype));
  register_parameter("W_hh", recurrent_init({hidden_size, gates}, hidden_size, device, dtype));
  if (bias) {
    register_parameter("bias_ih", recurrent_init({gates}, hidden_size, device, dtype));
    register_parameter("bias_hh", recurrent_init({gates}, hidden_size, device, dtype));
  }
}

std::pair<Tensor, Tensor> LSTMCell::forward(const Tensor& x, const std::pair<Tensor, Tensor>& state) {
  const auto& [h, c] = state;
  check_step("LSTMCell", x, input_size_, h, "h", hidden_size_);
  check_step("LSTMCell", x, input_size_, c, "c", hidden_size_);
  const Tensor w_ih = W_ih();
  const Tensor bias_ih = this->bias_ih();
  check_device(x, w_ih.device());
  // The recurrent product is the kernel's second summand, so the cell adds it while activating.
  Tensor gates = ops::matmul(x, w_ih);
  if (bias_ih.defined()) gates = gates + (bias_ih + bias_hh());  // (4 * hidden,) broadcasts over the batch
  return ops::lstm_cell(gates, c, h.defined() ? ops::matmul(h, W_hh()) : Tensor());
}

RNN::RNN(std::int64_t input_size, std::int64_t hidden_size, std::int64_t num_layers, bool bias,
         const std::string& nonlinearity, Device device, DType dtype)
    : input_size_(input_size), hidden_size_(hidden_size) {
  detail::expect_positive("RNN", "num_layers", num_layers);
  const auto list = register_module("rnn_cells", std::make_shared<ModuleList>());
  for (std::int64_t l = 0; l < num_layers; ++l) {
    cells_.push_back(
        std::make_shared<RNNCell>(l == 0 ? input_size : hidden_size, hidden_size, bias, nonlinearity, device, dtype));
    list->append(cells_.back());
  }
}

const std::shared_ptr<RNNCell>& RNN::cell(std::int64_t layer) const {
  NEEDLE_CHECK(layer >= 0 && layer < num_layers(), IndexError, "RNN: layer ", layer, " is out of range for ",
               num_layers(), " layers");
  return cells_[static_cast<std::size_t>(layer)];
}

std::pair<Tensor, Tensor> RNN::forward(const Tensor& x, const Tensor& h0) {
  detail::check_sequence("RNN", x, input_size_);
  check_device(x, cells_.front()->W_ih().device());
  const std::vector<Tensor> initial = detail::layer_states("RNN", h0, "h0", x, num_layers(), hidden_size_);
  // As LSTM::forward: one input projection per layer for the whole sequence, then the recurrence as one op.
  const std::int64_t steps = x.shape()[0];
  const std::int64_t batch = x.shape()[1];
  Tensor input = x;
  std::vector<Tensor> finals;
  for (const auto& cell : cells_) {
    Tensor xproj = ops::matmul(ops::reshape(input, {steps * batch, input.shape()[2]}), cell->W_ih());
    if (cell->bias_ih().defined()) xproj = xproj + (cell->bias_ih() + cell->bias_hh());
    input = ops::rnn_sequence(ops::reshape(xproj, {steps, batch, hidden_size_}), cell->W_hh(), initial[finals.size()],
                              cell->nonlinearity());
    finals.push_back(ops::getitem(input, {IndexItem::at(steps - 1)}));
  }
  return {input, ops::stack(finals, 0)};
}

LSTM::LSTM(std::int64_t input_size, std::int64_t hidden_size, std::int64_t num_layers, bool bias, Device device,
           DType dtype)
    : input_size_(input_size), hidden_size_(hidden_size) {
  detail::expect_positive("LSTM", "num_layers", num_layers);
  const auto list = register_module("lstm_cells", std::make_shared<ModuleList>());
  for (std::int64_t l = 0; l < num_layers; ++l) {
    cells_.push_back(std::make_shared<LSTMCell>(l == 0 ? input_size : hidden_size, hidden_size, bias, device, dtype));
    list->append(cells_.back());
  }
}

const std::shared_ptr<LSTMCell>& LSTM::cell(std::int64_t layer) const {
  NEEDLE_CHECK(layer >= 0 && layer < num_layers(), IndexError, "LSTM: layer ", layer, " is out of range for ",
               num_layers(), " layers");
  return cells_[static_cast<std::size_t>(layer)];
}

std::pair<Tensor, std::pair<Tensor, Tensor>> LSTM::forward(const Tensor& x, const std::pair<Tensor, Tensor>& state) {
  detail::check_sequence("LSTM", x, input_size_);
  check_device(x, cells_.front()->W_ih().device());
  const std::vector<Tensor> h_initial = detail::layer_states("LSTM", state.first, "h0", x, num_layers(), hidden_size_);
  const std::vector<Tensor> c_initial = detail::layer_states("LSTM", state.second, "c0", x, num_layers(), hidden_size_);
  // Each layer projects its whole input sequence at once, (T * B, in) @ (in, 4H) plus both biases, and
  // hands the recurrence to lstm_sequence, which runs only h @ W_hh and the fused cell per step; the cells'
  // parameters are used as they are, so the layer computes what unrolling LSTMCell::forward would.
  const std::int64_t steps = x.shape()[0];
  const std::int64_t batch = x.shape()[1];
  Tensor input = x;
  std::vector<Tensor> h_finals;
  std::vector<Tensor> c_finals;
  for (std::size_t l = 0; l < cells_.size(); ++l) {
    const LSTMCell& cell = *cells_[l];
    Tensor xproj = ops::matmul(ops::reshape(input, {steps * batch, input.shape()[2]}), cell.W_ih());
    if (cell.bias_ih().defined()) xproj = xproj + (cell.bias_ih() + cell.bias_hh());
    auto [hs, cs] = ops::lstm_sequence(ops::reshape(xproj, {steps, batch, 4 * hidden_size_}), cell.W_hh(), h_initial[l],
                                       c_initial[l]);
    h_finals.push_back(ops::getitem(hs, {IndexItem::at(steps - 1)}));
    c_finals.push_back(ops::getitem(cs, {IndexItem::at(steps - 1)}));
    input = hs;
  }
  return {input, {ops::stack(h_finals, 0), ops::stack(c_finals, 0)}};
}

}  // namespace needle::nn
