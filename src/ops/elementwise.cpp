// Element-wise ops: forward through the array layer (which broadcasts and promotes), backward with ops.
// Gradients of broadcast inputs are summed back to the input's shape with sum_to_shape.
#include <cmath>
#include <numbers>

#include "ops/op_helpers.h"

namespace needle::ops {

using detail::constant;
using detail::grad_if;
using detail::input_value;
using detail::make;

namespace {

// ---- tensor-tensor arithmetic ---------------------------------------------------------------------

class AddOp final : public SingleOutputOp {
 public:
  std::string name() const override { return "add"; }
  // Reads only the inputs' shapes.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::add(in[0], in[1]); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    return {grad_if(needs_grad[0], [&] { return sum_to_shape(g, node.inputs()[0].shape()); }),
            grad_if(needs_grad[1], [&] { return sum_to_shape(g, node.inputs()[1].shape()); })};
  }
};

class SubOp final : public SingleOutputOp {
 public:
  std::string name() const override { return "sub"; }
  // Reads only the inputs' shapes.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::sub(in[0], in[1]); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    return {grad_if(needs_grad[0], [&] { return sum_to_shape(g, node.inputs()[0].shape()); }),
            grad_if(needs_grad[1], [&] { return sum_to_shape(negate(g), node.inputs()[1].shape()); })};
  }
};

class MultiplyOp final : public SingleOutputOp {
 public:
  std::string name() const override { return "multiply"; }
  // Each input's gradient reads the other input.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return detail::saves_the_other_input(needs_grad);
  }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::mul(in[0], in[1]); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    const Tensor& a = node.inputs()[0];
    const Tensor& b = node.inputs()[1];
    return {grad_if(needs_grad[0], [&] { return sum_to_shape(multiply(g, b), a.shape()); }),
            grad_if(needs_grad[1], [&] { return sum_to_shape(multiply(g, a), b.shape()); })};
  }
};

class DivideOp final : public SingleOutputOp {
 public:
  std::string name() const override { return "divide"; }
  // a's gradient reads b; b's reads b and the output.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return SavedTensors{}.input(1).outputs(needs_grad[1]);
  }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::div(in[0], in[1]); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    const Tensor& a = node.inputs()[0];
    const Tensor& b = node.inputs()[1];
    // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -(a/b)/b
    return {grad_if(needs_grad[0], [&] { return sum_to_shape(divide(g, b), a.shape()); }),
            grad_if(needs_grad[1], [&] { return sum_to_shape(negate(multiply(g, divide(node, b))), b.shape()); })};
  }
};

class PowerOp final : public SingleOutputOp {
 public:
  std::string name() const override { return "power"; }
  // a's gradient reads a and b; b's reads a and the output.
  SavedTensors saved_tensors(const NeedsGrad& needs_grad) const override {
    return SavedTensors{}.input(0).input(1, needs_grad[0]).outputs(needs_grad[1]);
  }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::pow(in[0], in[1]); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    const Tensor& a = node.inputs()[0];
    const Tensor& b = node.inputs()[1];
    // d(a^b)/da = b a^(b-1), d(a^b)/db = a^b log(a). log(a) only when the exponent needs a gradient: for a
    // constant exponent it is never used, and a NaN from a negative base would alarm anomaly mode for nothing.
    return {grad_if(needs_grad[0],
                    [&] {
                      return sum_to_shape(multiply(g, multiply(b, power(a, add_scalar(b, Scalar(-1.0))))), a.shape());
                    }),
            grad_if(needs_grad[1], [&] { return sum_to_shape(multiply(g, multiply(node, log(a))), b.shape()); })};
  }
};

// Maximum/minimum route the gradient to the chosen operand; ties share it equally.
class ExtremumOp final : public SingleOutputOp {
 public:
  explicit ExtremumOp(bool is_max) : is_max_(is_max) {}
  std::string name() const override { return is_max_ ? "maximum" : "minimum"; }
  // Which operand won is read from both values.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override {
    return SavedTensors{}.input(0).input(1);
  }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return is_max_ ? needle::maximum(in[0], in[1]) : needle::minimum(in[0], in[1]);
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    const NDArray& a = input_value(node, 0);
    const NDArray& b = input_value(node, 1);
    const DType dtype = g.dtype();
    const NDArray wins = (is_max_ ? needle::gt(a, b) : needle::lt(a, b)).astype(dtype);
    const NDArray ties = needle::eq(a, b).astype(dtype) * Scalar(0.5);
    const Tensor share_a = constant(wins + ties);
    const Tensor share_b = constant(Scalar(1.0) - (wins + ties));
    return {grad_if(needs_grad[0], [&] { return sum_to_shape(multiply(g, share_a), node.inputs()[0].shape()); }),
            grad_if(needs_grad[1], [&] { return sum_to_shape(multiply(g, share_b), node.inputs()[1].shape()); })};
  }

 private:
  bool is_max_;
};

// ---- scalar arithmetic ----------------------------------------------------------------------------

class AddScalarOp final : public SingleOutputOp {
 public:
  explicit AddScalarOp(Scalar s) : scalar_(s) {}
  std::string name() const override { return "add_scalar"; }
  // Reads nothing: the gradient is g scaled by a constant.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0] + scalar_; }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    return {g};
  }

 private:
  Scalar scalar_;
};

class MulScalarOp final : public SingleOutputOp {
 public:
  explicit MulScalarOp(Scalar s) : scalar_(s) {}
  std::string name() const override { return "mul_scalar"; }
  // Reads nothing: the gradient is g scaled by a constant.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0] * scalar_; }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    return {mul_scalar(g, scalar_)};
  }

 private:
  Scalar scalar_;
};

class DivideScalarOp final : public SingleOutputOp {
 public:
  explicit DivideScalarOp(Scalar s) : scalar_(s) {}
  std::string name() const override { return "divide_scalar"; }
  // Reads nothing: the gradient is g scaled by a constant.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0] / scalar_; }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    return {divide_scalar(g, scalar_)};
  }

 private:
  Scalar scalar_;
};

class PowerScalarOp final : public SingleOutputOp {
 public:
  explicit PowerScalarOp(Scalar s) : scalar_(s) {}
  std::string name() const override { return "power_scalar"; }
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.input(0); }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::binary(BinaryOp::Pow, in[0], scalar_);
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    const Tensor& a = node.inputs()[0];
    const double n = scalar_.to<double>();
    return {multiply(g, mul_scalar(power_scalar(a, Scalar(n - 1.0)), Scalar(n)))};
  }

 private:
  Scalar scalar_;
};

// scalar ** a
class RPowerScalarOp final : public SingleOutputOp {
 public:
  explicit RPowerScalarOp(Scalar s) : scalar_(s) {}
  std::string name() const override { return "rpower_scalar"; }
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.outputs(); }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::binary(BinaryOp::Pow, in[0], scalar_, /*scalar_first=*/true);
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    return {multiply(g, mul_scalar(node, Scalar(std::log(scalar_.to<double>()))))};
  }

 private:
  Scalar scalar_;
};

// scalar / a
class RDivideScalarOp final : public SingleOutputOp {
 public:
  explicit RDivideScalarOp(Scalar s) : scalar_(s) {}
  std::string name() const override { return "rdivide_scalar"; }
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override {
    return SavedTensors{}.input(0).outputs();
  }
  NDArray compute(const std::vector<NDArray>& in) const override { return scalar_ / in[0]; }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    // d(s/a)/da = -s/a^2 = -(s/a)/a
    return {negate(multiply(g, divide(node, node.inputs()[0])))};
  }

 private:
  Scalar scalar_;
};

// ---- unary functions ------------------------------------------------------------------------------

// Every function of one operand (core/unary_ops.def): forward through the array layer, gradient as
// written in the list's row, over g, the input a and the output out.
class UnaryFunctionOp final : public SingleOutputOp {
 public:
  explicit UnaryFunctionOp(UnaryOp op) : op_(op) {}
  std::string name() const override { return std::string(unary_op_name(op_)); }
  // What the list's gradient expression names: a (the input), out (the output), or neither (negate).
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override {
    switch (op_) {
#define NEEDLE_UNARY(kind, name, domain, gradient, ...)                    \
  case UnaryOp::kind: {                                                    \
    constexpr SavedTensors saved = detail::saved_by_expression(#gradient); \
    return saved;                                                          \
  }
#include "needle/core/unary_ops.def"
    }
    return SavedTensors::all();
  }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::unary(op_, in[0]); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    [[maybe_unused]] const Tensor& a = node.inputs()[0];
    [[maybe_unused]] const Tensor& out = node;
    switch (op_) {
#define NEEDLE_UNARY(kind, name, domain, gradient, ...) \
  case UnaryOp::kind:                                   \
    return {gradient};
#include "needle/core/unary_ops.def"
    }
    throw RuntimeError(str("unary op: invalid UnaryOp value ", static_cast<int>(op_)));
  }

 private:
  UnaryOp op_;
};

class LeakyReluOp final : public SingleOutputOp {
 public:
  explicit LeakyReluOp(double slope) : slope_(slope) {}
  std::string name() const override { return "leaky_relu"; }
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.input(0); }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray positive = needle::gt(in[0], NDArray::zeros({}, in[0].dtype(), in[0].device()));
    return needle::where(positive, in[0], in[0] * Scalar(slope_));
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    const NDArray& a = input_value(node, 0);
    const NDArray positive = needle::gt(a, NDArray::zeros({}, a.dtype(), a.device()));
    const NDArray one = NDArray::ones({}, g.dtype(), a.device());
    const NDArray slope = NDArray::full({}, Scalar(slope_), g.dtype(), a.device());
    return {multiply(g, constant(needle::where(positive, one, slope)))};
  }

 private:
  double slope_;
};

class AsTypeOp final : public SingleOutputOp {
 public:
  explicit AsTypeOp(DType dtype) : dtype_(dtype) {}
  std::string name() const override { return "astype"; }
  // Reads only the input's dtype.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return {}; }
  NDArray compute(const std::vector<NDArray>& in) const override { return in[0].astype(dtype_); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    return {astype(g, node.inputs()[0].dtype())};
  }

 private:
  DType dtype_;
};

class WhereOp final : public SingleOutputOp {
 public:
  std::string name() const override { return "where"; }
  // Reads the condition only.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.input(0); }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::where(in[0], in[1], in[2]); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const override {
    // The condition enters as a constant mask, so the gradient stays differentiable in g.
    const Tensor mask = constant(input_value(node, 0).astype(g.dtype()));
    return {Tensor(), grad_if(needs_grad[1], [&] { return sum_to_shape(multiply(g, mask), node.inputs()[1].shape()); }),
            grad_if(needs_grad[2], [&] {
              return sum_to_shape(multiply(g, constant(Scalar(1.0) - mask.value())), node.inputs()[2].shape());
            })};
  }
};

// Comparisons produce bool tensors, which never require a gradient: gradient() is never reached.
class CompareOp final : public SingleOutputOp {
 public:
  explicit CompareOp(BinaryOp op) : op_(op) {}
  std::string name() const override { return std::string(binary_op_name(op_)); }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::binary(op_, in[0], in[1]); }
  std::vector<Tensor> gradient(const Tensor& /*g*/, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    return {Tensor(), Tensor()};
  }

 private:
  BinaryOp op_;
};

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return make<AddOp>({a, b}); }
Tensor sub(const Tensor& a, const Tensor& b) { return make<SubOp>({a, b}); }
Tensor multiply(const Tensor& a, const Tensor& b) { return make<MultiplyOp>({a, b}); }
Tensor divide(const Tensor& a, const Tensor& b) { return make<DivideOp>({a, b}); }
Tensor power(const Tensor& a, const Tensor& b) { return make<PowerOp>({a, b}); }
Tensor maximum(const Tensor& a, const Tensor& b) { return make<ExtremumOp>({a, b}, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return make<ExtremumOp>({a, b}, false); }

Tensor add_scalar(const Tensor& a, const Scalar& scalar) { return make<AddScalarOp>({a}, scalar); }
Tensor mul_scalar(const Tensor& a, const Scalar& scalar) { return make<MulScalarOp>({a}, scalar); }
Tensor divide_scalar(const Tensor& a, const Scalar& scalar) { return make<DivideScalarOp>({a}, scalar); }
Tensor power_scalar(const Tensor& a, const Scalar& scalar) { return make<PowerScalarOp>({a}, scalar); }
Tensor rpower_scalar(const Scalar& scalar, const Tensor& a) { return make<RPowerScalarOp>({a}, scalar); }
Tensor rdivide_scalar(const Scalar& scalar, const Tensor& a) { return make<RDivideScalarOp>({a}, scalar); }

#define NEEDLE_UNARY(kind, name, ...) \
  Tensor name(const Tensor& a) { return make<UnaryFunctionOp>({a}, UnaryOp::kind); }
#include "needle/core/unary_ops.def"
Tensor leaky_relu(const Tensor& a, double negative_slope) { return make<LeakyReluOp>({a}, negative_slope); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) { return make<WhereOp>({cond, a, b}); }
Tensor astype(const Tensor& a, DType dtype) { return a.dtype() == dtype ? a : make<AsTypeOp>({a}, dtype); }

Tensor eq(const Tensor& a, const Tensor& b) { return make<CompareOp>({a, b}, BinaryOp::Eq); }
Tensor ne(const Tensor& a, const Tensor& b) { return make<CompareOp>({a, b}, BinaryOp::Ne); }
Tensor lt(const Tensor& a, const Tensor& b) { return make<CompareOp>({a, b}, BinaryOp::Lt); }
Tensor le(const Tensor& a, const Tensor& b) { return make<CompareOp>({a, b}, BinaryOp::Le); }
Tensor gt(const Tensor& a, const Tensor& b) { return make<CompareOp>({a, b}, BinaryOp::Gt); }
Tensor ge(const Tensor& a, const Tensor& b) { return make<CompareOp>({a, b}, BinaryOp::Ge); }

}  // namespace needle::ops
