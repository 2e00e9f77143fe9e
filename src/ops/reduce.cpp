// Reductions. Their gradients broadcast the output gradient back over the reduced axes.
#include <limits>
#include <optional>
#include <vector>

#include "needle/core/fused_ops.h"
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::constant;
using detail::input_value;
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

class SummationOp final : public SingleOutputOp {
 public:
  SummationOp(Axes axes, bool keepdims) : axes_(std::move(axes)), keepdims_(keepdims) {}
  std::string name() const override { return "summation"; }
  // Reads only the input's shape.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::sum(in[0], axes_, keepdims_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    const Shape& input_shape = node.inputs()[0].shape();
    return {broadcast_to(reshape(g, kept_shape(input_shape, axes_)), input_shape)};
  }

 private:
  Axes axes_;
  bool keepdims_;
};

// The number of elements folded into each output of a reduction over `axes` (every axis when empty).
std::int64_t reduced_count(const Shape& shape, const Axes& axes) {
  if (axes.empty()) return numel(shape);
  std::int64_t count = 1;
  for (std::int64_t axis : axes) count *= shape[static_cast<std::size_t>(axis)];
  return count;
}

// g (the gradient of a reduction's output) broadcast back over the reduced axes of `input_shape`.
Tensor spread(const Tensor& g, const Shape& input_shape, const Axes& axes) {
  return broadcast_to(reshape(g, kept_shape(input_shape, axes)), input_shape);
}

class MeanOp final : public SingleOutputOp {
 public:
  MeanOp(Axes axes, bool keepdims) : axes_(std::move(axes)), keepdims_(keepdims) {}
  std::string name() const override { return "mean"; }
  // Reads only the input's shape.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::mean(in[0], axes_, keepdims_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    const Shape& input_shape = node.inputs()[0].shape();
    const auto count = static_cast<double>(reduced_count(input_shape, axes_));
    return {divide_scalar(spread(g, input_shape, axes_), Scalar(count))};
  }

 private:
  Axes axes_;
  bool keepdims_;
};

// Max and min: the gradient goes to the elements equal to the result; ties share it equally (so the
// gradient is that of the average of the tied elements, and sums to the output gradient).
class ExtremumReduceOp final : public SingleOutputOp {
 public:
  ExtremumReduceOp(Axes axes, bool keepdims, bool is_max)
      : axes_(std::move(axes)), keepdims_(keepdims), is_max_(is_max) {}
  std::string name() const override { return is_max_ ? "max" : "min"; }
  // The winners are found by comparing the input with the output.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override {
    return SavedTensors{}.input(0).outputs();
  }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return is_max_ ? needle::max(in[0], axes_, keepdims_) : needle::min(in[0], axes_, keepdims_);
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    const NDArray& a = input_value(node, 0);
    const NDArray hits = needle::eq(a, node.value().reshape(kept_shape(a.shape(), axes_))).astype(g.dtype());
    // The mask is piecewise constant in a, so as a constant it also gives the right second derivative.
    const NDArray share = hits / needle::sum(hits, axes_, /*keepdims=*/true);
    return {multiply(spread(g, a.shape(), axes_), constant(share))};
  }

 private:
  Axes axes_;
  bool keepdims_;
  bool is_max_;
};

// log(sum(exp(a))) computed as m + log(sum(exp(a - m))) with m the maximum, so exp never overflows.
class LogSumExpOp final : public SingleOutputOp {
 public:
  LogSumExpOp(Axes axes, bool keepdims) : axes_(std::move(axes)), keepdims_(keepdims) {}
  std::string name() const override { return "logsumexp"; }
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override {
    return SavedTensors{}.input(0).outputs();
  }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray a = in[0].astype(float_result_type(in[0].dtype()));
    const Shape kept = kept_shape(a.shape(), axes_);
    NDArray result;
    if (reduced_count(a.shape(), axes_) == 0) {
      // The sum of no exponentials is 0 and its log -inf (max would refuse the empty reduction).
      result = NDArray::full(kept, Scalar(-std::numeric_limits<double>::infinity()), a.dtype(), a.device());
    } else if (const std::optional<std::int64_t> axis = single_axis(a.ndim())) {
      // One axis: the backend's fused row kernel, one pass for the maximum and one for the sum, with the
      // axis moved last (the other axes keep their order) and the rows made contiguous.
      return needle::logsumexp(a, *axis, keepdims_);
    } else {
      const NDArray shift = finite_max(a);
      result = needle::log(needle::sum(needle::exp(a - shift), axes_, /*keepdims=*/true)) + shift;
    }
    return keepdims_ ? result : result.squeeze(axes_.empty() ? all_axes(a.ndim()) : axes_);
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    // d lse / d a = exp(a - lse), the softmax over the axes, computed as exp(a - m) / sum(exp(a - m)) with
    // m the maximum (a constant: the softmax does not depend on it). exp(a - lse) would lose it in float32,
    // which rounds lse = m + log(sum) to m when log(sum) is below m's precision (the lse of [1e9, 1e9] is
    // 1e9 + log 2, and exp(a - lse) would give 1 instead of 0.5). Written with ops: it differentiates again.
    const Tensor& a = node.inputs()[0];
    if (reduced_count(a.shape(), axes_) == 0) return {spread(g, a.shape(), axes_)};  // empty: nothing to weigh
    const Tensor shifted = exp(sub(a, broadcast_to(detail::constant(finite_max(a.value())), a.shape())));
    const Tensor softmax = divide(shifted, broadcast_to(summation(shifted, axes_, /*keepdims=*/true), a.shape()));
    return {multiply(spread(g, a.shape(), axes_), softmax)};
  }

 private:
  // The maximum over the axes (kept as size-1 axes), with infinities replaced by 0: shifting by an
  // infinite maximum (all -inf, or some +inf) would give inf - inf = nan, while shifting by 0 there
  // yields the right answer (-inf or +inf) directly.
  NDArray finite_max(const NDArray& a) const {
    const NDArray m = needle::max(a, axes_, /*keepdims=*/true);
    const NDArray zero = NDArray::zeros({}, m.dtype(), m.device());
    const NDArray inf = NDArray::full({}, Scalar(std::numeric_limits<double>::infinity()), m.dtype(), m.device());
    return needle::where(needle::lt(needle::abs(m), inf), m, zero);
  }

  // The one reduced axis (axes_ is normalized), or none when several are (or a 0-d input).
  std::optional<std::int64_t> single_axis(std::int64_t ndim) const {
    if (axes_.size() == 1) return axes_[0];
    if (axes_.empty() && ndim == 1) return 0;
    return std::nullopt;
  }
  static Axes all_axes(std::int64_t ndim) {
    Axes axes(static_cast<std::size_t>(ndim));
    for (std::size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<std::int64_t>(i);
    return axes;
  }

  Axes axes_;
  bool keepdims_;
};

// Integer output: Tensor::from_op never records it, so gradient() is never reached.
class ArgmaxOp final : public SingleOutputOp {
 public:
  ArgmaxOp(std::optional<std::int64_t> axis, bool keepdims) : axis_(axis), keepdims_(keepdims) {}
  std::string name() const override { return "argmax"; }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::argmax(in[0], axis_, keepdims_); }
  std::vector<Tensor> gradient(const Tensor& /*g*/, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    return {Tensor()};
  }

 private:
  std::optional<std::int64_t> axis_;
  bool keepdims_;
};

}  // namespace

Tensor summation(const Tensor& a, const Axes& axes, bool keepdims) {
  return make<SummationOp>({a}, normalize_axes(axes, a.ndim(), "summation"), keepdims);
}

Tensor mean(const Tensor& a, const Axes& axes, bool keepdims) {
  return make<MeanOp>({a}, normalize_axes(axes, a.ndim(), "mean"), keepdims);
}

Tensor max(const Tensor& a, const Axes& axes, bool keepdims) {
  return make<ExtremumReduceOp>({a}, normalize_axes(axes, a.ndim(), "max"), keepdims, true);
}

Tensor min(const Tensor& a, const Axes& axes, bool keepdims) {
  return make<ExtremumReduceOp>({a}, normalize_axes(axes, a.ndim(), "min"), keepdims, false);
}

Tensor logsumexp(const Tensor& a, const Axes& axes, bool keepdims) {
  NEEDLE_CHECK(a.dtype() != DType::Bool, TypeError, "logsumexp: not supported for bool tensors (shape ",
               shape_str(a.shape()), ")");
  return make<LogSumExpOp>({a}, normalize_axes(axes, a.ndim(), "logsumexp"), keepdims);
}

Tensor argmax(const Tensor& a, std::optional<std::int64_t> axis, bool keepdims) {
  if (axis) axis = normalize_axis(*axis, a.ndim(), "argmax");
  return make<ArgmaxOp>({a}, axis, keepdims);
}

}  // namespace needle::ops
