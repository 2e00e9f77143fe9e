// 2-d pooling over NCHW. Both pools are a window extraction (unfold: an as_strided view of the windows,
// made contiguous) followed by a reduction over the last two axes: max for max_pool2d (whose gradient
// routes to the arg-max, sharing ties), mean for avg_pool2d. Unfold's gradient is fold (summing each
// window's gradient back onto the cells it read), and fold's gradient is unfold, so the pools are
// differentiable to any order.
#include <limits>

#include "needle/core/checked_math.h"
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::make;

namespace {

Tensor unfold(const Tensor& a, std::int64_t kernel, std::int64_t stride);
Tensor fold(const Tensor& windows, std::int64_t stride, std::int64_t height, std::int64_t width);

std::int64_t out_size(std::int64_t size, std::int64_t kernel, std::int64_t stride) {
  return (size - kernel) / stride + 1;
}

// The step between consecutive windows along an axis whose cells are `cell_stride` apart. With two windows
// or more, (count - 1) * stride <= size - kernel, so the product fits; with one the step is never taken,
// and a stride as large as the axis must not overflow computing it.
std::int64_t window_step(std::int64_t cell_stride, std::int64_t stride, std::int64_t count) {
  return count > 1 ? cell_stride * stride : cell_stride;
}

// (N, C, H, W) -> (N, C, H_out, W_out, K, K): cell (n, c, y, x, i, j) is a[n, c, y * stride + i, x * stride + j].
class UnfoldOp final : public SingleOutputOp {
 public:
  UnfoldOp(std::int64_t kernel, std::int64_t stride) : kernel_(kernel), stride_(stride) {}
  std::string name() const override { return "unfold"; }
  // Reads only the input's shape.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray a = in[0].compact();  // as_strided needs a known row-major layout
    const Shape& s = a.shape();
    const Strides& st = a.strides();
    const std::int64_t h_out = out_size(s[2], kernel_, stride_);
    const std::int64_t w_out = out_size(s[3], kernel_, stride_);
    return a
        .as_strided(
            {s[0], s[1], h_out, w_out, kernel_, kernel_},
            {st[0], st[1], window_step(st[2], stride_, h_out), window_step(st[3], stride_, w_out), st[2], st[3]},
            a.offset())
        .compact();
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    const Shape& s = node.inputs()[0].shape();
    return {fold(g, stride_, s[2], s[3])};
  }

 private:
  std::int64_t kernel_;
  std::int64_t stride_;
};

// The adjoint of unfold: (N, C, H_out, W_out, K, K) -> (N, C, H, W), each window cell added onto the input
// cell it was read from (cells of overlapping windows accumulate; cells no window reads stay 0).
class FoldOp final : public SingleOutputOp {
 public:
  FoldOp(std::int64_t stride, std::int64_t height, std::int64_t width)
      : stride_(stride), height_(height), width_(width) {}
  std::string name() const override { return "fold"; }
  // Reads only the input's shape.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray& w = in[0];
    const Shape& s = w.shape();
    const std::int64_t h_out = s[2];
    const std::int64_t w_out = s[3];
    const std::int64_t kernel = s[4];
    NDArray out = NDArray::zeros({s[0], s[1], height_, width_}, w.dtype(), w.device());
    // One strided slice of the output per kernel offset (i, j): K * K whole-array adds, not a loop per cell.
    for (std::int64_t i = 0; i < kernel; ++i) {
      for (std::int64_t j = 0; j < kernel; ++j) {
        const Index cells = {IndexItem::range(), IndexItem::range(),
                             IndexItem::range(i, i + (h_out - 1) * stride_ + 1, stride_),
                             IndexItem::range(j, j + (w_out - 1) * stride_ + 1, stride_)};
        const NDArray tap = w.index({IndexItem::ellipsis(), IndexItem::at(i), IndexItem::at(j)});
        out.assign(cells, needle::add(out.index(cells), tap));
      }
    }
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    return {unfold(g, node.inputs()[0].shape()[4], stride_)};
  }

 private:
  std::int64_t stride_;
  std::int64_t height_;
  std::int64_t width_;
};

Tensor unfold(const Tensor& a, std::int64_t kernel, std::int64_t stride) { return make<UnfoldOp>({a}, kernel, stride); }

Tensor fold(const Tensor& windows, std::int64_t stride, std::int64_t height, std::int64_t width) {
  return make<FoldOp>({windows}, stride, height, width);
}

// Checks the arguments shared by both pools and returns the stride to use.
std::int64_t check_pool(std::string_view op, const Tensor& a, std::int64_t kernel, std::optional<std::int64_t> stride,
                        std::int64_t padding) {
  NEEDLE_CHECK(a.ndim() == 4, ValueError, op, ": expected input (N, C, H, W), got shape ", shape_str(a.shape()));
  detail::check_floating(op, a);
  NEEDLE_CHECK(kernel >= 1, ValueError, op, ": kernel_size must be >= 1, got ", kernel);
  const std::int64_t s = stride.value_or(kernel);
  NEEDLE_CHECK(s >= 1, ValueError, op, ": stride must be >= 1, got ", s);
  // As in PyTorch: more padding would let a window lie entirely in the padding. (Written as a division:
  // 2 * padding overflows for a padding near 2**63.)
  NEEDLE_CHECK(padding >= 0 && padding <= kernel / 2, ValueError, op,
               ": padding must lie in [0, kernel_size / 2], got padding ", padding, " for kernel_size ", kernel);
  // The padded input and the (N, C, H_out, W_out, K, K) windows unfold makes of it must be representable:
  // checked here so that the error names the pool and its arguments, not a wrapped internal shape.
  const Shape& x = a.shape();
  const std::optional<std::int64_t> height = checked_add(x[2], 2 * padding);  // padding <= kernel / 2: 2 * fits
  const std::optional<std::int64_t> width = checked_add(x[3], 2 * padding);
  NEEDLE_CHECK(height && width && checked_numel({x[0], x[1], *height, *width}), ValueError, op, ": padding ", padding,
               " makes the padded input of shape ", shape_str(x), " larger than ", kMaxSizeText, " elements");
  NEEDLE_CHECK(*height >= kernel && *width >= kernel, ValueError, op, ": kernel_size ", kernel,
               " exceeds the padded input (padding ", padding, ", shape ", shape_str(x), ")");
  const Shape windows = {x[0], x[1], out_size(*height, kernel, s), out_size(*width, kernel, s), kernel, kernel};
  NEEDLE_CHECK(checked_numel(windows), ValueError, op, ": kernel_size ", kernel, " with stride ", s, " and padding ",
               padding, " gives windows of shape ", shape_str(windows), " for an input of shape ", shape_str(x),
               ", more than ", kMaxSizeText, " elements");
  return s;
}

Tensor pad_hw(const Tensor& a, std::int64_t padding, double value) {
  if (padding == 0) return a;
  return pad(a, {{0, 0}, {0, 0}, {padding, padding}, {padding, padding}}, value);
}

}  // namespace

Tensor max_pool2d(const Tensor& a, std::int64_t kernel_size, std::optional<std::int64_t> stride, std::int64_t padding) {
  const std::int64_t s = check_pool("max_pool2d", a, kernel_size, stride, padding);
  // -inf padding never wins a window (each window holds at least one real cell, see check_pool).
  const Tensor padded = pad_hw(a, padding, -std::numeric_limits<double>::infinity());
  return max(unfold(padded, kernel_size, s), {4, 5});
}

Tensor avg_pool2d(const Tensor& a, std::int64_t kernel_size, std::optional<std::int64_t> stride, std::int64_t padding) {
  const std::int64_t s = check_pool("avg_pool2d", a, kernel_size, stride, padding);
  // Zero padding counted in the average (PyTorch's count_include_pad=True).
  return mean(unfold(pad_hw(a, padding, 0.0), kernel_size, s), {4, 5});
}

}  // namespace needle::ops
