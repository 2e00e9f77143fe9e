// Shape ops: views and rearrangements of data. Their gradients undo the rearrangement.
#include <algorithm>
#include <numeric>

#include "needle/core/checked_math.h"
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::make;

namespace {

class ReshapeOp final : public SingleOutputOp {
 public:
  explicit ReshapeOp(Shape shape) : shape_(std::move(shape)) {}
  std::string name() const override { return "reshape"; }
  // Reads only the input's shape.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0].reshape(shape_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    return {reshape(g, node.inputs()[0].shape())};
  }

 private:
  Shape shape_;
};

class BroadcastToOp final : public SingleOutputOp {
 public:
  explicit BroadcastToOp(Shape shape) : shape_(std::move(shape)) {}
  std::string name() const override { return "broadcast_to"; }
  // Reads only the input's shape.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0].broadcast_to(shape_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    return {sum_to_shape(g, node.inputs()[0].shape())};
  }

 private:
  Shape shape_;
};

class PermuteOp final : public SingleOutputOp {
 public:
  explicit PermuteOp(Axes axes) : axes_(std::move(axes)) {}
  std::string name() const override { return "permute"; }
  // Reads nothing of its input.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0].permute(axes_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    Axes inverse(axes_.size());
    for (std::size_t i = 0; i < axes_.size(); ++i)
      inverse[static_cast<std::size_t>(axes_[i])] = static_cast<std::int64_t>(i);
    return {permute(g, inverse)};
  }

 private:
  Axes axes_;  // normalized
};

class FlipOp final : public SingleOutputOp {
 public:
  explicit FlipOp(Axes axes) : axes_(std::move(axes)) {}
  std::string name() const override { return "flip"; }
  // Reads nothing of its input.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::flip(in[0], axes_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    return {flip(g, axes_)};
  }

 private:
  Axes axes_;
};

class PadOp final : public SingleOutputOp {
 public:
  PadOp(std::vector<std::pair<std::int64_t, std::int64_t>> pad_width, double value)
      : pad_width_(std::move(pad_width)), value_(value) {}
  std::string name() const override { return "pad"; }
  // Reads only the input's shape.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::pad(in[0], pad_width_, Scalar(value_));
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    // The padding cells are constants: only the interior passes the gradient on.
    const Shape& shape = node.inputs()[0].shape();
    Index interior;
    for (std::size_t i = 0; i < shape.size(); ++i) {
      interior.push_back(IndexItem::range(pad_width_[i].first, pad_width_[i].first + shape[i]));
    }
    return {getitem(g, interior)};
  }

 private:
  std::vector<std::pair<std::int64_t, std::int64_t>> pad_width_;
  double value_;
};

class GetitemOp final : public SingleOutputOp {
 public:
  explicit GetitemOp(Index index) : index_(std::move(index)) {}
  std::string name() const override { return "getitem"; }
  // Reads only the input's shape.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0].index(index_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override;

 private:
  Index index_;
};

// The adjoint of getitem: writes its input into the indexed cells of zeros of `shape`. Basic indexing
// never selects a cell twice, so writing (rather than accumulating) is exact.
class GetitemBackwardOp final : public SingleOutputOp {
 public:
  GetitemBackwardOp(Index index, Shape shape) : index_(std::move(index)), shape_(std::move(shape)) {}
  std::string name() const override { return "getitem_backward"; }
  // Reads nothing of its input.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    NDArray out = NDArray::zeros(shape_, in[0].dtype(), in[0].device());
    out.assign(index_, in[0]);
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    return {getitem(g, index_)};
  }

 private:
  Index index_;
  Shape shape_;
};

std::vector<Tensor> GetitemOp::gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const {
  return {make<GetitemBackwardOp>({g}, index_, node.inputs()[0].shape())};
}

// An index selecting [start, start + length) along `axis` and everything elsewhere.
Index slab(std::int64_t ndim, std::int64_t axis, std::int64_t start, std::int64_t length) {
  Index index(static_cast<std::size_t>(ndim), IndexItem::range());
  index[static_cast<std::size_t>(axis)] = IndexItem::range(start, start + length);
  return index;
}

// An index picking element `i` of `axis` (which it removes) and everything elsewhere.
Index pick(std::int64_t axis, std::int64_t i) {
  Index index(static_cast<std::size_t>(axis), IndexItem::range());
  index.push_back(IndexItem::at(i));
  return index;
}

class ConcatOp final : public SingleOutputOp {
 public:
  explicit ConcatOp(std::int64_t axis) : axis_(axis) {}
  std::string name() const override { return "concat"; }
  // Reads only the inputs' shapes.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::concat(in, axis_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    std::vector<Tensor> grads;
    std::int64_t start = 0;
    for (std::size_t i = 0; i < node.inputs().size(); ++i) {
      const std::int64_t length = node.inputs()[i].shape()[static_cast<std::size_t>(axis_)];
      grads.push_back(needs_grad[i] ? getitem(g, slab(g.ndim(), axis_, start, length)) : Tensor());
      start += length;
    }
    return grads;
  }

 private:
  std::int64_t axis_;  // normalized
};

class StackOp final : public SingleOutputOp {
 public:
  explicit StackOp(std::int64_t axis) : axis_(axis) {}
  std::string name() const override { return "stack"; }
  // Reads only the inputs' shapes.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::stack(in, axis_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    std::vector<Tensor> grads;
    for (std::size_t i = 0; i < node.inputs().size(); ++i) {
      grads.push_back(needs_grad[i] ? getitem(g, pick(axis_, static_cast<std::int64_t>(i))) : Tensor());
    }
    return grads;
  }

 private:
  std::int64_t axis_;  // normalized against the output's rank
};

// Every slice along an axis, with the axis removed (x[0], x[1], ... as views), in one node: its gradient
// stacks the pieces' gradients into one array, where one getitem per piece would each scatter into zeros
// of the whole input (q, k, v = qkv unpacks three slices of one projection). The stacked gradient is laid
// out in memory like the input, so that the views the input came from (a permute of a projection's
// output, say) take it back as views, without a copy.
class SplitOp final : public Op {
 public:
  SplitOp(std::int64_t axis, std::int64_t count) : axis_(axis), count_(count) {}
  std::string name() const override { return "split"; }
  std::size_t num_outputs() const override { return static_cast<std::size_t>(count_); }
  // Reads only the input's shape.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  std::vector<NDArray> compute_outputs(const std::vector<NDArray>& in) const override {
    std::vector<NDArray> parts;
    for (std::int64_t i = 0; i < count_; ++i) parts.push_back(in[0].index(pick(axis_, i)));
    return parts;
  }
  std::vector<Tensor> gradient_outputs(const std::vector<Tensor>& out_grads, const std::vector<Tensor>& outputs,
                                       const std::vector<Tensor>& inputs,
                                       const NeedsGrad& /*needs_grad*/) const override {
    // The input's axes from the outermost in memory (largest stride) to the innermost.
    const Strides& strides = inputs[0].value().strides();
    Axes order(strides.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t x, std::int64_t y) {
      return strides[static_cast<std::size_t>(x)] > strides[static_cast<std::size_t>(y)];
    });
    // Each piece's axes in that order (the split axis left out), and where the split axis goes among them.
    Axes piece_order;
    std::int64_t stack_axis = 0;
    for (std::int64_t axis : order) {
      if (axis == axis_) {
        stack_axis = static_cast<std::int64_t>(piece_order.size());
      } else {
        piece_order.push_back(axis < axis_ ? axis : axis - 1);
      }
    }
    std::vector<Tensor> pieces;
    for (std::size_t i = 0; i < out_grads.size(); ++i) {
      // A piece no gradient reached counts as zeros.
      const NDArray& value = outputs[i].value();
      const Tensor piece = out_grads[i].defined()
                               ? out_grads[i]
                               : detail::constant(NDArray::zeros(value.shape(), value.dtype(), value.device()));
      pieces.push_back(permute(piece, piece_order));
    }
    // Stacked in memory order, then permuted back to the input's axes.
    Axes back(order.size());
    for (std::size_t i = 0; i < order.size(); ++i)
      back[static_cast<std::size_t>(order[i])] = static_cast<std::int64_t>(i);
    return {permute(stack(pieces, stack_axis), back)};
  }

 private:
  std::int64_t axis_;   // normalized
  std::int64_t count_;  // the axis' length: one output per slice
};

// The shape dilate makes of `shape`: each of `axes` (dilation + 1) times longer. Checked, so that a size
// that does not fit is refused naming dilate and the sizes asked for, not allocated with a wrapped shape.
Shape dilated_shape(const Shape& shape, const Axes& axes, std::int64_t dilation) {
  Shape out = shape;
  for (std::int64_t axis : axes) {
    const auto a = static_cast<std::size_t>(axis);
    const std::optional<std::int64_t> size = checked_mul(shape[a], dilation + 1);  // dilate() checked dilation + 1
    NEEDLE_CHECK(size.has_value(), ValueError, "dilate: dilating axis ", axis, " of size ", shape[a], " by ", dilation,
                 " gives more than ", kMaxSizeText, " cells (array shape ", shape_str(shape), ")");
    out[a] = *size;
  }
  NEEDLE_CHECK(checked_numel(out).has_value(), ValueError, "dilate: dilating an array of shape ", shape_str(shape),
               " by ", dilation, " gives shape ", shape_str(out), ", which has more than ", kMaxSizeText, " elements");
  return out;
}

// Every (dilation + 1)-th cell along each of `axes`, starting at 0: where dilate puts the elements.
Index dilation_grid(std::int64_t ndim, const Axes& axes, std::int64_t dilation) {
  Index index(static_cast<std::size_t>(ndim), IndexItem::range());
  for (std::int64_t axis : axes)
    index[static_cast<std::size_t>(axis)] = IndexItem::range(0, std::nullopt, dilation + 1);
  return index;
}

class DilateOp final : public SingleOutputOp {
 public:
  DilateOp(Axes axes, std::int64_t dilation) : axes_(std::move(axes)), dilation_(dilation) {}
  std::string name() const override { return "dilate"; }
  // Reads nothing of its input.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const Shape shape = dilated_shape(in[0].shape(), axes_, dilation_);
    NDArray out = NDArray::zeros(shape, in[0].dtype(), in[0].device(), "dilate");
    out.assign(dilation_grid(out.ndim(), axes_, dilation_), in[0]);
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    return {undilate(g, axes_, dilation_)};
  }

 private:
  Axes axes_;  // normalized
  std::int64_t dilation_;
};

class UndilateOp final : public SingleOutputOp {
 public:
  UndilateOp(Axes axes, std::int64_t dilation) : axes_(std::move(axes)), dilation_(dilation) {}
  std::string name() const override { return "undilate"; }
  // Reads only the input's shape.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return in[0].index(dilation_grid(in[0].ndim(), axes_, dilation_));
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    // dilate(g) restores the input's layout, but when an axis's size is not a multiple of dilation + 1
    // it is longer than the input by a tail of zeros (cells undilate never read): cut that off.
    const Shape& shape = node.inputs()[0].shape();
    const Tensor spread = dilate(g, axes_, dilation_);
    if (spread.shape() == shape) return {spread};
    Index crop;
    for (std::int64_t length : shape) crop.push_back(IndexItem::range(0, length));
    return {getitem(spread, crop)};
  }

 private:
  Axes axes_;  // normalized
  std::int64_t dilation_;
};

}  // namespace

Tensor permute(const Tensor& a, const Axes& axes) {
  // Validates (with the array layer's message) and normalizes negative axes.
  (void)a.value().permute(axes);
  return make<PermuteOp>({a}, normalize_axes(axes, a.ndim(), "permute"));
}

Tensor transpose(const Tensor& a, std::optional<std::pair<std::int64_t, std::int64_t>> axes) {
  NEEDLE_CHECK(a.ndim() >= 2 || axes.has_value(), ValueError, "transpose: needs at least 2 dimensions, got shape ",
               shape_str(a.shape()));
  const auto [first, second] = axes.value_or(std::pair<std::int64_t, std::int64_t>{-2, -1});
  Axes order(static_cast<std::size_t>(a.ndim()));
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
  std::swap(order[static_cast<std::size_t>(normalize_axis(first, a.ndim(), "transpose"))],
            order[static_cast<std::size_t>(normalize_axis(second, a.ndim(), "transpose"))]);
  return permute(a, order);
}

Tensor unsqueeze(const Tensor& a, std::int64_t axis) {
  Shape shape = a.shape();
  shape.insert(shape.begin() + normalize_axis(axis, a.ndim() + 1, "unsqueeze"), 1);
  return reshape(a, shape);
}

Tensor squeeze(const Tensor& a, const Axes& axes) { return reshape(a, a.value().squeeze(axes).shape()); }

Tensor reshape(const Tensor& a, const Shape& shape) {
  // Resolve -1 now so the op (and its gradient) know the real shape.
  return make<ReshapeOp>({a}, a.value().reshape(shape).shape());
}

Tensor broadcast_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  (void)a.value().broadcast_to(shape);  // validates, with broadcast_to's error message
  return make<BroadcastToOp>({a}, shape);
}

Tensor sum_to_shape(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const auto lead = static_cast<std::int64_t>(grad.shape().size() - shape.size());
  NEEDLE_CHECK(lead >= 0, ValueError, "sum_to_shape: cannot reduce shape ", shape_str(grad.shape()), " to shape ",
               shape_str(shape));
  Axes axes;
  for (std::int64_t d = 0; d < grad.ndim(); ++d) {
    const bool added = d < lead;
    const bool stretched =
        !added && shape[static_cast<std::size_t>(d - lead)] == 1 && grad.shape()[static_cast<std::size_t>(d)] != 1;
    if (added || stretched) axes.push_back(d);
  }
  const Tensor summed = axes.empty() ? grad : summation(grad, axes);
  return reshape(summed, shape);
}

Tensor flip(const Tensor& a, const Axes& axes) { return make<FlipOp>({a}, normalize_axes(axes, a.ndim(), "flip")); }

Tensor pad(const Tensor& a, const std::vector<std::pair<std::int64_t, std::int64_t>>& pad_width, double value) {
  NEEDLE_CHECK(static_cast<std::int64_t>(pad_width.size()) == a.ndim(), ValueError, "pad: expected ", a.ndim(),
               " (before, after) pairs for a tensor of shape ", shape_str(a.shape()), ", got ", pad_width.size());
  for (std::size_t i = 0; i < pad_width.size(); ++i) {
    NEEDLE_CHECK(pad_width[i].first >= 0 && pad_width[i].second >= 0, ValueError,
                 "pad: widths must be non-negative, got (", pad_width[i].first, ", ", pad_width[i].second,
                 ") for axis ", i, " of shape ", shape_str(a.shape()));
  }
  return make<PadOp>({a}, pad_width, value);
}

Tensor getitem(const Tensor& a, const Index& index) {
  try {
    (void)a.value().index(index);  // validates before the graph records anything
  } catch (const IndexError& e) {
    throw IndexError(str("getitem: ", e.what()));
  }
  return make<GetitemOp>({a}, index);
}

Tensor concat(const std::vector<Tensor>& tensors, std::int64_t axis) {
  NEEDLE_CHECK(!tensors.empty(), ValueError, "concat: expected a non-empty list of tensors");
  NEEDLE_CHECK(tensors.front().ndim() > 0, ValueError, "concat: zero-dimensional tensors cannot be concatenated");
  detail::check_same_device("concat", tensors);
  // Shapes are checked by the array layer's concat, which names both shapes.
  return make<ConcatOp>(tensors, normalize_axis(axis, tensors.front().ndim(), "concat"));
}

Tensor stack(const std::vector<Tensor>& tensors, std::int64_t axis) {
  NEEDLE_CHECK(!tensors.empty(), ValueError, "stack: expected a non-empty list of tensors");
  detail::check_same_device("stack", tensors);
  for (const Tensor& t : tensors) {
    NEEDLE_CHECK(t.shape() == tensors.front().shape(), ValueError, "stack: all tensors must have the same shape, got ",
                 shape_str(tensors.front().shape()), " and ", shape_str(t.shape()));
  }
  return make<StackOp>(tensors, normalize_axis(axis, tensors.front().ndim() + 1, "stack"));
}

std::vector<Tensor> split(const Tensor& a, std::int64_t axis) {
  const std::int64_t ax = normalize_axis(axis, a.ndim(), "split");
  const std::int64_t count = a.shape()[static_cast<std::size_t>(ax)];
  if (count == 0) return {};
  return Tensor::from_op_outputs(std::make_shared<SplitOp>(ax, count), {a});
}

Tensor dilate(const Tensor& a, const Axes& axes, std::int64_t dilation) {
  NEEDLE_CHECK(dilation >= 0, ValueError, "dilate: dilation must be non-negative, got ", dilation);
  // dilation + 1 is the step between the cells dilate writes: it must fit in int64.
  NEEDLE_CHECK(dilation < kMaxSize, ValueError, "dilate: dilation must be less than ", kMaxSizeText, ", got ",
               dilation);
  Axes normalized = normalize_axes(axes, a.ndim(), "dilate");
  (void)dilated_shape(a.shape(), normalized, dilation);  // refuses an output size that does not fit, before recording
  return make<DilateOp>({a}, std::move(normalized), dilation);
}

Tensor undilate(const Tensor& a, const Axes& axes, std::int64_t dilation) {
  NEEDLE_CHECK(dilation >= 0, ValueError, "undilate: dilation must be non-negative, got ", dilation);
  // dilation + 1 is the step between the cells undilate keeps: it must fit in int64.
  NEEDLE_CHECK(dilation < kMaxSize, ValueError, "undilate: dilation must be less than ", kMaxSizeText, ", got ",
               dilation);
  return make<UndilateOp>({a}, normalize_axes(axes, a.ndim(), "undilate"), dilation);
}

}  // namespace needle::ops
