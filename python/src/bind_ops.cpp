// The differentiable ops on Tensors (include/needle/ops/ops.h) as the functions of the submodule
// needle._core.ops, with their docstrings; the package's needle.ops re-exports them (adding only a few
// argument adapters). The functions of one operand come from core/unary_ops.def.
#include <utility>
#include <vector>

#include "tensor_bindings.h"

namespace needle::python {

namespace {

using PadWidth = std::vector<std::pair<std::int64_t, std::int64_t>>;

template <Tensor (*Fn)(const Tensor&, const Tensor&)>
void def_binary_with_scalars(nb::module_& m, const char* name, const char* doc) {
  m.def(
      name, [](const Tensor& a, const Tensor& b) { return Fn(a, b); }, nb::arg("a"), nb::arg("b"));
  m.def(
      name, [](const Tensor& a, const Scalar& b) { return Fn(a, scalar_tensor(b, a)); }, nb::arg("a"), nb::arg("b"));
  m.def(
      name, [](const Scalar& a, const Tensor& b) { return Fn(scalar_tensor(a, b), b); }, nb::arg("a"), nb::arg("b"),
      doc);
}

template <Tensor (*Fn)(const Tensor&)>
void def_unary(nb::module_& m, const char* name, const char* doc) {
  m.def(
      name, [](const Tensor& a) { return Fn(a); }, nb::arg("a"), doc);
}

void def_elementwise(nb::module_& m) {
  m.def("add", &ops::add, nb::arg("a"), nb::arg("b"), "a + b (broadcasting).")
      .def("add_scalar", &ops::add_scalar, nb::arg("a"), nb::arg("scalar"), "a + scalar.")
      .def("sub", &ops::sub, nb::arg("a"), nb::arg("b"), "a - b (broadcasting).")
      .def("multiply", &ops::multiply, nb::arg("a"), nb::arg("b"), "a * b (broadcasting).")
      .def("mul_scalar", &ops::mul_scalar, nb::arg("a"), nb::arg("scalar"), "a * scalar.")
      .def("divide", &ops::divide, nb::arg("a"), nb::arg("b"), "a / b (broadcasting).")
      .def("divide_scalar", &ops::divide_scalar, nb::arg("a"), nb::arg("scalar"), "a / scalar.")
      .def("power", &ops::power, nb::arg("a"), nb::arg("b"), "a ** b element-wise (broadcasting).")
      .def("power_scalar", &ops::power_scalar, nb::arg("a"), nb::arg("scalar"), "a ** scalar.")
      .def("rpower_scalar", &ops::rpower_scalar, nb::arg("scalar"), nb::arg("a"), "scalar ** a.")
      .def("rdivide_scalar", &ops::rdivide_scalar, nb::arg("scalar"), nb::arg("a"), "scalar / a.")
      .def("leaky_relu", &ops::leaky_relu, nb::arg("a"), nb::arg("negative_slope") = 0.01,
           "a where a > 0, else negative_slope * a.")
      .def(
          "astype", [](const Tensor& a, const DTypeLike& dtype) { return ops::astype(a, to_dtype(dtype)); },
          nb::arg("a"), nb::arg("dtype"), "a converted to `dtype` (the gradient is converted back).");
#define NEEDLE_UNARY(kind, name, domain, gradient, doc) def_unary<&ops::name>(m, #name, doc);
#include "needle/core/unary_ops.def"
  def_binary_with_scalars<&ops::maximum>(m, "maximum", "Element-wise maximum (broadcasting; ties share the gradient).");
  def_binary_with_scalars<&ops::minimum>(m, "minimum", "Element-wise minimum (broadcasting; ties share the gradient).");
  def_binary_with_scalars<&ops::eq>(m, "eq", "a == b (bool; no gradient).");
  def_binary_with_scalars<&ops::ne>(m, "ne", "a != b (bool; no gradient).");
  def_binary_with_scalars<&ops::lt>(m, "lt", "a < b (bool; no gradient).");
  def_binary_with_scalars<&ops::le>(m, "le", "a <= b (bool; no gradient).");
  def_binary_with_scalars<&ops::gt>(m, "gt", "a > b (bool; no gradient).");
  def_binary_with_scalars<&ops::ge>(m, "ge", "a >= b (bool; no gradient).");

  m.def("where", &ops::where, nb::arg("cond"), nb::arg("a"), nb::arg("b"));
  m.def(
      "where",
      [](const Tensor& cond, const Tensor& a, const Scalar& b) { return ops::where(cond, a, scalar_tensor(b, a)); },
      nb::arg("cond"), nb::arg("a"), nb::arg("b"));
  m.def(
      "where",
      [](const Tensor& cond, const Scalar& a, const Tensor& b) { return ops::where(cond, scalar_tensor(a, b), b); },
      nb::arg("cond"), nb::arg("a"), nb::arg("b"),
      "cond ? a : b element-wise (broadcasting all three; no gradient for cond).");
}

void def_shapes(nb::module_& m) {
  m.def("reshape", &ops::reshape, nb::arg("a"), nb::arg("shape"),
        "The same values in a new shape (one entry may be -1).")
      .def("broadcast_to", &ops::broadcast_to, nb::arg("a"), nb::arg("shape"),
           "a broadcast to `shape` (NumPy rules); the gradient is summed back.")
      .def("sum_to_shape", &ops::sum_to_shape, nb::arg("grad"), nb::arg("shape"),
           "grad summed over the axes that broadcasting added or stretched, so that it takes `shape`.")
      .def(
          "transpose",
          [](const Tensor& a, const std::optional<std::vector<std::int64_t>>& axes) {
            std::optional<std::pair<std::int64_t, std::int64_t>> pair;
            if (axes) {
              NEEDLE_CHECK(axes->size() == 2, ValueError, "transpose: expected a pair of axes, got ", axes->size());
              pair = std::make_pair((*axes)[0], (*axes)[1]);
            }
            return ops::transpose(a, pair);
          },
          nb::arg("a"), nb::arg("axes") = nb::none(),
          "Needle's transpose: swaps the last two axes, or the two axes given.")
      .def("permute", &ops::permute, nb::arg("a"), nb::arg("axes"), "The axes reordered.")
      .def(
          "squeeze", [](const Tensor& a, const AxisArg& axes) { return ops::squeeze(a, to_axes(axes)); }, nb::arg("a"),
          nb::arg("axes") = nb::none(), "The given size-1 axes removed (None: every size-1 axis).")
      .def("unsqueeze", &ops::unsqueeze, nb::arg("a"), nb::arg("axis"), "A size-1 axis inserted at `axis`.")
      .def("matmul", &ops::matmul, nb::arg("a"), nb::arg("b"),
           "Matrix product (batched, broadcasting batch dimensions; 1-d operands as in NumPy).")
      .def(
          "linear",
          [](const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias) {
            return ops::linear(x, weight, bias.value_or(Tensor()));
          },
          nb::arg("x"), nb::arg("weight"), nb::arg("bias") = nb::none(),
          "x (..., in) @ weight (in, out) + bias (shape (out,) or (1, out); optional), as one node that keeps "
          "only x and weight for backward.");
  m.def(
       "flip",
       [](const Tensor& a, const AxisArg& axes) {
         Axes all;
         if (!axes) {
           for (std::int64_t i = 0; i < a.ndim(); ++i) all.push_back(i);
         }
         return ops::flip(a, axes ? to_axes(axes) : all);
       },
       nb::arg("a"), nb::arg("axes") = nb::none(), "The order of elements reversed along `axes` (None: every axis).")
      .def("pad", &ops::pad, nb::arg("a"), nb::arg("pad_width"), nb::arg("value") = 0.0,
           "a padded by pad_width[d] = (before, after) cells of `value` on each axis d.")
      .def(
          "getitem", [](const Tensor& a, nb::handle key) { return ops::getitem(a, to_index(key)); }, nb::arg("a"),
          nb::arg("key"),
          nb::sig("def getitem(a: needle._core.Tensor, key: int | slice | None | types.EllipsisType | tuple[int | "
                  "slice | None | "
                  "types.EllipsisType, ...]) -> needle._core.Tensor"),
          "a[key] with basic indexing; the gradient flows back into the indexed elements.")
      .def("concat", &ops::concat, nb::arg("tensors"), nb::arg("axis") = 0,
           "Joins a sequence of tensors along an existing `axis`.")
      .def("stack", &ops::stack, nb::arg("tensors"), nb::arg("axis") = 0,
           "Joins a sequence of tensors of one shape along a new `axis`.")
      .def("split", &ops::split, nb::arg("a"), nb::arg("axis") = 0,
           "Needle's split: the slices along `axis`, with that axis removed.")
      .def(
          "dilate",
          [](const Tensor& a, const AxisArg& axes, std::int64_t dilation) {
            return ops::dilate(a, to_axes(axes), dilation);
          },
          nb::arg("a"), nb::arg("axes"), nb::arg("dilation"),
          "`dilation` zeros inserted after each element along `axes` (an int, a sequence or None).")
      .def(
          "undilate",
          [](const Tensor& a, const AxisArg& axes, std::int64_t dilation) {
            return ops::undilate(a, to_axes(axes), dilation);
          },
          nb::arg("a"), nb::arg("axes"), nb::arg("dilation"),
          "The inverse of dilate: every (dilation + 1)-th element along `axes`.");
}

void def_reductions(nb::module_& m) {
  const auto def_reduce = [&m](const char* name, TensorReduceFn fn, const char* doc) {
    m.def(
        name,
        [fn, name](const Tensor& a, const AxisArg& axes, bool keepdims) {
          return reduce_tensor(fn, name, a, axes, keepdims, std::nullopt, std::nullopt);
        },
        nb::arg("a"), nb::arg("axes") = nb::none(), nb::arg("keepdims") = false, doc);
  };
  def_reduce(
      "summation", [](const Tensor& a, const Axes& axes, bool keepdims) { return ops::summation(a, axes, keepdims); },
      "Sum over `axes` (None: every axis; an empty tuple: none).");
  def_reduce(
      "mean", [](const Tensor& a, const Axes& axes, bool keepdims) { return ops::mean(a, axes, keepdims); },
      "Mean over `axes` (None: every axis).");
  def_reduce(
      "max", [](const Tensor& a, const Axes& axes, bool keepdims) { return ops::max(a, axes, keepdims); },
      "Maximum over `axes` (None: every axis); ties share the gradient.");
  def_reduce(
      "min", [](const Tensor& a, const Axes& axes, bool keepdims) { return ops::min(a, axes, keepdims); },
      "Minimum over `axes` (None: every axis); ties share the gradient.");
  def_reduce(
      "logsumexp", [](const Tensor& a, const Axes& axes, bool keepdims) { return ops::logsumexp(a, axes, keepdims); },
      "log(sum(exp(a))) over `axes`, computed stably (None: every axis).");
  m.def("argmax", &ops::argmax, nb::arg("a"), nb::arg("axis") = nb::none(), nb::arg("keepdims") = false,
        "Index (int64) of the first maximum along `axis` (None: of the flattened tensor); no gradient.");
}

void def_indexing_and_nn(nb::module_& m) {
  m.def("gather", &ops::gather, nb::arg("a"), nb::arg("axis"), nb::arg("index"),
        "Values of `a` at integer `index` along `axis` (torch.gather / numpy.take_along_axis).")
      .def("embedding", &ops::embedding, nb::arg("indices"), nb::arg("weight"),
           "Rows of weight (num_embeddings, dim) picked by integer indices: indices.shape + (dim,).")
      .def(
          "one_hot",
          [](const Tensor& indices, std::int64_t num_classes, const DTypeLike& dtype) {
            return ops::one_hot(indices, num_classes, to_dtype(dtype));
          },
          nb::arg("indices"), nb::arg("num_classes"), nb::arg("dtype") = "float32",
          "One-hot rows for integer indices: indices.shape + (num_classes,); no gradient.");
  m.def("logsoftmax", &ops::logsoftmax, nb::arg("a"), nb::arg("axis") = -1, "log(softmax(a)) along `axis`.")
      .def("softmax", &ops::softmax, nb::arg("a"), nb::arg("axis") = -1, "Softmax along `axis`.")
      .def("cross_entropy", &ops::cross_entropy, nb::arg("logits"), nb::arg("labels"),
           "Mean over the batch of -log softmax(logits)[label]: logits (N, C), integer labels (N,).")
      .def("mse_loss", &ops::mse_loss, nb::arg("prediction"), nb::arg("target"), "Mean of squared differences.")
      .def("dropout", &ops::dropout, nb::arg("a"), nb::arg("p") = 0.5, nb::arg("training") = true,
           "Zeroes each element with probability p (Needle's generator) and scales the rest by 1 / (1 - p); "
           "the identity when not training.")
      .def(
          "layer_norm",
          [](const Tensor& x, const std::optional<Tensor>& weight, const std::optional<Tensor>& bias, double eps) {
            return ops::layer_norm(x, weight.value_or(Tensor()), bias.value_or(Tensor()), eps);
          },
          nb::arg("x"), nb::arg("weight") = nb::none(), nb::arg("bias") = nb::none(), nb::arg("eps") = 1e-5,
          "Normalization over the last axis, then * weight + bias (each optional, shape (dim,)).")
      .def(
          "rms_norm",
          [](const Tensor& x, const std::optional<Tensor>& weight, std::optional<double> eps) {
            return ops::rms_norm(x, weight.value_or(Tensor()), eps);
          },
          nb::arg("x"), nb::arg("weight") = nb::none(), nb::arg("eps") = nb::none(),
          "x / sqrt(mean(x ** 2) + eps) * weight over the last axis (weight optional, shape (dim,); eps defaults "
          "to the machine epsilon of x's dtype, as in PyTorch).")
      .def(
          "batch_norm",
          [](const Tensor& x, const std::optional<Tensor>& weight, const std::optional<Tensor>& bias,
             const std::optional<Tensor>& running_mean, const std::optional<Tensor>& running_var, bool training,
             double momentum, double eps) {
            return ops::batch_norm(x, weight.value_or(Tensor()), bias.value_or(Tensor()),
                                   running_mean.value_or(Tensor()), running_var.value_or(Tensor()), training, momentum,
                                   eps);
          },
          nb::arg("x"), nb::arg("weight") = nb::none(), nb::arg("bias") = nb::none(),
          nb::arg("running_mean") = nb::none(), nb::arg("running_var") = nb::none(), nb::arg("training") = true,
          nb::arg("momentum") = 0.1, nb::arg("eps") = 1e-5,
          "Normalization over every axis but 1 of x (N, C, ...): batch statistics in training (updating the "
          "running ones in place), running statistics otherwise.");
  m.def("scaled_dot_product_attention", &ops::scaled_dot_product_attention, nb::arg("q"), nb::arg("k"), nb::arg("v"),
        nb::arg("causal") = false, "softmax(q k^T / sqrt(d) [+ causal mask]) v over the last two axes.");
  m.def(
      "lstm_sequence",
      [](const Tensor& xproj, const Tensor& w_hh, const std::optional<Tensor>& h0, const std::optional<Tensor>& c0) {
        return ops::lstm_sequence(xproj, w_hh, h0.value_or(Tensor()), c0.value_or(Tensor()));
      },
      nb::arg("xproj"), nb::arg("w_hh"), nb::arg("h0") = nb::none(), nb::arg("c0") = nb::none(),
      "Every step of one LSTM layer: xproj (T, B, 4H) the input projection with the biases (gates i, f, g, o), "
      "w_hh (H, 4H), h0 and c0 (B, H) (None: zeros). Returns (h, c) of every step, each (T, B, H).");
  m.def(
      "rnn_sequence",
      [](const Tensor& xproj, const Tensor& w_hh, const std::optional<Tensor>& h0, const std::string& nonlinearity) {
        return ops::rnn_sequence(xproj, w_hh, h0.value_or(Tensor()), nonlinearity);
      },
      nb::arg("xproj"), nb::arg("w_hh"), nb::arg("h0") = nb::none(), nb::arg("nonlinearity") = "tanh",
      "Every step of one Elman RNN layer, h_t = nonlinearity(xproj_t + h_{t-1} @ w_hh) (\"tanh\" or \"relu\"): "
      "xproj (T, B, H) with the biases, w_hh (H, H), h0 (B, H) (None: zeros). Returns every step's h, (T, B, H).");
  m.def("max_pool2d", &ops::max_pool2d, nb::arg("a"), nb::arg("kernel_size"), nb::arg("stride") = nb::none(),
        nb::arg("padding") = 0,
        "Maximum over K x K windows of a (N, C, H, W) moved by `stride` (default K), padding with -inf; "
        "ties share the gradient.");
  m.def("avg_pool2d", &ops::avg_pool2d, nb::arg("a"), nb::arg("kernel_size"), nb::arg("stride") = nb::none(),
        nb::arg("padding") = 0,
        "Mean over K x K windows of a (N, C, H, W) moved by `stride` (default K); zero padding counts in "
        "the mean.");
  m.def("conv", &ops::conv, nb::arg("a"), nb::arg("b"), nb::arg("stride") = 1, nb::arg("padding") = 0,
        "Needle's conv: a (N, H, W, C_in), b (K, K, C_in, C_out), zero padding on H and W.");
}

}  // namespace

void bind_tensor_ops(nb::module_& m) {
  nb::module_ ops_module =
      m.def_submodule("ops", "Needle's differentiable ops on Tensors (use them through needle.ops).");
  def_elementwise(ops_module);
  def_shapes(ops_module);
  def_reductions(ops_module);
  def_indexing_and_nn(ops_module);
}

}  // namespace needle::python
