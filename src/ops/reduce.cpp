// Reductions. Their gradients broadcast the output gradient back over the reduced axes.
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::make;

namespace {

// a's shape with the reduced axes kept as size 1 (so a gradient can broadcast back).
Shape kept_shape(const Shape& shape, const Axes& axes) {
  Shape kept = shape;
  if (axes.empty()) {
    std::fill(kept.begin(), kept.end(), 1);
  } else {
    for (std::int64_t axis : normalize_axes(axes, static_cast<std::int64_t>(shape.size()), "reduce")) {
      kept[static_cast<std::size_t>(axis)] = 1;
    }
  }
  return kept;
}

class SummationOp final : public Op {
 public:
  SummationOp(Axes axes, bool keepdims) : axes_(std::move(axes)), keepdims_(keepdims) {}
  std::string name() const override { return "summation"; }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::sum(in[0], axes_, keepdims_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node) const override {
    const Shape& input_shape = node.inputs()[0].shape();
    return {broadcast_to(reshape(g, kept_shape(input_shape, axes_)), input_shape)};
  }

 private:
  Axes axes_;
  bool keepdims_;
};

}  // namespace

Tensor summation(const Tensor& a, const Axes& axes, bool keepdims) {
  return make<SummationOp>({a}, normalize_axes(axes, a.ndim(), "summation"), keepdims);
}

}  // namespace needle::ops
