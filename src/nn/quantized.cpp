// The int8 layers of nn/quantized.h and the functions that swap them into a trained model. A float weight
// becomes int8 by quantize_rows over its output channels (each row of the (out, in) layout), which is the
// per-channel symmetric scheme: scale = max |w| / 127 per channel.
#include "needle/nn/quantized.h"

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "needle/autograd/grad_mode.h"
#include "needle/core/array_ops.h"
#include "needle/core/fused_ops.h"
#include "needle/ops/ops.h"
#include "nn/layer_util.h"

namespace needle::nn {

namespace {

// Registers the buffers every quantized layer has: int8 weight (out, in), its scales, the bias (when
// `bias`), the activation scale (0: dynamic).
void register_quantized_buffers(Module& layer, std::int64_t out, std::int64_t in, bool bias, Device device) {
  layer.register_buffer("weight", NDArray::zeros({out, in}, DType::Int8, device));
  layer.register_buffer("weight_scale", NDArray::ones({out}, DType::Float32, device));
  if (bias) layer.register_buffer("bias", NDArray::zeros({out}, DType::Float32, device));
  layer.register_buffer("input_scale", NDArray::zeros({}, DType::Float32, device));
}

// Fills those buffers from a float weight (out, in) and bias (out,) (or undefined).
void set_quantized_weight(Module& layer, const NDArray& weight, const NDArray& bias) {
  const QuantizedRows q = quantize_rows(weight.astype(DType::Float32).compact());
  layer.set_buffer("weight", Tensor(q.values));
  layer.set_buffer("weight_scale", Tensor(q.scale));
  if (bias.size() > 0) layer.set_buffer("bias", Tensor(bias.astype(DType::Float32).compact().reshape({-1})));
}

Tensor optional_buffer(const Module& layer, const std::string& name) {
  for (const auto& [key, tensor] : layer.named_buffers()) {
    if (key == name) return tensor;
  }
  return {};
}

double read_scale(const Module& layer) { return layer.buffer("input_scale").value().item().to<double>(); }

void write_scale(Module& layer, double scale) {
  NEEDLE_CHECK(scale >= 0.0 && std::isfinite(scale), ValueError, layer.name(),
               ": input_scale must be finite and >= 0 (0: dynamic), got ", scale);
  const Tensor current = layer.buffer("input_scale");
  layer.set_buffer("input_scale", Tensor(NDArray::full({}, Scalar(scale), DType::Float32, current.device())));
}

}  // namespace

// ---- QuantizedLinear ------------------------------------------------------------------------------------

QuantizedLinear::QuantizedLinear(std::int64_t in_features, std::int64_t out_features, bool bias, Device device)
    : in_features_(in_features), out_features_(out_features) {
  detail::expect_positive("QuantizedLinear", "in_features", in_features);
  detail::expect_positive("QuantizedLinear", "out_features", out_features);
  register_quantized_buffers(*this, out_features, in_features, bias, device);
}

std::shared_ptr<QuantizedLinear> QuantizedLinear::from_linear(const Linear& linear) {
  const NDArray bias = linear.bias().defined() ? linear.bias().value() : NDArray();
  // Linear stores (in, out); the int8 kernels read one output feature per row.
  return from_weight(linear.weight().value().swapaxes(0, 1), bias);
}

std::shared_ptr<QuantizedLinear> QuantizedLinear::from_weight(const NDArray& weight, const NDArray& bias) {
  NEEDLE_CHECK(weight.ndim() == 2 && is_floating(weight.dtype()), ValueError,
               "QuantizedLinear: expected a float weight (out, in), got ", dtype_name(weight.dtype()), " of shape ",
               shape_str(weight.shape()));
  const bool has_bias = bias.size() > 0;
  NEEDLE_CHECK(!has_bias || bias.size() == weight.shape()[0], ValueError, "QuantizedLinear: bias of shape ",
               shape_str(bias.shape()), " does not match weight ", shape_str(weight.shape()));
  auto layer = std::make_shared<QuantizedLinear>(weight.shape()[1], weight.shape()[0], has_bias, weight.device());
  set_quantized_weight(*layer, weight, bias);
  return layer;
}

Tensor QuantizedLinear::forward(const Tensor& x) {
  NEEDLE_CHECK(x.ndim() >= 1 && x.shape().back() == in_features_, ValueError,
               "QuantizedLinear: expected input with last dimension ", in_features_, ", got shape ",
               shape_str(x.shape()));
  const Tensor weight = buffer("weight");
  check_device(x, weight.device());
  return ops::quantized_linear(x, weight, buffer("weight_scale"), optional_buffer(*this, "bias"), read_scale(*this));
}

double QuantizedLinear::input_scale() const { return read_scale(*this); }
void QuantizedLinear::set_input_scale(double scale) { write_scale(*this, scale); }

// ---- QuantizedConv --------------------------------------------------------------------------------------

QuantizedConv::QuantizedConv(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
                             std::int64_t stride, std::int64_t padding, bool bias, Device device)
    : in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      stride_(stride),
      padding_(padding) {
  detail::expect_positive("QuantizedConv", "in_channels", in_channels);
  detail::expect_positive("QuantizedConv", "out_channels", out_channels);
  detail::expect_positive("QuantizedConv", "kernel_size", kernel_size);
  detail::expect_positive("QuantizedConv", "stride", stride);
  register_quantized_buffers(*this, out_channels, kernel_size * kernel_size * in_channels, bias, device);
}

std::shared_ptr<QuantizedConv> QuantizedConv::from_conv(const Conv& conv, double input_scale) {
  const NDArray weight = conv.weight().value();  // (K, K, C_in, C_out)
  auto layer = std::make_shared<QuantizedConv>(conv.in_channels(), conv.out_channels(), conv.kernel_size(),
                                               conv.stride(), conv.padding(), conv.bias().defined(), weight.device());
  // (K, K, C_in, C_out) -> (C_out, K * K * C_in): rows in im2col's (i, j, c) order.
  const NDArray rows = weight.reshape({weight.size() / conv.out_channels(), conv.out_channels()}).swapaxes(0, 1);
  set_quantized_weight(*layer, rows, conv.bias().defined() ? conv.bias().value() : NDArray());
  layer->set_input_scale(input_scale);
  return layer;
}

Tensor QuantizedConv::forward(const Tensor& x) {
  detail::expect_ndim("QuantizedConv", x, 4, "(N, C, H, W)");
  detail::expect_dim("QuantizedConv", x, 1, in_channels_, "channels (dimension 1)");
  const Tensor weight = buffer("weight");
  check_device(x, weight.device());
  NEEDLE_CHECK(x.shape()[2] + 2 * padding_ >= kernel_size_ && x.shape()[3] + 2 * padding_ >= kernel_size_, ValueError,
               "QuantizedConv: kernel_size ", kernel_size_, " exceeds the padded input (padding ", padding_, ", shape ",
               shape_str(x.shape()), ")");
  return ops::quantized_conv(x, weight, buffer("weight_scale"), optional_buffer(*this, "bias"), kernel_size_, stride_,
                             padding_, read_scale(*this));
}

double QuantizedConv::input_scale() const { return read_scale(*this); }
void QuantizedConv::set_input_scale(double scale) { write_scale(*this, scale); }

// ---- QuantizedLSTM --------------------------------------------------------------------------------------

QuantizedLSTM::QuantizedLSTM(std::int64_t input_size, std::int64_t hidden_size, std::int64_t num_layers, bool bias,
                             Device device)
    : input_size_(input_size), hidden_size_(hidden_size), num_layers_(num_layers) {
  detail::expect_positive("QuantizedLSTM", "num_layers", num_layers);
  const auto inputs = register_module("input_projections", std::make_shared<ModuleList>());
  const auto hiddens = register_module("hidden_projections", std::make_shared<ModuleList>());
  for (std::int64_t l = 0; l < num_layers; ++l) {
    inputs->append(std::make_shared<QuantizedLinear>(l == 0 ? input_size : hidden_size, 4 * hidden_size, bias, device));
    hiddens->append(std::make_shared<QuantizedLinear>(hidden_size, 4 * hidden_size, false, device));
  }
}

std::shared_ptr<QuantizedLSTM> QuantizedLSTM::from_lstm(const LSTM& lstm) {
  const LSTMCell& first = *lstm.cell(0);
  auto layer = std::make_shared<QuantizedLSTM>(lstm.input_size(), lstm.hidden_size(), lstm.num_layers(),
                                               first.bias_ih().defined(), first.W_ih().device());
  const auto& inputs = layer->child("input_projections")->named_children();
  const auto& hiddens = layer->child("hidden_projections")->named_children();
  for (std::int64_t l = 0; l < lstm.num_layers(); ++l) {
    const LSTMCell& cell = *lstm.cell(l);
    const auto index = static_cast<std::size_t>(l);
    // The cell computes x @ W_ih + h @ W_hh (+ both biases), W_* stored (in, 4H): one bias for both.
    const NDArray bias = cell.bias_ih().defined() ? add(cell.bias_ih().value(), cell.bias_hh().value()) : NDArray();
    set_quantized_weight(*inputs[index].second, cell.W_ih().value().swapaxes(0, 1), bias);
    set_quantized_weight(*hiddens[index].second, cell.W_hh().value().swapaxes(0, 1), NDArray());
  }
  return layer;
}

std::pair<Tensor, std::pair<Tensor, Tensor>> QuantizedLSTM::forward(const Tensor& x,
                                                                    const std::pair<Tensor, Tensor>& state) {
  detail::check_sequence("QuantizedLSTM", x, input_size_);
  const auto& inputs = child("input_projections")->named_children();
  const auto& hiddens = child("hidden_projections")->named_children();
  check_device(x, inputs.front().second->buffer("weight").device());
  const std::vector<Tensor> h_initial =
      detail::layer_states("QuantizedLSTM", state.first, "h0", x, num_layers_, hidden_size_);
  const std::vector<Tensor> c_initial =
      detail::layer_states("QuantizedLSTM", state.second, "c0", x, num_layers_, hidden_size_);
  const std::int64_t steps = x.shape()[0];
  const std::int64_t batch = x.shape()[1];
  Tensor input = x;
  std::vector<Tensor> h_finals;
  std::vector<Tensor> c_finals;
  for (std::size_t l = 0; l < inputs.size(); ++l) {
    // The whole sequence's input projection at once, then per step the hidden projection and the cell.
    const Tensor projected = ops::reshape(inputs[l].second->forward(input), {steps, batch, 4 * hidden_size_});
    Tensor h = h_initial[l];
    Tensor c = c_initial[l];
    std::vector<Tensor> outputs;
    for (std::int64_t t = 0; t < steps; ++t) {
      const Tensor gates = ops::getitem(projected, {IndexItem::at(t)});
      const Tensor recurrent = h.defined() ? hiddens[l].second->forward(h) : Tensor();
      std::tie(h, c) = ops::lstm_cell(gates, c, recurrent);
      outputs.push_back(h);
    }
    h_finals.push_back(h);
    c_finals.push_back(c);
    input = ops::stack(outputs, 0);
  }
  return {input, {ops::stack(h_finals, 0), ops::stack(c_finals, 0)}};
}

// ---- swapping them in -----------------------------------------------------------------------------------

std::int64_t quantize_dynamic(Module& root) {
  std::int64_t replaced = 0;
  // A copy of the names first: set_child changes the entries being walked.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children = root.named_children();
  for (const auto& [name, child] : children) {
    if (const auto* linear = dynamic_cast<const Linear*>(child.get())) {
      root.set_child(name, QuantizedLinear::from_linear(*linear));
      ++replaced;
    } else if (const auto* lstm = dynamic_cast<const LSTM*>(child.get())) {
      root.set_child(name, QuantizedLSTM::from_lstm(*lstm));
      ++replaced;
    } else {
      replaced += quantize_dynamic(*child);
    }
  }
  return replaced;
}

std::int64_t quantize_convolutions(Module& root) {
  std::int64_t replaced = 0;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children = root.named_children();
  for (const auto& [name, child] : children) {
    if (const auto* conv = dynamic_cast<const Conv*>(child.get())) {
      root.set_child(name, QuantizedConv::from_conv(*conv));
      ++replaced;
    } else {
      replaced += quantize_convolutions(*child);
    }
  }
  return replaced;
}

}  // namespace needle::nn
