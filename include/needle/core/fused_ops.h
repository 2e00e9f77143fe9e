// The array layer's fused computations: each one call of a fused backend kernel (softmax, layer and batch
// norm, attention, the LSTM cell, the convolution's im2col/col2im, max pooling, the optimizer updates), doing in one or
// two passes what a chain of the functions in array_ops.h would do in many.
//
// Like array_ops.h, each function checks its operands once (device, dtype, shapes: a failure names the
// function and the shapes), brings them into the layout the kernel reads (the reduced axis last, rows
// contiguous), allocates the outputs and calls the kernel; the op layer (src/ops) and the optimizers call
// these and never a Backend directly. Operands are float32 or float64 and share one dtype unless a function
// says it converts.
#pragma once

#include <cstdint>

#include "needle/core/kernel_types.h"
#include "needle/core/ndarray.h"

namespace needle {

// ---- rows: softmax, logsumexp, layer norm ----------------------------------------------------------
// softmax(a) along `axis` (any layout; a normalized axis in [0, ndim)), or log-softmax when `log`.
NDArray softmax(const NDArray& a, std::int64_t axis, bool log = false);
// The vector-Jacobian product of softmax along `axis` from its output y and the output's gradient g
// (Backend::softmax_backward); y is converted to g's dtype.
NDArray softmax_backward(const NDArray& g, const NDArray& y, std::int64_t axis, bool log = false);
// log(sum(exp(a))) over the normalized `axis`, stable for infinite maxima (Backend::logsumexp).
NDArray logsumexp(const NDArray& a, std::int64_t axis, bool keepdims = false);
// (x - mean) / sqrt(var + eps) along the last axis, with the biased variance (layer norm without affine).
NDArray layer_norm(const NDArray& x, double eps);
// Its vector-Jacobian product given the input x and the output's gradient g; x is converted to g's dtype.
NDArray layer_norm_backward(const NDArray& g, const NDArray& x, double eps);
// The gradients of layer_norm(x, eps) * weight + bias (weight of shape (dim,), dim = x's last axis) given the
// gradient g of its output: dx, and dweight and dbias of shape (dim,). One fused kernel.
struct AffineLayerNormGrads {
  NDArray dx;
  NDArray dweight;
  NDArray dbias;
};
AffineLayerNormGrads layer_norm_affine_backward(const NDArray& g, const NDArray& x, const NDArray& weight, double eps);
// x / sqrt(mean(x^2) + eps) along the last axis of x (ndim >= 1): RMS norm without its weight. One pass of
// the optional rms_norm kernel where the device has it, else composed of array_ops.h (its reference).
NDArray rms_norm(const NDArray& x, double eps);

// ---- relu backward -----------------------------------------------------------------------------------
// ReLU's gradient: g where x > 0, else 0 (g and x of one shape; the result takes g's dtype promoted with
// x's). One pass of the optional relu_backward kernel where the device has it (g and x of one floating
// dtype, contiguous or sharing a dense memory order, which the result keeps), else where(x > 0, g, 0).
NDArray relu_backward(const NDArray& g, const NDArray& x);

// ---- gelu backward -----------------------------------------------------------------------------------
// GELU's gradient: g * gelu_grad(x) (g and x of one shape). One pass of the optional gelu_backward kernel
// where the device has it (g and x of one floating dtype, contiguous or sharing a dense memory order, which
// the result keeps), else that product, composed.
NDArray gelu_backward(const NDArray& g, const NDArray& x);

// ---- batch norm --------------------------------------------------------------------------------------
// Batch normalization of x read as (N, C, S) (contiguous; see Backend::batch_norm), weight and bias (C,):
// y (N, C, S) and the batch mean and biased variance (C,).
struct BatchNormResult {
  NDArray y;
  NDArray mean;
  NDArray var;
};
BatchNormResult batch_norm(const NDArray& x, const NDArray& weight, const NDArray& bias, double eps);
// Its vector-Jacobian product given the gradient g of y (converted to x's dtype), x and the statistics the
// forward returned.
struct BatchNormGrads {
  NDArray dx;
  NDArray dweight;
  NDArray dbias;
};
BatchNormGrads batch_norm_backward(const NDArray& g, const NDArray& x, const NDArray& mean, const NDArray& var,
                                   const NDArray& weight, double eps);

// ---- attention ---------------------------------------------------------------------------------------
// Scaled dot-product attention of q (..., L, d), k (..., S, d), v (..., S, dv), one batch shape of at least
// one dimension (Backend::attention): out (..., L, dv) and each query row's logsumexp (..., L), the one
// statistic the backward needs. Operands are read in place when their rows are contiguous (the heads of a
// (batch, length, heads, d) projection, seen as (batch, heads, length, d)), and out is laid out like q, so
// that joining the heads again is a view. The kernel runs once when the batch axes step through memory
// with one stride; otherwise it walks the longest batch axis (the sequences of one head), once per index of
// the others.
struct AttentionResult {
  NDArray out;
  NDArray logsumexp;
};
AttentionResult attention(const NDArray& q, const NDArray& k, const NDArray& v, double scale, bool causal);
// Its vector-Jacobian product given the gradient g of out (converted to q's dtype) and the forward's results;
// dq, dk and dv are laid out like q, k and v.
struct AttentionGrads {
  NDArray dq;
  NDArray dk;
  NDArray dv;
};
AttentionGrads attention_backward(const NDArray& g, const NDArray& q, const NDArray& k, const NDArray& v,
                                  const AttentionResult& forward, double scale, bool causal);

// One query row per problem against the first S rows of a key/value cache (Backend::decode_attention):
// q (B, d), k (B, S, d), v (B, S, dv) with S >= 1 give (B, dv). k and v are read in place when their last
// axis is contiguous (the filled prefix of a preallocated cache), compacted otherwise.
NDArray decode_attention(const NDArray& q, const NDArray& k, const NDArray& v, double scale);

// ---- LSTM cell ----------------------------------------------------------------------------------------
// One LSTM cell step (Backend::lstm_cell) written into h and c (B, H), which may be views of a larger array
// (a sequence's output): gates (B, 4H) plus gates2 (B, 4H) when given, c_prev (B, H) or none (the zero
// state). Inputs with a column stride other than 1 are compacted; a row stride of 0 (one bias row for the
// whole batch) is read in place.
void lstm_cell(const NDArray& h, const NDArray& c, const NDArray& gates, const NDArray* gates2, const NDArray* c_prev);
// Its vector-Jacobian product (Backend::lstm_cell_backward) written into dgates (B, 4H) and dc_prev (B, H),
// given exactly when c_prev is, from the gradients dh and dc of h and c.
void lstm_cell_backward(const NDArray& dgates, const NDArray* dc_prev, const NDArray& dh, const NDArray& dc,
                        const NDArray& gates, const NDArray* gates2, const NDArray* c_prev);

// ---- convolution data movement ---------------------------------------------------------------------
// The K x K patches of image (N, H, W, C) (any strides) as columns (N, H_out, W_out, K, K, C), zeros in the
// padding (Backend::im2col).
NDArray im2col(const NDArray& image, std::int64_t kernel, std::int64_t stride, std::int64_t padding);
// The adjoint: every column entry of cols (N, H_out, W_out, K, K, C) added at the cell of an image of
// `image_shape` (N, H, W, C) it was read from (Backend::col2im).
NDArray col2im(const NDArray& cols, const Shape& image_shape, std::int64_t stride, std::int64_t padding);

// A K x K convolution of image (N, H, W, C) (any strides) by weight (K, K, C, C_out), both of one floating
// dtype: the (N, H_out, W_out, C_out) cells of im2col(image) @ weight (Backend::conv2d: one pass over blocks of
// output cells where the device has it, else that composition, its reference).
NDArray conv2d(const NDArray& image, const NDArray& weight, std::int64_t stride, std::int64_t padding);
// Its gradient in the weight, given the image and the gradient grad_out (N, H_out, W_out, C_out) of its result:
// the (K, K, C, C_out) im2col(image)ᵀ @ grad_out (Backend::conv2d_weight_grad).
NDArray conv2d_weight_grad(const NDArray& image, const NDArray& grad_out, std::int64_t kernel, std::int64_t stride,
                           std::int64_t padding);
// Its gradient in the image, of `image_shape` (N, H, W, C): col2im(grad_out @ weightᵀ) (Backend::conv2d_input_grad).
NDArray conv2d_input_grad(const NDArray& grad_out, const NDArray& weight, const Shape& image_shape, std::int64_t stride,
                          std::int64_t padding);

// ---- max pooling ---------------------------------------------------------------------------------------
// Max pooling of image (N, C, H, W) (any strides, floating) over kernel x kernel windows, `stride` apart,
// with `padding` cells of -inf on each side (1 <= kernel, 1 <= stride, 0 <= padding <= kernel / 2): the
// (N, C, H_out, W_out) maxima and, as int64, the position iy * W + ix in the image plane of each window's
// first maximum (a NaN beats every number; Backend::max_pool2d). One pass of the optional max_pool2d
// kernel where the device has it, else composed of array_ops.h (its reference).
struct MaxPoolResult {
  NDArray values;
  NDArray indices;
};
MaxPoolResult max_pool2d(const NDArray& image, std::int64_t kernel, std::int64_t stride, std::int64_t padding);
// The adjoint of that selection: an array of `image_shape` (N, C, H, W) holding, at each plane position,
// the sum of the grad_out (N, C, H_out, W_out) entries whose index names it, 0 elsewhere. indices is int64
// of grad_out's shape with values in [0, H * W) (IndexError otherwise); Backend::max_pool2d_backward, or
// zeros and a scatter_add where the device lacks it.
NDArray max_pool2d_backward(const NDArray& grad_out, const NDArray& indices, const Shape& image_shape);

// ---- optimizer updates ---------------------------------------------------------------------------------
// One Adam or AdamW step in place (the formula is Backend::adam_update's): param, exp_avg and exp_avg_sq
// are overwritten. All four share a shape, a floating dtype and a device; the three updated arrays must be
// dense in one shared memory order, contiguous or one permutation of it (grad may be any view).
void adam_update(NDArray& param, const NDArray& grad, NDArray& exp_avg, NDArray& exp_avg_sq, const AdamStep& step);

// One SGD step in place (the formula is Backend::sgd_update's): param and *momentum_buffer are
// overwritten. momentum_buffer may be null only when step.momentum is 0; on step.first its contents are
// not read. All share a shape, a floating dtype and a device; the updated arrays must be dense in one shared
// memory order, contiguous or one permutation of it (grad may be any view, of any dtype).
void sgd_update(NDArray& param, const NDArray& grad, NDArray* momentum_buffer, const SgdStep& step);

// ---- int8 quantization ---------------------------------------------------------------------------------
// Post-training quantization for inference (no gradients): symmetric int8 with a float32 scale per row.

// x (float32 or float64, at least 1-d; float64 is converted to float32 first) quantized along its last axis:
// per row, scale = max|x| / 127 and values = clamp(nearbyint(x * (127 / max|x|)), -127, 127), rounded half
// to even, all in float32; a row of zeros (or of no columns) gets scale 1 and values 0. values is int8 with
// x's shape, scale float32 with x's shape less the last axis. NaN or infinity in x raises ValueError.
struct QuantizedRows {
  NDArray values;
  NDArray scale;
};
QuantizedRows quantize_rows(const NDArray& x);

// The exact int32 product a @ wᵀ of a (M, K) and w (N, K), both int8 (w holds a linear layer's weight as
// PyTorch stores it: one output feature per row), as an (M, N) int32 array. K may be at most 131071, so
// that no sum can overflow.
NDArray int8_matmul(const NDArray& a, const NDArray& w);

// A quantized linear layer: out[m, n] = fma(float(acc[m, n]), a_scale[m] * w_scale[n], bias[n]) with acc
// as int8_matmul's, a_scale (M) and w_scale (N) float32, and bias (N) float32 or null for none (+ 0). The
// result is float32 (M, N); no int32 product is stored on the way.
NDArray quantized_matmul(const NDArray& a, const NDArray& a_scale, const NDArray& w, const NDArray& w_scale,
                         const NDArray* bias = nullptr);

// Static quantization with a calibrated scale (scale > 0, the same for every element): values =
// clamp(round-half-even(x / scale), -127, 127) as int8 with x's shape, rounded in float32 like
// quantize_rows. Composed from array functions (every device has it); NaN raises ValueError.
NDArray quantize_with_scale(const NDArray& x, double scale);

}  // namespace needle
