// int8 post-training quantization of trained layers, for inference. Weights become int8 with one symmetric
// scale per output channel (scale = max |w| / 127 over the channel, so 0 stays exactly 0); activations are
// quantized at run time per row (dynamic) or with one scale calibrated beforehand (static); the int8
// product is exact in int32 and scaled back to float in the same pass (needle::quantized_matmul).
//
// Each quantized layer keeps its int8 weight, scales and bias as buffers, so state_dict()/safetensors save
// and load them like any model (a quantized model loads into one built by the same quantize call).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "needle/nn/layers.h"
#include "needle/nn/module.h"

namespace needle::nn {

// Linear with an int8 weight. Buffers: "weight" int8 (out, in) (PyTorch's layout: one output feature per
// row), "weight_scale" float32 (out,), "bias" float32 (out,) when the layer has one, and "input_scale"
// float32 0-d: 0 for dynamic per-row activation scales, else the calibrated static scale.
class QuantizedLinear final : public Module {
 public:
  // Zero weights of the given size (to load a saved quantized layer into).
  QuantizedLinear(std::int64_t in_features, std::int64_t out_features, bool bias = true,
                  Device device = default_device());
  // The quantized copy of a trained Linear (its weight (in, out) is transposed to (out, in) first).
  static std::shared_ptr<QuantizedLinear> from_linear(const Linear& linear);
  // From a float weight in PyTorch's layout (out, in) and a bias (out,) or undefined.
  static std::shared_ptr<QuantizedLinear> from_weight(const NDArray& weight, const NDArray& bias);
  // x (..., in) -> (..., out) in x's dtype (ops::quantized_linear); no gradient.
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "QuantizedLinear"; }
  [[nodiscard]] std::int64_t in_features() const { return in_features_; }
  [[nodiscard]] std::int64_t out_features() const { return out_features_; }
  // 0: dynamic; > 0: the static activation scale (e.g. max |x| / 127 over calibration batches).
  [[nodiscard]] double input_scale() const;
  void set_input_scale(double scale);

 private:
  std::int64_t in_features_;
  std::int64_t out_features_;
};

// Conv (the K x K layer of nn::Conv: NCHW, stride, padding) with an int8 weight (C_out, K * K * C_in) and
// per-output-channel scales, buffers named as QuantizedLinear's. Static quantization: the input is
// quantized with input_scale, which calibrate() sets (until then, 0 means per-row dynamic scales).
class QuantizedConv final : public Module {
 public:
  QuantizedConv(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size, std::int64_t stride,
                std::int64_t padding, bool bias = true, Device device = default_device());
  static std::shared_ptr<QuantizedConv> from_conv(const Conv& conv, double input_scale = 0.0);
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "QuantizedConv"; }
  [[nodiscard]] std::int64_t in_channels() const { return in_channels_; }
  [[nodiscard]] std::int64_t out_channels() const { return out_channels_; }
  [[nodiscard]] std::int64_t kernel_size() const { return kernel_size_; }
  [[nodiscard]] std::int64_t stride() const { return stride_; }
  [[nodiscard]] std::int64_t padding() const { return padding_; }
  [[nodiscard]] double input_scale() const;
  void set_input_scale(double scale);

 private:
  std::int64_t in_channels_;
  std::int64_t out_channels_;
  std::int64_t kernel_size_;
  std::int64_t stride_;
  std::int64_t padding_;
};

// LSTM whose two projections per layer are int8 (dynamic activation scales): children "input_projections"
// (QuantizedLinear(in, 4H) per layer, holding bias_ih + bias_hh) and "hidden_projections"
// (QuantizedLinear(H, 4H) per layer, no bias). Calls and returns as LSTM: x (seq_len, batch, input_size),
// optional (h0, c0) -> (output, (h_n, c_n)); the gates add up in the fused LSTM cell as in LSTM.
class QuantizedLSTM final : public Module {
 public:
  QuantizedLSTM(std::int64_t input_size, std::int64_t hidden_size, std::int64_t num_layers, bool bias = true,
                Device device = default_device());
  static std::shared_ptr<QuantizedLSTM> from_lstm(const LSTM& lstm);
  using Module::forward;
  std::pair<Tensor, std::pair<Tensor, Tensor>> forward(const Tensor& x, const std::pair<Tensor, Tensor>& state);
  std::pair<Tensor, std::pair<Tensor, Tensor>> operator()(const Tensor& x,
                                                          const std::pair<Tensor, Tensor>& state = {}) {
    return forward(x, state);
  }
  [[nodiscard]] std::string name() const override { return "QuantizedLSTM"; }
  [[nodiscard]] std::int64_t input_size() const { return input_size_; }
  [[nodiscard]] std::int64_t hidden_size() const { return hidden_size_; }
  [[nodiscard]] std::int64_t num_layers() const { return num_layers_; }

 private:
  std::int64_t input_size_;
  std::int64_t hidden_size_;
  std::int64_t num_layers_;
};

// Replaces, in place, every Linear below `root` by its QuantizedLinear and every LSTM by its QuantizedLSTM
// (Module::set_child; layers call their children by name, so a Transformer's attention and MLP projections
// are swapped inside it). Returns how many layers were replaced. `root` itself is not replaced.
std::int64_t quantize_dynamic(Module& root);

// Replaces, in place, every Conv below `root` by a QuantizedConv with input_scale 0 (per-row scales until
// calibrated); returns how many. Linear and LSTM layers are left to quantize_dynamic.
std::int64_t quantize_convolutions(Module& root);

}  // namespace needle::nn
