// 2-d convolution in NHWC layout (Needle's conv): the forward is an im2col (a strided view of the padded
// input) followed by one matmul; the backward is written with conv itself, flip, dilate, permute, pad
// and getitem, so it is differentiable again.
#include <algorithm>
#include <array>

#include "ops/op_helpers.h"

namespace needle::ops {

using detail::make;

namespace {

Tensor conv2d(const Tensor& a, const Tensor& b, std::int64_t stride, std::int64_t padding);

// Cells [lo[i], hi[i]) of t along axes 1 and 2 (H and W), reading zeros outside the tensor: negative
// starts and ends past the size are zero padding, the rest is cropped away.
Tensor window_hw(const Tensor& t, std::array<std::int64_t, 2> lo, std::array<std::int64_t, 2> hi) {
  std::vector<std::pair<std::int64_t, std::int64_t>> widths(static_cast<std::size_t>(t.ndim()), {0, 0});
  Index crop(static_cast<std::size_t>(t.ndim()), IndexItem::range());
  bool padded = false;
  bool cropped = false;
  for (std::size_t i = 0; i < 2; ++i) {
    const std::int64_t size = t.shape()[i + 1];
    const std::int64_t before = std::max<std::int64_t>(0, -lo[i]);
    const std::int64_t after = std::max<std::int64_t>(0, hi[i] - size);
    widths[i + 1] = {before, after};
    padded = padded || before > 0 || after > 0;
    // In the padded tensor the window starts at lo + before and has hi - lo cells.
    const std::int64_t start = lo[i] + before;
    const std::int64_t stop = hi[i] + before;
    crop[i + 1] = IndexItem::range(start, stop);
    cropped = cropped || start > 0 || stop < size + before + after;
  }
  const Tensor grown = padded ? pad(t, widths) : t;
  return cropped ? getitem(grown, crop) : grown;
}

// Output size of a valid convolution of `size` (already padded) with a kernel of `kernel` and `stride`.
std::int64_t out_size(std::int64_t size, std::int64_t kernel, std::int64_t stride) {
  return (size - kernel) / stride + 1;
}

// a (N, H, W, C_in) * b (KH, KW, C_in, C_out). Kernels may be rectangular here: the weight gradient is a
// convolution whose kernel is the (dilated) output gradient, H_out by W_out.
class ConvOp final : public Op {
 public:
  ConvOp(std::int64_t stride, std::int64_t padding) : stride_(stride), padding_(padding) {}
  std::string name() const override { return "conv"; }

  NDArray compute(const std::vector<NDArray>& in) const override {
    const Shape& as = in[0].shape();
    const Shape& bs = in[1].shape();
    const std::int64_t n = as[0];
    const std::int64_t c_in = as[3];
    const std::int64_t kh = bs[0];
    const std::int64_t kw = bs[1];
    const std::int64_t c_out = bs[3];
    const std::int64_t p = padding_;
    // as_strided needs the padded input's own layout, so make it compact first.
    const NDArray padded = (p > 0 ? needle::pad(in[0], {{0, 0}, {p, p}, {p, p}, {0, 0}}) : in[0]).compact();
    const std::int64_t h_out = out_size(padded.shape()[1], kh, stride_);
    const std::int64_t w_out = out_size(padded.shape()[2], kw, stride_);
    const Strides& st = padded.strides();
    // im2col without copying: cell (n, y, x, i, j, c) is padded[n, y * stride + i, x * stride + j, c].
    const NDArray patches =
        padded.as_strided({n, h_out, w_out, kh, kw, c_in},
                          {st[0], st[1] * stride_, st[2] * stride_, st[1], st[2], st[3]}, padded.offset());
    const NDArray columns = patches.compact().reshape({n * h_out * w_out, kh * kw * c_in});
    return needle::matmul(columns, in[1].reshape({kh * kw * c_in, c_out})).reshape({n, h_out, w_out, c_out});
  }

  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node) const override {
    const Tensor& a = node.inputs()[0];
    const Tensor& b = node.inputs()[1];
    const std::int64_t p = padding_;
    const std::array<std::int64_t, 2> size = {a.shape()[1], a.shape()[2]};
    const std::array<std::int64_t, 2> kernel = {b.shape()[0], b.shape()[1]};
    // The output gradient spread back to stride 1: output cell y sits at padded row y * stride.
    const Tensor spread = stride_ > 1 ? dilate(g, {1, 2}, stride_ - 1) : g;

    // d/da: a full correlation of `spread` with the flipped kernel (channels swapped), keeping only the
    // rows of the unpadded input. Input row h gets spread rows h + p - (K - 1) ... h + p; rows outside
    // `spread` are zeros (they include padded rows never read when (H + 2p - K) % stride != 0, which
    // dilate may or may not have produced), and when p > K - 1 the window starts inside it (a crop).
    const Tensor flipped = permute(flip(b, {0, 1}), {0, 1, 3, 2});
    const Tensor rows_for_a = window_hw(spread, {p - kernel[0] + 1, p - kernel[1] + 1}, {p + size[0], p + size[1]});
    const Tensor grad_a = conv2d(rows_for_a, flipped, 1, 0);

    // d/db[i, j, c, o] = sum over n and output cells of padded_a[n, y*s + i, x*s + j, c] g[n, y, x, o]: a
    // stride-1 convolution of the padded input (batch as channels) with the spread gradient as kernel,
    // cut or zero-extended to H + 2p - K + 1 rows so the result has exactly K rows.
    const Tensor kernel_for_b =
        window_hw(spread, {0, 0}, {size[0] + 2 * p - kernel[0] + 1, size[1] + 2 * p - kernel[1] + 1});
    const Tensor grad_b =
        permute(conv2d(permute(a, {3, 1, 2, 0}), permute(kernel_for_b, {1, 2, 0, 3}), 1, p), {1, 2, 0, 3});
    return {grad_a, grad_b};
  }

 private:
  std::int64_t stride_;
  std::int64_t padding_;
};

Tensor conv2d(const Tensor& a, const Tensor& b, std::int64_t stride, std::int64_t padding) {
  return make<ConvOp>({a, b}, stride, padding);
}

}  // namespace

Tensor conv(const Tensor& a, const Tensor& b, std::int64_t stride, std::int64_t padding) {
  const auto shapes = [&] { return str(shape_str(a.shape()), " and ", shape_str(b.shape())); };
  NEEDLE_CHECK(a.ndim() == 4 && b.ndim() == 4, ValueError,
               "conv: expected input (N, H, W, C_in) and weight (K, K, C_in, C_out), got shapes ", shapes());
  NEEDLE_CHECK(a.shape()[3] == b.shape()[2], ValueError, "conv: input channels ", a.shape()[3],
               " do not match weight's C_in ", b.shape()[2], " (shapes ", shapes(), ")");
  NEEDLE_CHECK(b.shape()[0] == b.shape()[1] && b.shape()[0] >= 1, ValueError,
               "conv: weight must be a square kernel (K, K, C_in, C_out) with K >= 1, got shapes ", shapes());
  NEEDLE_CHECK(stride >= 1, ValueError, "conv: stride must be >= 1, got ", stride, " (shapes ", shapes(), ")");
  NEEDLE_CHECK(padding >= 0, ValueError, "conv: padding must be >= 0, got ", padding, " (shapes ", shapes(), ")");
  const std::int64_t k = b.shape()[0];
  NEEDLE_CHECK(a.shape()[1] + 2 * padding >= k && a.shape()[2] + 2 * padding >= k, ValueError, "conv: kernel size ", k,
               " exceeds the padded input (padding ", padding, ", shapes ", shapes(), ")");
  detail::check_floating("conv", a);
  detail::check_floating("conv", b);
  NEEDLE_CHECK(a.dtype() == b.dtype(), TypeError, "conv: input and weight dtypes differ: ", dtype_name(a.dtype()),
               " and ", dtype_name(b.dtype()), " (shapes ", shapes(), ")");
  detail::check_same_device("conv", {a, b});
  return conv2d(a, b, stride, padding);
}

}  // namespace needle::ops
