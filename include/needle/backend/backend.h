// The kernel interface: the only thing a new device implements.
//
// The layer above (NDArray and its functions in core/) validates arguments, works out dtypes and
// output shapes, broadcasts inputs with zero strides, allocates outputs, and then calls one of these
// kernels. Kernels therefore get simple, pre-checked work: every operand already has the same shape
// (except where a kernel says otherwise) and the dtype the kernel documents. They must still accept
// arbitrary strides (zero, negative, non-contiguous) on inputs and outputs, and shapes with size-0
// or size-1 dimensions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "needle/core/device.h"
#include "needle/core/dtype.h"
#include "needle/core/kernel_types.h"
#include "needle/core/scalar.h"
#include "needle/core/shape.h"

namespace needle {

// What a kernel sees of an array: the address of its first element (storage + offset), its dtype,
// shape and strides (in elements). Element (i0, i1, ...) lives at data + sum(ik * strides[k]) elements.
struct StridedView {
  void* data = nullptr;
  DType dtype = DType::Float32;
  Shape shape;
  Strides strides;

  [[nodiscard]] std::int64_t ndim() const { return static_cast<std::int64_t>(shape.size()); }
  [[nodiscard]] std::int64_t size() const { return numel(shape); }
  [[nodiscard]] bool is_contiguous() const { return strides == compact_strides(shape) || size() <= 1; }
  template <typename T>
  [[nodiscard]] T* ptr() const {
    return static_cast<T*>(data);
  }
};

class Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  [[nodiscard]] virtual std::string_view name() const = 0;

  // ---- memory -------------------------------------------------------------------------------
  // Returns at least `nbytes` bytes aligned to 64 bytes (a valid unique pointer even for 0 bytes).
  virtual void* allocate(std::size_t nbytes) = 0;
  virtual void deallocate(void* data, std::size_t nbytes) = 0;
  // Byte copies between this device's memory and host memory (same thing for host devices).
  virtual void copy_from_host(void* device_dst, const void* host_src, std::size_t nbytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* device_src, std::size_t nbytes) = 0;
  // Waits until every kernel launched so far has finished (no-op on synchronous devices).
  virtual void synchronize() {}
  // Bytes of freed memory the backend keeps for reuse instead of returning it (0 without a cache), and
  // a way to return them; release_cache returns how many bytes it released.
  [[nodiscard]] virtual std::size_t cached_bytes() const { return 0; }
  virtual std::size_t release_cache() { return 0; }

  // ---- element-wise -------------------------------------------------------------------------
  // out[i] = value converted to out.dtype.
  virtual void fill(const StridedView& out, const Scalar& value) = 0;
  // out[i] = in[i] converted to out.dtype (any dtype pair; same shape). Used for compact, astype,
  // setitem, flip (negative strides), pad and concat (copies into slices of the output).
  virtual void copy(const StridedView& out, const StridedView& in) = 0;
  // out[i] = op(in[i]); in and out share a dtype. Exp/Log/Sqrt/Tanh/Sigmoid/Erf get floating dtypes only;
  // Neg/Abs/Relu get any numeric dtype (not bool).
  virtual void unary(UnaryOp op, const StridedView& out, const StridedView& in) = 0;
  // out[i] = op(a[i], b[i]); a and b share a dtype and out's shape (broadcast by zero strides).
  // out.dtype is bool for comparisons, a's dtype otherwise. Div on integers truncates toward zero
  // and raises ValueError on division by zero; Pow on integers raises ValueError for negative
  // exponents. Bool inputs only reach comparisons, Maximum and Minimum.
  virtual void binary(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) = 0;
  // out[i] = cond[i] ? a[i] : b[i]; cond is bool; a, b, out share a dtype; all share out's shape.
  virtual void where(const StridedView& out, const StridedView& cond, const StridedView& a, const StridedView& b) = 0;

  // ---- reductions ---------------------------------------------------------------------------
  // `out` has in's rank; every axis where out.shape[d] == 1 and in.shape[d] != 1 is reduced (the
  // "keepdims" shape). out and in share a dtype. Sum of an empty set is 0; Max/Min of an empty set
  // never reach the kernel (rejected above). Bool only reaches Max/Min.
  virtual void reduce(ReduceOp op, const StridedView& out, const StridedView& in) = 0;
  // Index (int64) of the first largest/smallest element along `axis`; out has in's rank with
  // out.shape[axis] == 1 and in.shape[axis] >= 1. NaN counts as the largest and the smallest.
  virtual void arg_reduce(ArgReduceOp op, const StridedView& out, const StridedView& in, std::int64_t axis) = 0;

  // ---- linear algebra -----------------------------------------------------------------------
  // out[..., m, n] = sum_k a[..., m, k] * b[..., k, n]. All three have the same rank >= 2 and the same
  // batch dimensions (broadcast by zero strides); a, b, out share a numeric dtype (not bool).
  virtual void matmul(const StridedView& out, const StridedView& a, const StridedView& b) = 0;

  // ---- indexing -----------------------------------------------------------------------------
  // torch.gather / np.take_along_axis: out[..., i, ...] = in[..., index[..., i, ...], ...] along `axis`.
  // index is int64 with out's shape; in has out's rank and in.shape[d] >= out.shape[d] for d != axis.
  // Index values are already checked to be in [0, in.shape[axis]).
  virtual void gather(const StridedView& out, const StridedView& in, const StridedView& index, std::int64_t axis) = 0;
  // torch.Tensor.scatter_add_: out[..., index[..., i, ...], ...] += src[..., i, ...] along `axis`.
  // index is int64 with src's shape; out has src's rank and out.shape[d] >= src.shape[d] for d != axis.
  // Index values are already checked. Accumulation order is the row-major order of src.
  virtual void scatter_add(const StridedView& out, const StridedView& index, const StridedView& src,
                           std::int64_t axis) = 0;

  // ---- random -------------------------------------------------------------------------------
  // Fills `out` (contiguous, floating dtype; any dtype for Bernoulli) from a counter-based generator:
  // element i (row-major) depends only on (seed, offset + i), so every backend draws the same numbers
  // for the same generator state. See core/random.h for the exact bit recipe every backend follows.
  virtual void random(RandomDistribution dist, const StridedView& out, double p0, double p1, std::uint64_t seed,
                      std::uint64_t offset) = 0;

  // ---- fused neural-network kernels ---------------------------------------------------------
  // Row-wise kernels that replace chains of the primitives above with one or two passes over memory.
  // Unlike the primitives, every operand is contiguous (the op layer moves the normalized axis last and
  // compacts), all share one shape and one floating dtype (float32 or float64), and each is read as
  // rows x cols with cols = the last dimension (rows = 1 for 0-d arrays). Shapes with 0 rows or 0 cols
  // are allowed (nothing to write, or empty rows). Outputs never alias inputs. The defaults here
  // compose the primitives above (fused_defaults.cpp), so a backend that does not override them still
  // computes the right thing, only with more passes and temporaries.
  //
  // Per row: m = max(in), out = exp(in - m) / sum(exp(in - m)) (softmax), or
  // out = in - m - log(sum(exp(in - m))) (log-softmax, when `log`).
  virtual void softmax(const StridedView& out, const StridedView& in, bool log);
  // The vector-Jacobian product of softmax given its output y and the gradient g of the output, per row:
  // dx = y * (g - sum(g * y)) (softmax), or dx = g - exp(y) * sum(g) (log-softmax, y = log-probabilities).
  virtual void softmax_backward(const StridedView& dx, const StridedView& g, const StridedView& y, bool log);
  // Per row of the contiguous rows x cols `in`: out = log(sum(exp(in))), computed as m + log(sum(exp(in - m)))
  // with m the row's maximum, or 0 where that maximum is infinite (so a row of -inf gives -inf, one with
  // +inf gives +inf, and NaN gives NaN). `out` is contiguous with in's shape less the last axis (a 0-d `in`
  // is one row of one column); a row of no columns gives -inf.
  virtual void logsumexp(const StridedView& out, const StridedView& in);
  // Per row: out = (x - mean(x)) / sqrt(var(x) + eps), with the biased variance mean((x - mean)^2) as
  // PyTorch uses; no affine weight or bias.
  virtual void layer_norm(const StridedView& out, const StridedView& x, double eps);
  // The vector-Jacobian product of layer_norm given its input x and the gradient g of its output, per row
  // (mean, rstd = 1 / sqrt(var + eps) and xhat = (x - mean) * rstd recomputed from x):
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
  virtual void layer_norm_backward(const StridedView& dx, const StridedView& g, const StridedView& x, double eps);

  // Batch normalization of x read as (N, C, S): every axis but the channel axis C is normalized over
  // (S = the product of the spatial dimensions, 1 for BatchNorm1d). x and y have shape (N, C, S); mean,
  // var, weight and bias have shape (C,); all are contiguous and share x's floating dtype, and N * S >= 1
  // when C >= 1. Per channel c, with M = N * S: mean[c] = sum(x[:, c, :]) / M, var[c] = the biased
  // variance sum((x - mean)^2) / M (both written), and y = (x - mean) / sqrt(var + eps) * weight + bias.
  virtual void batch_norm(const StridedView& y, const StridedView& mean, const StridedView& var, const StridedView& x,
                          const StridedView& weight, const StridedView& bias, double eps);
  // The vector-Jacobian product of batch_norm given the gradient g of y, its input x and the mean and var
  // it wrote (shapes as above; dx has x's shape, dweight and dbias are (C,)). Per channel, with
  // invstd = 1 / sqrt(var + eps) and xhat = (x - mean) * invstd:
  // dbias = sum(g), dweight = sum(g * xhat), dx = weight * invstd * (g - dbias / M - xhat * dweight / M).
  virtual void batch_norm_backward(const StridedView& dx, const StridedView& dweight, const StridedView& dbias,
                                   const StridedView& g, const StridedView& x, const StridedView& mean,
                                   const StridedView& var, const StridedView& weight, double eps);

  // ---- fused attention ------------------------------------------------------------------------
  // Scaled dot-product attention over a flat batch of B = batch * heads independent problems, without the
  // L x S score matrix ever being stored whole (the cpu kernel walks it in tiles with an online softmax).
  // Operands are contiguous and share a floating dtype (float32 or float64): q (B, L, d), k (B, S, d),
  // v (B, S, dv), out (B, L, dv), logsumexp (B, L); any of B, L, S, d, dv may be 0. Per problem, with
  // s[i][j] = scale * q[i] . k[j] for the visible keys (all, or j <= i when `causal`, top-left aligned
  // also when L != S):
  //   logsumexp[i] = log(sum_j exp(s[i][j])) (-inf when no key is visible),
  //   out[i] = sum_j exp(s[i][j] - logsumexp[i]) v[j] (0 when no key is visible).
  // The default composes the primitives above (fused_defaults.cpp) on full score matrices.
  virtual void attention(const StridedView& out, const StridedView& logsumexp, const StridedView& q,
                         const StridedView& k, const StridedView& v, double scale, bool causal);
  // The vector-Jacobian product of attention given the gradient g (B, L, dv) of out, and the forward's out
  // and logsumexp (FlashAttention-2's backward): with p[i][j] = exp(s[i][j] - logsumexp[i]) (0 if masked),
  // D[i] = g[i] . out[i] and ds[i][j] = p[i][j] * (g[i] . v[j] - D[i]):
  //   dv[j] = sum_i p[i][j] g[i],  dq[i] = scale * sum_j ds[i][j] k[j],  dk[j] = scale * sum_i ds[i][j] q[i].
  // dq, dk, dv have the shapes of q, k, v, and are only written.
  virtual void attention_backward(const StridedView& dq, const StridedView& dk, const StridedView& dv,
                                  const StridedView& g, const StridedView& q, const StridedView& k,
                                  const StridedView& v, const StridedView& out, const StridedView& logsumexp,
                                  double scale, bool causal);

  // ---- fused recurrent kernels --------------------------------------------------------------------
  // One LSTM cell step, element by element along the rows of a batch, instead of a dozen kernels that each
  // allocate an array. With z = gates (+ gates2 when given), read as four blocks of H columns in the order
  // i, f, g, o:
  //   c = sigmoid(z_f) * c_prev + sigmoid(z_i) * tanh(z_g);  h = sigmoid(z_o) * tanh(c)
  // h, c, c_prev are (B, H) and gates, gates2 are (B, 4H). Every operand is 2-D with a column stride of 1
  // and any row stride (0 for an input reads one row for the whole batch, e.g. a bias); all share one
  // floating dtype (float32 or float64); outputs do not overlap each other or the inputs. An absent
  // gates2 or c_prev (data == nullptr, as StridedView{} is) is no second summand and the zero state.
  // The defaults compose the primitives above (fused_defaults.cpp).
  virtual void lstm_cell(const StridedView& h, const StridedView& c, const StridedView& gates,
                         const StridedView& gates2, const StridedView& c_prev);
  // The vector-Jacobian product of lstm_cell given the gradients dh and dc of its outputs (same operand
  // rules; dgates is (B, 4H), dc_prev (B, H) and absent exactly when c_prev is). The activations and c are
  // recomputed from the pre-activations; with tc = tanh(c) and dc' = dc + dh * o * (1 - tc^2):
  //   dz_i = dc' * g * i (1 - i);  dz_f = dc' * c_prev * f (1 - f);  dz_g = dc' * i * (1 - g^2);
  //   dz_o = dh * tc * o (1 - o);  dc_prev = dc' * f
  virtual void lstm_cell_backward(const StridedView& dgates, const StridedView& dc_prev, const StridedView& dh,
                                  const StridedView& dc, const StridedView& gates, const StridedView& gates2,
                                  const StridedView& c_prev);

  // ---- convolution ---------------------------------------------------------------------------
  // The two data movements of a K x K convolution over an (N, H, W, C) image (stride >= 1, padding >= 0),
  // whose columns are (N, H_out, W_out, K, K, C) with H_out = (H + 2 * padding - K) / stride + 1 (likewise
  // W_out). Columns are contiguous; image and columns share a floating dtype (float32 or float64).
  // im2col: cols[n, y, x, i, j, c] = image[n, y * stride + i - padding, x * stride + j - padding, c], 0 where
  // that position is outside the image (the padding), so no padded copy of the image is made. The image
  // may have any strides (a permuted NCHW array is read in place).
  virtual void im2col(const StridedView& cols, const StridedView& image, std::int64_t stride, std::int64_t padding);
  // col2im, the adjoint: image (contiguous, overwritten) = the sum over every column entry of its value
  // added at the image cell im2col read it from; entries in the padding are dropped.
  virtual void col2im(const StridedView& image, const StridedView& cols, std::int64_t stride, std::int64_t padding);

  // ---- fused optimizer updates ----------------------------------------------------------------
  // One Adam step for one parameter, in place and element by element, instead of a dozen passes that
  // each allocate an array. param, grad, exp_avg (m) and exp_avg_sq (v) are contiguous, share a shape and
  // a floating dtype, and do not overlap:
  //   decoupled (AdamW): p = p * (1 - lr * wd); otherwise g = g + wd * p
  //   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
  //   p = p - lr * (m / correction1) / (sqrt(v / correction2) + eps)
  // The default composes the primitives above (fused_defaults.cpp).
  virtual void adam_update(const StridedView& param, const StridedView& grad, const StridedView& exp_avg,
                           const StridedView& exp_avg_sq, const AdamStep& step);
  // One SGD step for one parameter, in place and element by element. param, grad and momentum_buffer (u)
  // are contiguous, share a shape and a floating dtype, and do not overlap; momentum_buffer may be absent
  // (data == nullptr) only when momentum is 0. Needle's momentum is a moving average of the gradient:
  //   g = g + p * wd (only when wd != 0)
  //   with a buffer: u = g * (1 - momentum) on the first step, else u = u * momentum + g * (1 - momentum);
  //                  p = p - u * lr
  //   without one:   p = p - g * lr
  // The default composes the primitives above (fused_defaults.cpp).
  virtual void sgd_update(const StridedView& param, const StridedView& grad, const StridedView& momentum_buffer,
                          const SgdStep& step);
};

// The backend that runs kernels for `device`; throws RuntimeError if that device is not enabled.
Backend& backend_for(Device device);

// The backend compiled in for `device`, ignoring any override below.
Backend& builtin_backend_for(Device device);
// Puts `backend` in front of the built-in backend of every device of type `type` (nullptr removes it) and
// returns the override it replaces. This is the hook of the debugging tools (the tracer wraps each device's
// backend to time its kernels) and of tests (a backend with one deliberately wrong kernel). The override
// must outlive its installation and hand allocate/deallocate to builtin_backend_for(): storage it
// allocates may be freed after it is removed. While none is installed, backend_for pays one load.
Backend* set_backend_override(DeviceType type, Backend* backend);

}  // namespace needle
