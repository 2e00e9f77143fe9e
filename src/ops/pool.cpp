// 2-d pooling over NCHW. max_pool2d is one op with two outputs, the maxima and where each was found (plane
// positions, from the array layer's max_pool2d: one fused kernel on the cpu), whose gradient sends each
// output gradient back to that position (max_pool2d_backward); the gradient of that is a gather of the same
// positions, so max pooling is differentiable to any order. avg_pool2d is a window extraction (unfold: an
// as_strided view of the windows, made contiguous) followed by a mean over the last two axes; unfold's
// gradient is fold (summing each window's gradient back onto the cells it read), and fold's gradient is
// unfold.
#include <memory>
#include <utility>

#include "needle/core/checked_math.h"
#include "needle/core/fused_ops.h"
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

// grad_out (N, C, H_out, W_out) and the positions max pooling took (int64, no gradient) -> (N, C, H, W):
// each gradient added at its position. Linear in grad_out; its adjoint reads grad_out's positions back.
class MaxPoolScatterOp final : public SingleOutputOp {
 public:
  explicit MaxPoolScatterOp(Shape image_shape) : image_shape_(std::move(image_shape)) {}
  std::string name() const override { return "max_pool2d_backward"; }
  // Reads the positions.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.input(1); }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::max_pool2d_backward(in[0], in[1], image_shape_);
  }
  std::vector<Tensor> gradient(const Tensor& h, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    // <scatter(g), h> = <g, h read at the positions>.
    const Shape& out = node.inputs()[0].shape();
    const Shape flat_out{out[0], out[1], out[2] * out[3]};
    const Tensor plane = reshape(h, {image_shape_[0], image_shape_[1], image_shape_[2] * image_shape_[3]});
    return {reshape(gather(plane, 2, reshape(node.inputs()[1], flat_out)), out), Tensor()};
  }

 private:
  Shape image_shape_;
};

// Input: the image (N, C, H, W). Outputs: the window maxima and their int64 plane positions iy * W + ix
// (the first maximum of a window with ties, as PyTorch's), which the gradient reads.
class MaxPool2dOp final : public Op {
 public:
  MaxPool2dOp(std::int64_t kernel, std::int64_t stride, std::int64_t padding)
      : kernel_(kernel), stride_(stride), padding_(padding) {}
  std::string name() const override { return "max_pool2d"; }
  // The positions (saved with the maxima, the node's other output).
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.outputs(); }
  std::size_t num_outputs() const override { return 2; }
  std::vector<NDArray> compute_outputs(const std::vector<NDArray>& in) const override {
    MaxPoolResult r = needle::max_pool2d(in[0], kernel_, stride_, padding_);
    return {std::move(r.values), std::move(r.indices)};
  }
  std::vector<Tensor> gradient_outputs(const std::vector<Tensor>& out_grads, const std::vector<Tensor>& outputs,
                                       const std::vector<Tensor>& inputs,
                                       const NeedsGrad& /*needs_grad*/) const override {
    if (!out_grads[0].defined()) return {Tensor()};
    return {make<MaxPoolScatterOp>({out_grads[0], outputs[1]}, inputs[0].shape())};
  }

 private:
  std::int64_t kernel_;
  std::int64_t stride_;
  std::int64_t padding_;
};

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
  return Tensor::from_op_outputs(std::make_shared<const MaxPool2dOp>(kernel_size, s, padding), {a}).front();
}

Tensor avg_pool2d(const Tensor& a, std::int64_t kernel_size, std::optional<std::int64_t> stride, std::int64_t padding) {
  const std::int64_t s = check_pool("avg_pool2d", a, kernel_size, stride, padding);
  // Zero padding counted in the average (PyTorch's count_include_pad=True).
  return mean(unfold(pad_hw(a, padding, 0.0), kernel_size, s), {4, 5});
}

}  // namespace needle::ops
