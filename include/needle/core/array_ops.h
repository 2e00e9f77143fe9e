// Computations on NDArrays (no autograd): the array layer's functional API.
//
// Each function validates its arguments (clear errors naming the op and the shapes), decides the result
// dtype (core/dtype.h promotion rules), broadcasts, allocates the output on the inputs' device, and calls
// that device's backend kernel. Inputs must share a device (RuntimeError otherwise).
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "needle/core/kernel_types.h"
#include "needle/core/ndarray.h"
#include "needle/core/random.h"

namespace needle {

using Axes = std::vector<std::int64_t>;

// ---- element-wise ---------------------------------------------------------------------------------
// Binary ops broadcast like NumPy and promote like PyTorch (promote_types). Div is true division (ints
// give float32). Pow on integers with a negative exponent raises ValueError. Comparisons give bool.
NDArray binary(BinaryOp op, const NDArray& a, const NDArray& b);
// `a op s` (or `s op a` when scalar_first): the scalar only lifts the dtype category (promote_with_scalar).
NDArray binary(BinaryOp op, const NDArray& a, const Scalar& s, bool scalar_first = false);
// The domain column of unary_ops.def decides the dtype: Float functions (exp, log, ...) compute integers and
// bool in float32; Number functions (negate, abs, relu) keep integer dtypes and refuse bool (TypeError).
NDArray unary(UnaryOp op, const NDArray& a);

// out = out op b, written into out itself, with b broadcast to out's shape and of out's dtype; out must be
// compact. For an op's compute() finishing a result it has just created (x @ W, then + bias), which saves
// the second array and the pass that writes it.
void binary_in_place(BinaryOp op, NDArray& out, const NDArray& b);

NDArray add(const NDArray& a, const NDArray& b);
NDArray sub(const NDArray& a, const NDArray& b);
NDArray mul(const NDArray& a, const NDArray& b);
NDArray div(const NDArray& a, const NDArray& b);
NDArray pow(const NDArray& a, const NDArray& b);
NDArray maximum(const NDArray& a, const NDArray& b);
NDArray minimum(const NDArray& a, const NDArray& b);
NDArray eq(const NDArray& a, const NDArray& b);
NDArray ne(const NDArray& a, const NDArray& b);
NDArray lt(const NDArray& a, const NDArray& b);
NDArray le(const NDArray& a, const NDArray& b);
NDArray gt(const NDArray& a, const NDArray& b);
NDArray ge(const NDArray& a, const NDArray& b);

// One function per row of unary_ops.def: exp(a), sigmoid(a), gelu(a), ... (each is unary(UnaryOp::..., a)).
#define NEEDLE_UNARY(kind, name, ...) NDArray name(const NDArray& a);
#include "needle/core/unary_ops.def"

// cond ? a : b with broadcasting of all three; cond is converted to bool; a and b are promoted.
NDArray where(const NDArray& cond, const NDArray& a, const NDArray& b);

// ---- reductions -----------------------------------------------------------------------------------
// `axes` empty means every axis (Needle's axes=None). Sum of bool/int32 gives int64 (like NumPy/PyTorch).
// Mean of integers gives float32. Max/Min over an empty set raise ValueError.
NDArray sum(const NDArray& a, const Axes& axes = {}, bool keepdims = false);
NDArray max(const NDArray& a, const Axes& axes = {}, bool keepdims = false);
NDArray min(const NDArray& a, const Axes& axes = {}, bool keepdims = false);
NDArray mean(const NDArray& a, const Axes& axes = {}, bool keepdims = false);
// Index of the first maximum along `axis` (int64); without an axis, over the flattened array.
NDArray argmax(const NDArray& a, std::optional<std::int64_t> axis = std::nullopt, bool keepdims = false);
NDArray argmin(const NDArray& a, std::optional<std::int64_t> axis = std::nullopt, bool keepdims = false);

// ---- linear algebra -------------------------------------------------------------------------------
// NumPy matmul: 1-d operands are promoted to matrices and the added axis removed afterwards; batch
// dimensions broadcast. Both operands are promoted to a common numeric dtype (bool is refused).
NDArray matmul(const NDArray& a, const NDArray& b);

// ---- shape manipulation (copies) -------------------------------------------------------------------
// A compact copy with the axes reversed.
NDArray flip(const NDArray& a, const Axes& axes);
// pad_width[d] = (before, after) for every axis; new cells hold `value`.
NDArray pad(const NDArray& a, const std::vector<std::pair<std::int64_t, std::int64_t>>& pad_width,
            const Scalar& value = Scalar(0.0));
// Joins arrays of equal shape along a new axis / arrays along an existing axis (promoting dtypes).
NDArray stack(const std::vector<NDArray>& arrays, std::int64_t axis = 0);
NDArray concat(const std::vector<NDArray>& arrays, std::int64_t axis = 0);
// Needle's split: shape[axis] views with that axis removed (no copies).
std::vector<NDArray> split(const NDArray& a, std::int64_t axis = 0);
// NumPy's split into pieces of the given sizes along `axis` (views).
std::vector<NDArray> split(const NDArray& a, const std::vector<std::int64_t>& sizes, std::int64_t axis);

// ---- indexing --------------------------------------------------------------------------------------
// torch.gather / np.take_along_axis. index: integer array of a's rank, values in [-n, n) along axis.
NDArray gather(const NDArray& a, std::int64_t axis, const NDArray& index);
// Returns a copy of `a` with src accumulated at `index` along `axis` (torch.scatter_add).
NDArray scatter_add(const NDArray& a, std::int64_t axis, const NDArray& index, const NDArray& src);
// scatter_add onto zeros of `shape` (src's dtype and device), written in place of those zeros: a gradient
// that scatters (gather's, max pooling's) needs no copy of an input.
NDArray scatter_add_to_zeros(const Shape& shape, std::int64_t axis, const NDArray& index, const NDArray& src);
// One-hot rows in `dtype`: out[..., c] = (indices[...] == c) for c in [0, num_classes). Callers check that
// the integer indices lie in [0, num_classes), naming their op. An output too large to represent raises
// ValueError, one the device cannot hold MemoryError, both naming one_hot and the sizes asked for.
NDArray one_hot(const NDArray& indices, std::int64_t num_classes, DType dtype);

// ---- random ----------------------------------------------------------------------------------------
// Draw from `generator` (the default generator when null); identical numbers on every device.
NDArray rand(const Shape& shape, double low = 0.0, double high = 1.0, DType dtype = kDefaultFloat,
             Device device = default_device(), Generator* generator = nullptr);
NDArray randn(const Shape& shape, double mean = 0.0, double std = 1.0, DType dtype = kDefaultFloat,
              Device device = default_device(), Generator* generator = nullptr);
// 1 with probability p (Needle's randb; dtype bool by default).
NDArray randb(const Shape& shape, double p = 0.5, DType dtype = DType::Bool, Device device = default_device(),
              Generator* generator = nullptr);

// ---- operators -------------------------------------------------------------------------------------
inline NDArray operator+(const NDArray& a, const NDArray& b) { return add(a, b); }
inline NDArray operator-(const NDArray& a, const NDArray& b) { return sub(a, b); }
inline NDArray operator*(const NDArray& a, const NDArray& b) { return mul(a, b); }
inline NDArray operator/(const NDArray& a, const NDArray& b) { return div(a, b); }
inline NDArray operator+(const NDArray& a, const Scalar& s) { return binary(BinaryOp::Add, a, s); }
inline NDArray operator-(const NDArray& a, const Scalar& s) { return binary(BinaryOp::Sub, a, s); }
inline NDArray operator*(const NDArray& a, const Scalar& s) { return binary(BinaryOp::Mul, a, s); }
inline NDArray operator/(const NDArray& a, const Scalar& s) { return binary(BinaryOp::Div, a, s); }
inline NDArray operator+(const Scalar& s, const NDArray& a) { return binary(BinaryOp::Add, a, s, true); }
inline NDArray operator-(const Scalar& s, const NDArray& a) { return binary(BinaryOp::Sub, a, s, true); }
inline NDArray operator*(const Scalar& s, const NDArray& a) { return binary(BinaryOp::Mul, a, s, true); }
inline NDArray operator/(const Scalar& s, const NDArray& a) { return binary(BinaryOp::Div, a, s, true); }
inline NDArray operator-(const NDArray& a) { return negate(a); }

}  // namespace needle
