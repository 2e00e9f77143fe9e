// The array layer's free functions (Needle's backend_ndarray names), all calling core/array_ops.h.
#include <utility>
#include <vector>

#include "bindings.h"

namespace needle::python {

namespace {

using PadWidth = std::vector<std::pair<std::int64_t, std::int64_t>>;

// A scalar operand of where(): a 0-d array whose dtype only lifts the other operand's category.
NDArray scalar_operand(const Scalar& s, DType other, Device device) {
  return NDArray::full({}, s, promote_with_scalar(other, s), device);
}

template <BinaryOp Op>
void def_binary_function(nb::module_& m, const char* name, const char* doc) {
  m.def(
      name, [](const NDArray& a, const NDArray& b) { return binary(Op, a, b); }, nb::arg("a"), nb::arg("b"));
  m.def(
      name, [](const NDArray& a, const Scalar& b) { return binary(Op, a, b); }, nb::arg("a"), nb::arg("b"));
  m.def(
      name, [](const Scalar& a, const NDArray& b) { return binary(Op, b, a, true); }, nb::arg("a"), nb::arg("b"), doc);
}

template <UnaryOp Op>
void def_unary_function(nb::module_& m, const char* name, const char* doc) {
  m.def(
      name, [](const NDArray& a) { return unary(Op, a); }, nb::arg("a"), doc);
}

void def_elementwise(nb::module_& m) {
#define NEEDLE_UNARY(kind, name, domain, gradient, doc) def_unary_function<UnaryOp::kind>(m, #name, doc);
#include "needle/core/unary_ops.def"
  m.def(
      "neg", [](const NDArray& a) { return negate(a); }, nb::arg("a"),
      "-a (Needle's backend_ndarray name for negate).");

  def_binary_function<BinaryOp::Add>(m, "add", "a + b (broadcasting)");
  def_binary_function<BinaryOp::Sub>(m, "sub", "a - b (broadcasting)");
  def_binary_function<BinaryOp::Mul>(m, "mul", "a * b (broadcasting)");
  def_binary_function<BinaryOp::Div>(m, "div", "a / b, true division (broadcasting)");
  def_binary_function<BinaryOp::Pow>(m, "power", "a ** b (broadcasting)");
  def_binary_function<BinaryOp::Maximum>(m, "maximum", "Element-wise maximum (broadcasting)");
  def_binary_function<BinaryOp::Minimum>(m, "minimum", "Element-wise minimum (broadcasting)");
  def_binary_function<BinaryOp::Eq>(m, "eq", "a == b (bool)");
  def_binary_function<BinaryOp::Ne>(m, "ne", "a != b (bool)");
  def_binary_function<BinaryOp::Lt>(m, "lt", "a < b (bool)");
  def_binary_function<BinaryOp::Le>(m, "le", "a <= b (bool)");
  def_binary_function<BinaryOp::Gt>(m, "gt", "a > b (bool)");
  def_binary_function<BinaryOp::Ge>(m, "ge", "a >= b (bool)");

  m.def(
      "where", [](const NDArray& cond, const NDArray& a, const NDArray& b) { return where(cond, a, b); },
      nb::arg("cond"), nb::arg("a"), nb::arg("b"));
  m.def(
      "where",
      [](const NDArray& cond, const NDArray& a, const Scalar& b) {
        return where(cond, a, scalar_operand(b, a.dtype(), cond.device()));
      },
      nb::arg("cond"), nb::arg("a"), nb::arg("b"));
  m.def(
      "where",
      [](const NDArray& cond, const Scalar& a, const NDArray& b) {
        return where(cond, scalar_operand(a, b.dtype(), cond.device()), b);
      },
      nb::arg("cond"), nb::arg("a"), nb::arg("b"));
  m.def(
      "where",
      [](const NDArray& cond, const Scalar& a, const Scalar& b) {
        const DType dtype = promote_types(a.natural_dtype(), b.natural_dtype());
        return where(cond, NDArray::full({}, a, dtype, cond.device()), NDArray::full({}, b, dtype, cond.device()));
      },
      nb::arg("cond"), nb::arg("a"), nb::arg("b"), "cond ? a : b element-wise (broadcasting all three).");
}

void def_reductions(nb::module_& m) {
  const auto def_reduce = [&m](const char* name, ReduceFn fn, const char* doc) {
    m.def(
        name, [fn](const NDArray& a, const AxisArg& axis, bool keepdims) { return reduce_axes(fn, a, axis, keepdims); },
        nb::arg("a"), nb::arg("axis") = nb::none(), nb::arg("keepdims") = false, doc);
  };
  def_reduce("sum", &sum, "Sum over `axis` (None: every axis); bool and int32 sum to int64.");
  def_reduce("summation", &sum, "Needle's name for sum.");
  def_reduce("max", &needle::max, "Maximum over `axis` (None: every axis).");
  def_reduce("min", &needle::min, "Minimum over `axis` (None: every axis).");
  def_reduce("mean", &mean, "Mean over `axis` (None: every axis); integers give float32.");
  m.def(
      "argmax",
      [](const NDArray& a, std::optional<std::int64_t> axis, bool keepdims) { return argmax(a, axis, keepdims); },
      nb::arg("a"), nb::arg("axis") = nb::none(), nb::arg("keepdims") = false,
      "Index (int64) of the first maximum along `axis` (None: of the flattened array).");
  m.def(
      "argmin",
      [](const NDArray& a, std::optional<std::int64_t> axis, bool keepdims) { return argmin(a, axis, keepdims); },
      nb::arg("a"), nb::arg("axis") = nb::none(), nb::arg("keepdims") = false,
      "Index (int64) of the first minimum along `axis` (None: of the flattened array).");
}

void def_shape_functions(nb::module_& m) {
  m.def("matmul", &matmul, nb::arg("a"), nb::arg("b"),
        "NumPy matmul: batched, broadcasting batch dimensions; 1-d operands are treated as vectors.");
  m.def(
      "broadcast_to", [](const NDArray& array, const Shape& new_shape) { return array.broadcast_to(new_shape); },
      nb::arg("array"), nb::arg("new_shape"), "A broadcast view.");
  m.def(
      "reshape", [](const NDArray& array, const Shape& new_shape) { return array.reshape(new_shape); },
      nb::arg("array"), nb::arg("new_shape"), "A view with a new shape when possible, else a compact copy.");
  m.def(
      "permute", [](const NDArray& a, const Axes& axes) { return a.permute(axes); }, nb::arg("a"), nb::arg("axes"),
      "A view with the axes reordered.");
  m.def(
      "swapaxes", [](const NDArray& a, std::int64_t axis1, std::int64_t axis2) { return a.swapaxes(axis1, axis2); },
      nb::arg("a"), nb::arg("axis1"), nb::arg("axis2"), "A view with two axes swapped.");
  m.def(
      "flip", [](const NDArray& a, const AxisArg& axes) { return flip(a, flip_axes(a, axes)); }, nb::arg("a"),
      nb::arg("axes") = nb::none(), "A compact copy with `axes` reversed (None: every axis).");
  m.def(
      "pad", [](const NDArray& a, const PadWidth& axes, const Scalar& value) { return pad(a, axes, value); },
      nb::arg("a"), nb::arg("axes"), nb::arg("value") = 0.0,
      "A copy padded by axes[d] = (before, after) cells on every axis d.");
  m.def(
      "stack", [](const std::vector<NDArray>& arrays, std::int64_t axis) { return stack(arrays, axis); },
      nb::arg("arrays"), nb::arg("axis") = 0, "Joins arrays of equal shape along a new axis.");
  m.def(
      "concat", [](const std::vector<NDArray>& arrays, std::int64_t axis) { return concat(arrays, axis); },
      nb::arg("arrays"), nb::arg("axis") = 0, "Joins arrays along an existing axis.");
  m.def(
      "split", [](const NDArray& a, std::int64_t axis) { return split(a, axis); }, nb::arg("a"), nb::arg("axis") = 0);
  m.def(
      "split",
      [](const NDArray& a, const std::vector<std::int64_t>& sizes, std::int64_t axis) { return split(a, sizes, axis); },
      nb::arg("a"), nb::arg("sizes"), nb::arg("axis") = 0,
      "Needle's split(a, axis): the shape[axis] views with that axis removed; split(a, sizes, axis): views of "
      "the given sizes along axis.");
  m.def("gather", &gather, nb::arg("a"), nb::arg("axis"), nb::arg("index"),
        "torch.gather / numpy.take_along_axis along `axis`.");
  m.def("scatter_add", &scatter_add, nb::arg("a"), nb::arg("axis"), nb::arg("index"), nb::arg("src"),
        "A copy of `a` with `src` accumulated at `index` along `axis` (torch.scatter_add).");
}

void def_creation(nb::module_& m) {
  m.def(
      "array",
      [](nb::handle a, const std::optional<DTypeLike>& dtype, const std::optional<Device>& device) {
        return to_ndarray(a, device, to_dtype(dtype));
      },
      nb::arg("a"), nb::arg("dtype") = nb::none(), nb::arg("device") = nb::none(),
      nb::sig("def array(a: NDArray | numpy.typing.ArrayLike, dtype: str | None = None, "
              "device: Device | str | None = None) -> NDArray"),
      "NDArray(a, device=device, dtype=dtype).");
  m.def(
      "empty",
      [](const Shape& shape, const DTypeLike& dtype, const std::optional<Device>& device) {
        return NDArray::empty(shape, to_dtype(dtype), device_or_default(device));
      },
      nb::arg("shape"), nb::arg("dtype") = "float32", nb::arg("device") = nb::none(), "An uninitialized array.");
  m.def(
      "full",
      [](const Shape& shape, const Scalar& fill_value, const DTypeLike& dtype, const std::optional<Device>& device) {
        return NDArray::full(shape, fill_value, to_dtype(dtype), device_or_default(device));
      },
      nb::arg("shape"), nb::arg("fill_value"), nb::arg("dtype") = "float32", nb::arg("device") = nb::none(),
      "An array filled with `fill_value`.");
  m.def(
      "zeros",
      [](const Shape& shape, const DTypeLike& dtype, const std::optional<Device>& device) {
        return NDArray::zeros(shape, to_dtype(dtype), device_or_default(device));
      },
      nb::arg("shape"), nb::arg("dtype") = "float32", nb::arg("device") = nb::none(), "An array of zeros.");
  m.def(
      "ones",
      [](const Shape& shape, const DTypeLike& dtype, const std::optional<Device>& device) {
        return NDArray::ones(shape, to_dtype(dtype), device_or_default(device));
      },
      nb::arg("shape"), nb::arg("dtype") = "float32", nb::arg("device") = nb::none(), "An array of ones.");
  m.def(
      "arange",
      [](std::int64_t n, const DTypeLike& dtype, const std::optional<Device>& device) {
        return NDArray::arange(n, to_dtype(dtype), device_or_default(device));
      },
      nb::arg("n"), nb::arg("dtype") = "int64", nb::arg("device") = nb::none(), "0, 1, ..., n - 1.");
}

// int8 post-training quantization (inference only).
void def_quantization(nb::module_& m) {
  m.def(
      "quantize_rows",
      [](const NDArray& x) {
        QuantizedRows q = quantize_rows(x);
        return std::pair(std::move(q.values), std::move(q.scale));
      },
      nb::arg("x"),
      "(values, scale): x (float32 or float64, at least 1-d) quantized to int8 per row of its last axis, "
      "scale = max|x| / 127 (float32, x's shape less the last axis), values = round-half-even(x / scale).");
  // The optimizers' fused in-place updates, for optimizers written in Python (needle.torch.optim).
  m.def(
      "adam_update",
      [](NDArray& param, const NDArray& grad, NDArray& exp_avg, NDArray& exp_avg_sq, double lr, double beta1,
         double beta2, double eps, double weight_decay, double correction1, double correction2, bool decoupled) {
        AdamStep step;
        step.lr = lr;
        step.beta1 = beta1;
        step.beta2 = beta2;
        step.eps = eps;
        step.weight_decay = weight_decay;
        step.correction1 = correction1;
        step.correction2 = correction2;
        step.decoupled = decoupled;
        adam_update(param, grad, exp_avg, exp_avg_sq, step);
      },
      nb::arg("param"), nb::arg("grad"), nb::arg("exp_avg"), nb::arg("exp_avg_sq"), nb::arg("lr"), nb::arg("beta1"),
      nb::arg("beta2"), nb::arg("eps"), nb::arg("weight_decay"), nb::arg("correction1"), nb::arg("correction2"),
      nb::arg("decoupled"),
      "One Adam (AdamW when `decoupled`) step in place, in one pass: m = beta1 m + (1 - beta1) g, v = beta2 v + "
      "(1 - beta2) g^2, p -= lr (m / correction1) / (sqrt(v / correction2) + eps). param, exp_avg and exp_avg_sq "
      "(one floating dtype, dense in one shared memory order: contiguous, or one permutation of it) are "
      "overwritten; ValueError, touching nothing, when their layouts do not allow it.");
  m.def(
      "sgd_update",
      [](NDArray& param, const NDArray& grad, std::optional<NDArray> momentum_buffer, double lr, double momentum,
         double weight_decay, bool first) {
        SgdStep step;
        step.lr = lr;
        step.momentum = momentum;
        step.weight_decay = weight_decay;
        step.first = first;
        sgd_update(param, grad, momentum_buffer ? &*momentum_buffer : nullptr, step);
      },
      nb::arg("param"), nb::arg("grad"), nb::arg("momentum_buffer").none(), nb::arg("lr"), nb::arg("momentum"),
      nb::arg("weight_decay"), nb::arg("first"),
      "One SGD step in place, in one pass: g += weight_decay p; u = momentum u + (1 - momentum) g (u = (1 - "
      "momentum) g when `first`); p -= lr u (p -= lr g without a buffer). param and momentum_buffer (dense in one "
      "shared memory order: contiguous, or one permutation of it) are overwritten; ValueError, touching nothing, "
      "when their layouts do not allow it.");
  m.def("int8_matmul", &int8_matmul, nb::arg("a"), nb::arg("w"),
        "The exact int32 product a @ w.T of int8 a (M, K) and w (N, K), as (M, N).");
  m.def(
      "quantized_matmul",
      [](const NDArray& a, const NDArray& a_scale, const NDArray& w, const NDArray& w_scale,
         const std::optional<NDArray>& bias) {
        return quantized_matmul(a, a_scale, w, w_scale, bias ? &*bias : nullptr);
      },
      nb::arg("a"), nb::arg("a_scale"), nb::arg("w"), nb::arg("w_scale"), nb::arg("bias") = nb::none(),
      "float32 (M, N) = int8_matmul(a, w) * a_scale[:, None] * w_scale[None, :] + bias, fused: a (M, K) and "
      "w (N, K) int8, a_scale (M), w_scale (N) and bias (N) float32.");
}

}  // namespace

void bind_array_ops(nb::module_& m) {
  def_elementwise(m);
  def_reductions(m);
  def_shape_functions(m);
  def_creation(m);
  def_quantization(m);
}

}  // namespace needle::python
