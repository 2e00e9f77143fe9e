// Shape ops: views and rearrangements of data. Their gradients undo the rearrangement.
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::make;

namespace {

class ReshapeOp final : public Op {
 public:
  explicit ReshapeOp(Shape shape) : shape_(std::move(shape)) {}
  std::string name() const override { return "reshape"; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0].reshape(shape_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node) const override {
    return {reshape(g, node.inputs()[0].shape())};
  }

 private:
  Shape shape_;
};

class BroadcastToOp final : public Op {
 public:
  explicit BroadcastToOp(Shape shape) : shape_(std::move(shape)) {}
  std::string name() const override { return "broadcast_to"; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0].broadcast_to(shape_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node) const override {
    return {sum_to_shape(g, node.inputs()[0].shape())};
  }

 private:
  Shape shape_;
};

class PermuteOp final : public Op {
 public:
  explicit PermuteOp(Axes axes) : axes_(std::move(axes)) {}
  std::string name() const override { return "permute"; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0].permute(axes_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& /*node*/) const override {
    Axes inverse(axes_.size());
    for (std::size_t i = 0; i < axes_.size(); ++i)
      inverse[static_cast<std::size_t>(axes_[i])] = static_cast<std::int64_t>(i);
    return {permute(g, inverse)};
  }

 private:
  Axes axes_;  // normalized
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

}  // namespace needle::ops
