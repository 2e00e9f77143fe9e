// The op library: every differentiable operation on Tensors (Needle's names first).
//
// Each function checks its arguments (errors name the op and the shapes), then creates its output with
// Tensor::from_op(<the op's class>, inputs). The classes live in src/ops/, one file per family, each
// with its forward (compute, on NDArrays) and its backward (gradient, written with these functions).
// Binary element-wise ops broadcast like NumPy; gradients of broadcast inputs are summed back to the
// input's shape. Ops marked "no grad" return tensors that never require a gradient.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "needle/autograd/tensor.h"
#include "needle/core/ndarray.h"
#include "needle/core/scalar.h"

namespace needle::ops {

using Axes = std::vector<std::int64_t>;

// ---- element-wise (src/ops/elementwise.cpp) -------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, const Scalar& scalar);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor multiply(const Tensor& a, const Tensor& b);
Tensor mul_scalar(const Tensor& a, const Scalar& scalar);
Tensor divide(const Tensor& a, const Tensor& b);
Tensor divide_scalar(const Tensor& a, const Scalar& scalar);
Tensor power(const Tensor& a, const Tensor& b);                // a ** b (elementwise; gradient for both)
Tensor power_scalar(const Tensor& a, const Scalar& scalar);    // a ** scalar
Tensor rpower_scalar(const Scalar& scalar, const Tensor& a);   // scalar ** a
Tensor rdivide_scalar(const Scalar& scalar, const Tensor& a);  // scalar / a
// One op per row of unary_ops.def (negate, abs, exp, log, sqrt, tanh, sigmoid, relu, erf, gelu, ...),
// its gradient written there too.
#define NEEDLE_UNARY(kind, name, ...) Tensor name(const Tensor& a);
#include "needle/core/unary_ops.def"
Tensor leaky_relu(const Tensor& a, double negative_slope = 0.01);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // no gradient for cond
Tensor astype(const Tensor& a, DType dtype);                         // gradient converted back to a's dtype
Tensor to_device(const Tensor& a, Device device);                    // gradient moved back to a's device
// Comparisons (no grad): bool tensors.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

// ---- shapes and views (src/ops/shape.cpp) ---------------------------------------------------------
Tensor reshape(const Tensor& a, const Shape& shape);
Tensor broadcast_to(const Tensor& a, const Shape& shape);
// Sums `grad` over the axes that broadcasting added or stretched so it takes `shape` (the gradient of
// broadcast_to). Returns grad unchanged when the shapes already match.
Tensor sum_to_shape(const Tensor& grad, const Shape& shape);
// Needle's transpose: swaps the last two axes when `axes` is empty, else the two given axes.
Tensor transpose(const Tensor& a, std::optional<std::pair<std::int64_t, std::int64_t>> axes = std::nullopt);
Tensor permute(const Tensor& a, const Axes& axes);
Tensor squeeze(const Tensor& a, const Axes& axes = {});  // empty: every size-1 axis
Tensor unsqueeze(const Tensor& a, std::int64_t axis);
Tensor flip(const Tensor& a, const Axes& axes);
Tensor pad(const Tensor& a, const std::vector<std::pair<std::int64_t, std::int64_t>>& pad_width, double value = 0.0);
Tensor getitem(const Tensor& a, const Index& index);  // gradient scattered back into a's shape
Tensor concat(const std::vector<Tensor>& tensors, std::int64_t axis = 0);
Tensor stack(const std::vector<Tensor>& tensors, std::int64_t axis = 0);
std::vector<Tensor> split(const Tensor& a, std::int64_t axis = 0);  // Needle's: slices with the axis removed
// Needle's dilate: inserts `dilation` zeros between elements along each axis; undilate removes them.
Tensor dilate(const Tensor& a, const Axes& axes, std::int64_t dilation);
Tensor undilate(const Tensor& a, const Axes& axes, std::int64_t dilation);

// ---- reductions (src/ops/reduce.cpp) --------------------------------------------------------------
// Empty `axes` means every axis (Needle's axes=None).
Tensor summation(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
Tensor mean(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
Tensor max(const Tensor& a, const Axes& axes = {}, bool keepdims = false);  // gradient shared among ties
Tensor min(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
Tensor logsumexp(const Tensor& a, const Axes& axes = {}, bool keepdims = false);  // stable for large inputs
Tensor argmax(const Tensor& a, std::optional<std::int64_t> axis = std::nullopt, bool keepdims = false);  // no grad

// ---- linear algebra (src/ops/linalg.cpp) ----------------------------------------------------------
Tensor matmul(const Tensor& a, const Tensor& b);  // batched, broadcasting batch dims, 1-d operands as in NumPy
// matmul(x, weight) + bias (bias optional): x (..., in) @ weight (in, out) + a bias of shape (out,) or
// (1, out) is one node, which keeps only x and weight for backward.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- indexing (src/ops/index.cpp) -----------------------------------------------------------------
Tensor gather(const Tensor& a, std::int64_t axis, const Tensor& index);  // gradient for a only
// Rows of `weight` (num_embeddings, dim) picked by integer `indices` of any shape: indices.shape + (dim,).
Tensor embedding(const Tensor& indices, const Tensor& weight);
// One-hot encoding of integer `indices` (no grad): indices.shape + (num_classes,).
Tensor one_hot(const Tensor& indices, std::int64_t num_classes, DType dtype = kDefaultFloat);

// ---- neural-network functions (src/ops/nn.cpp, src/ops/attention.cpp) -----------------------------
Tensor logsoftmax(const Tensor& a, std::int64_t axis = -1);  // stable
Tensor softmax(const Tensor& a, std::int64_t axis = -1);     // stable
// Mean over the batch of -log softmax(logits)[label]: logits (N, C), labels integer (N,).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);
Tensor mse_loss(const Tensor& prediction, const Tensor& target);  // mean of squared differences
// Zeroes each element with probability p and scales the rest by 1 / (1 - p); identity when !training.
Tensor dropout(const Tensor& a, double p, bool training = true);
// Normalizes over the last axis; weight and bias (shape (dim,)) may be undefined.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// x / sqrt(mean(x^2) + eps) * weight over the last axis (weight optional, shape (dim,)); eps defaults to the
// machine epsilon of x's dtype, as in PyTorch.
Tensor rms_norm(const Tensor& x, const Tensor& weight = Tensor(), std::optional<double> eps = std::nullopt);
// Normalizes over every axis but 1 (channels) of x (N, C) or (N, C, ...). In training, batch statistics
// are used and running_mean/running_var (if defined) are updated in place with `momentum`
// (running = (1 - momentum) * running + momentum * batch, unbiased variance); in eval, the running
// statistics are used. weight and bias (shape (C,)) may be undefined.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);
// softmax(q k^T / sqrt(d) [+ causal mask]) v over the last two axes of q (..., L, d), k (..., S, d) and
// v (..., S, dv); with `causal`, position i attends only to positions j <= i.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = false);

// ---- recurrent cells (src/ops/lstm.cpp, src/ops/rnn.cpp) ------------------------------------------
// One LSTM step by the backend's fused kernel: gates (B, 4H) are the pre-activations in the order i, f, g,
// o (plus gates2 of the same shape when defined: e.g. the input and the recurrent projection, summed in
// the kernel); c_prev (B, H) may be undefined (the zero state). Returns (h, c) with
// c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g) and h = sigmoid(o) * tanh(c).
std::pair<Tensor, Tensor> lstm_cell(const Tensor& gates, const Tensor& c_prev, const Tensor& gates2 = Tensor());
// Every step of one LSTM layer: xproj (T, B, 4H) is the input projection of the whole sequence (x @ W_ih
// plus the biases, one big product), w_hh (H, 4H), h0 and c0 (B, H) the initial state (undefined: zeros).
// Returns (h, c) of every step, each (T, B, H). Per step only h @ W_hh and the fused cell run, forward and
// backward, and dW_hh is one product over the sequence.
std::pair<Tensor, Tensor> lstm_sequence(const Tensor& xproj, const Tensor& w_hh, const Tensor& h0 = Tensor(),
                                        const Tensor& c0 = Tensor());
// Every step of one Elman RNN layer, h_t = nonlinearity(xproj_t + h_{t-1} @ w_hh) with nonlinearity "tanh"
// or "relu": xproj (T, B, H) the whole sequence's input projection with the biases, w_hh (H, H), h0 (B, H)
// (undefined: zeros). Returns every step's h, (T, B, H).
Tensor rnn_sequence(const Tensor& xproj, const Tensor& w_hh, const Tensor& h0 = Tensor(),
                    const std::string& nonlinearity = "tanh");

// ---- convolution (src/ops/conv.cpp) ---------------------------------------------------------------
// Needle's conv: input a (N, H, W, C_in), weight b (K, K, C_in, C_out), zero padding on H and W, stride.
// Output (N, (H + 2p - K) / s + 1, (W + 2p - K) / s + 1, C_out). The backward is exact for every stride
// and padding.
Tensor conv(const Tensor& a, const Tensor& b, std::int64_t stride = 1, std::int64_t padding = 0);

// ---- pooling (src/ops/pool.cpp) -------------------------------------------------------------------
// 2-d pooling of a (N, C, H, W) over K x K windows moved by `stride` (default K), with `padding` cells on
// each side of H and W (at most K / 2): (N, C, (H + 2p - K) / s + 1, (W + 2p - K) / s + 1). max_pool2d
// pads with -inf and sends the gradient to each window's maximum (ties share it); avg_pool2d pads with
// zeros, which count in the average (PyTorch's count_include_pad).
Tensor max_pool2d(const Tensor& a, std::int64_t kernel_size, std::optional<std::int64_t> stride = std::nullopt,
                  std::int64_t padding = 0);
Tensor avg_pool2d(const Tensor& a, std::int64_t kernel_size, std::optional<std::int64_t> stride = std::nullopt,
                  std::int64_t padding = 0);

// ---- int8 inference (src/ops/quantized.cpp) ---------------------------------------------------------
// x (..., in) @ weightᵀ + bias with an int8 weight (out, in) quantized per output row (weight_scale (out,)
// float32; bias (out,) float32 or undefined): the activations are quantized to int8 per row (dynamic, from
// each row's largest magnitude) or with one calibrated input_scale (static, when > 0), multiplied exactly
// in int32 and scaled back to x's dtype. No gradient (inference only).
Tensor quantized_linear(const Tensor& x, const Tensor& weight, const Tensor& weight_scale, const Tensor& bias,
                        double input_scale = 0.0);
// The K x K convolution of x (N, C, H, W) with an int8 weight (C_out, K * K * C) in im2col's (i, j, c)
// order, per-output-channel scales and bias as above: (N, C_out, H_out, W_out), the activations quantized
// as above (static with a calibrated input_scale > 0, else per im2col row).
Tensor quantized_conv(const Tensor& x, const Tensor& weight, const Tensor& weight_scale, const Tensor& bias,
                      std::int64_t kernel, std::int64_t stride, std::int64_t padding, double input_scale = 0.0);

}  // namespace needle::ops

namespace needle {

inline Tensor operator+(const Tensor& a, const Tensor& b) { return ops::add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return ops::sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return ops::multiply(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return ops::divide(a, b); }
inline Tensor operator+(const Tensor& a, const Scalar& s) { return ops::add_scalar(a, s); }
inline Tensor operator-(const Tensor& a, const Scalar& s) { return ops::add_scalar(a, s.negated()); }
inline Tensor operator*(const Tensor& a, const Scalar& s) { return ops::mul_scalar(a, s); }
inline Tensor operator/(const Tensor& a, const Scalar& s) { return ops::divide_scalar(a, s); }
inline Tensor operator+(const Scalar& s, const Tensor& a) { return ops::add_scalar(a, s); }
inline Tensor operator-(const Scalar& s, const Tensor& a) { return ops::add_scalar(ops::negate(a), s); }
inline Tensor operator*(const Scalar& s, const Tensor& a) { return ops::mul_scalar(a, s); }
inline Tensor operator/(const Scalar& s, const Tensor& a) { return ops::rdivide_scalar(s, a); }
inline Tensor operator-(const Tensor& a) { return ops::negate(a); }

}  // namespace needle
