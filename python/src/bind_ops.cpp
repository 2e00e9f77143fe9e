// The differentiable ops on Tensors (include/needle/ops/ops.h), as static methods of `Ops`; the package's
// needle.ops module gives them Needle's names.
#include <utility>
#include <vector>

#include "tensor_bindings.h"

namespace needle::python {

namespace {

// The class whose static methods are the ops (a namespace: never instantiated).
struct OpsNamespace {};

using PadWidth = std::vector<std::pair<std::int64_t, std::int64_t>>;
using Cls = nb::class_<OpsNamespace>;

template <Tensor (*Fn)(const Tensor&, const Tensor&)>
void def_binary_with_scalars(Cls& cls, const char* name, const char* doc) {
  cls.def_static(
      name, [](const Tensor& a, const Tensor& b) { return Fn(a, b); }, nb::arg("a"), nb::arg("b"));
  cls.def_static(
      name, [](const Tensor& a, const Scalar& b) { return Fn(a, scalar_tensor(b, a)); }, nb::arg("a"), nb::arg("b"));
  cls.def_static(
      name, [](const Scalar& a, const Tensor& b) { return Fn(scalar_tensor(a, b), b); }, nb::arg("a"), nb::arg("b"),
      doc);
}

template <Tensor (*Fn)(const Tensor&)>
void def_unary(Cls& cls, const char* name, const char* doc) {
  cls.def_static(
      name, [](const Tensor& a) { return Fn(a); }, nb::arg("a"), doc);
}

void def_elementwise(Cls& cls) {
  cls.def_static("add", &ops::add, nb::arg("a"), nb::arg("b"), "a + b (broadcasting).")
      .def_static("add_scalar", &ops::add_scalar, nb::arg("a"), nb::arg("scalar"), "a + scalar.")
      .def_static("sub", &ops::sub, nb::arg("a"), nb::arg("b"), "a - b (broadcasting).")
      .def_static("multiply", &ops::multiply, nb::arg("a"), nb::arg("b"), "a * b (broadcasting).")
      .def_static("mul_scalar", &ops::mul_scalar, nb::arg("a"), nb::arg("scalar"), "a * scalar.")
      .def_static("divide", &ops::divide, nb::arg("a"), nb::arg("b"), "a / b (broadcasting).")
      .def_static("divide_scalar", &ops::divide_scalar, nb::arg("a"), nb::arg("scalar"), "a / scalar.")
      .def_static("power", &ops::power, nb::arg("a"), nb::arg("b"), "a ** b element-wise (broadcasting).")
      .def_static("power_scalar", &ops::power_scalar, nb::arg("a"), nb::arg("scalar"), "a ** scalar.")
      .def_static("rpower_scalar", &ops::rpower_scalar, nb::arg("scalar"), nb::arg("a"), "scalar ** a.")
      .def_static("rdivide_scalar", &ops::rdivide_scalar, nb::arg("scalar"), nb::arg("a"), "scalar / a.")
      .def_static("leaky_relu", &ops::leaky_relu, nb::arg("a"), nb::arg("negative_slope") = 0.01,
                  "a where a > 0, else negative_slope * a.")
      .def_static(
          "astype", [](const Tensor& a, const DTypeLike& dtype) { return ops::astype(a, to_dtype(dtype)); },
          nb::arg("a"), nb::arg("dtype"), "a converted to `dtype` (the gradient is converted back).");
  def_unary<&ops::negate>(cls, "negate", "-a.");
  def_unary<&ops::exp>(cls, "exp", "e ** a.");
  def_unary<&ops::log>(cls, "log", "Natural logarithm (integers are computed in floating point).");
  def_unary<&ops::sqrt>(cls, "sqrt", "Square root.");
  def_unary<&ops::abs>(cls, "abs", "|a|.");
  def_unary<&ops::relu>(cls, "relu", "max(a, 0).");
  def_unary<&ops::tanh>(cls, "tanh", "Hyperbolic tangent.");
  def_unary<&ops::sigmoid>(cls, "sigmoid", "1 / (1 + exp(-a)).");
  def_unary<&ops::gelu>(cls, "gelu", "x * Phi(x) (exact, with the error function).");
  def_binary_with_scalars<&ops::maximum>(cls, "maximum",
                                         "Element-wise maximum (broadcasting; ties share the gradient).");
  def_binary_with_scalars<&ops::minimum>(cls, "minimum",
                                         "Element-wise minimum (broadcasting; ties share the gradient).");
  def_binary_with_scalars<&ops::eq>(cls, "eq", "a == b (bool; no gradient).");
  def_binary_with_scalars<&ops::ne>(cls, "ne", "a != b (bool; no gradient).");
  def_binary_with_scalars<&ops::lt>(cls, "lt", "a < b (bool; no gradient).");
  def_binary_with_scalars<&ops::le>(cls, "le", "a <= b (bool; no gradient).");
  def_binary_with_scalars<&ops::gt>(cls, "gt", "a > b (bool; no gradient).");
  def_binary_with_scalars<&ops::ge>(cls, "ge", "a >= b (bool; no gradient).");

  cls.def_static("where", &ops::where, nb::arg("cond"), nb::arg("a"), nb::arg("b"));
  cls.def_static(
      "where",
      [](const Tensor& cond, const Tensor& a, const Scalar& b) { return ops::where(cond, a, scalar_tensor(b, a)); },
      nb::arg("cond"), nb::arg("a"), nb::arg("b"));
  cls.def_static(
      "where",
      [](const Tensor& cond, const Scalar& a, const Tensor& b) { return ops::where(cond, scalar_tensor(a, b), b); },
      nb::arg("cond"), nb::arg("a"), nb::arg("b"),
      "cond ? a : b element-wise (broadcasting all three; no gradient for cond).");
}

void def_shapes(Cls& cls) {
  cls.def_static("reshape", &ops::reshape, nb::arg("a"), nb::arg("shape"),
                 "The same values in a new shape (one entry may be -1).")
      .def_static("broadcast_to", &ops::broadcast_to, nb::arg("a"), nb::arg("shape"),
                  "a broadcast to `shape` (NumPy rules); the gradient is summed back.")
      .def_static("sum_to_shape", &ops::sum_to_shape, nb::arg("grad"), nb::arg("shape"),
                  "grad summed over the axes that broadcasting added or stretched, so that it takes `shape`.")
      .def_static(
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
      .def_static("permute", &ops::permute, nb::arg("a"), nb::arg("axes"), "The axes reordered.")
      .def_static(
          "squeeze", [](const Tensor& a, const AxisArg& axes) { return ops::squeeze(a, to_axes(axes)); }, nb::arg("a"),
          nb::arg("axes") = nb::none(), "The given size-1 axes removed (None: every size-1 axis).")
      .def_static("unsqueeze", &ops::unsqueeze, nb::arg("a"), nb::arg("axis"), "A size-1 axis inserted at `axis`.")
      .def_static("matmul", &ops::matmul, nb::arg("a"), nb::arg("b"),
                  "Matrix product (batched, broadcasting batch dimensions; 1-d operands as in NumPy).");
  cls.def_static(
         "flip",
         [](const Tensor& a, const AxisArg& axes) {
           Axes all;
           if (!axes) {
             for (std::int64_t i = 0; i < a.ndim(); ++i) all.push_back(i);
           }
           return ops::flip(a, axes ? to_axes(axes) : all);
         },
         nb::arg("a"), nb::arg("axes") = nb::none(), "The order of elements reversed along `axes` (None: every axis).")
      .def_static("pad", &ops::pad, nb::arg("a"), nb::arg("pad_width"), nb::arg("value") = 0.0,
                  "a padded by pad_width[d] = (before, after) cells of `value` on each axis d.")
      .def_static(
          "getitem", [](const Tensor& a, nb::handle key) { return ops::getitem(a, to_index(key)); }, nb::arg("a"),
          nb::arg("key"),
          nb::sig("def getitem(a: Tensor, key: int | slice | None | types.EllipsisType | tuple[int | slice | None | "
                  "types.EllipsisType, ...]) -> Tensor"),
          "a[key] with basic indexing; the gradient flows back into the indexed elements.")
      .def_static("concat", &ops::concat, nb::arg("tensors"), nb::arg("axis") = 0, "Joins tensors along `axis`.")
      .def_static("stack", &ops::stack, nb::arg("tensors"), nb::arg("axis") = 0,
                  "Joins tensors of one shape along a new axis.")
      .def_static("split", &ops::split, nb::arg("a"), nb::arg("axis") = 0,
                  "Needle's split: the slices along `axis`, with that axis removed.")
      .def_static("dilate", &ops::dilate, nb::arg("a"), nb::arg("axes"), nb::arg("dilation"),
                  "`dilation` zeros inserted after each element along `axes`.")
      .def_static("undilate", &ops::undilate, nb::arg("a"), nb::arg("axes"), nb::arg("dilation"),
                  "The inverse of dilate.");
}

void def_reductions(Cls& cls) {
  const auto def_reduce = [&cls](const char* name, TensorReduceFn fn, const char* doc) {
    cls.def_static(
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
  cls.def_static("argmax", &ops::argmax, nb::arg("a"), nb::arg("axis") = nb::none(), nb::arg("keepdims") = false,
                 "Index (int64) of the first maximum along `axis` (None: of the flattened tensor); no gradient.");
}

void def_indexing_and_nn(Cls& cls) {
  cls.def_static("gather", &ops::gather, nb::arg("a"), nb::arg("axis"), nb::arg("index"),
                 "Values of `a` at integer `index` along `axis` (torch.gather / numpy.take_along_axis).")
      .def_static("embedding", &ops::embedding, nb::arg("indices"), nb::arg("weight"),
                  "Rows of weight (num_embeddings, dim) picked by integer indices: indices.shape + (dim,).")
      .def_static(
          "one_hot",
          [](const Tensor& indices, std::int64_t num_classes, const DTypeLike& dtype) {
            return ops::one_hot(indices, num_classes, to_dtype(dtype));
          },
          nb::arg("indices"), nb::arg("num_classes"), nb::arg("dtype") = "float32",
          "One-hot rows for integer indices: indices.shape + (num_classes,); no gradient.");
  cls.def_static("logsoftmax", &ops::logsoftmax, nb::arg("a"), nb::arg("axis") = -1, "log(softmax(a)) along `axis`.")
      .def_static("softmax", &ops::softmax, nb::arg("a"), nb::arg("axis") = -1, "Softmax along `axis`.")
      .def_static("cross_entropy", &ops::cross_entropy, nb::arg("logits"), nb::arg("labels"),
                  "Mean over the batch of -log softmax(logits)[label]: logits (N, C), integer labels (N,).")
      .def_static("mse_loss", &ops::mse_loss, nb::arg("prediction"), nb::arg("target"), "Mean of squared differences.")
      .def_static("dropout", &ops::dropout, nb::arg("a"), nb::arg("p") = 0.5, nb::arg("training") = true,
                  "Zeroes each element with probability p (Needle's generator) and scales the rest by 1 / (1 - p); "
                  "the identity when not training.")
      .def_static(
          "layer_norm",
          [](const Tensor& x, const std::optional<Tensor>& weight, const std::optional<Tensor>& bias, double eps) {
            return ops::layer_norm(x, weight.value_or(Tensor()), bias.value_or(Tensor()), eps);
          },
          nb::arg("x"), nb::arg("weight") = nb::none(), nb::arg("bias") = nb::none(), nb::arg("eps") = 1e-5,
          "Normalization over the last axis, then * weight + bias (each optional, shape (dim,)).")
      .def_static(
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
  cls.def_static("scaled_dot_product_attention", &ops::scaled_dot_product_attention, nb::arg("q"), nb::arg("k"),
                 nb::arg("v"), nb::arg("causal") = false,
                 "softmax(q k^T / sqrt(d) [+ causal mask]) v over the last two axes.");
  cls.def_static("max_pool2d", &ops::max_pool2d, nb::arg("a"), nb::arg("kernel_size"), nb::arg("stride") = nb::none(),
                 nb::arg("padding") = 0,
                 "Maximum over K x K windows of a (N, C, H, W) moved by `stride` (default K), padding with -inf; "
                 "ties share the gradient.");
  cls.def_static("avg_pool2d", &ops::avg_pool2d, nb::arg("a"), nb::arg("kernel_size"), nb::arg("stride") = nb::none(),
                 nb::arg("padding") = 0,
                 "Mean over K x K windows of a (N, C, H, W) moved by `stride` (default K); zero padding counts in "
                 "the mean.");
  cls.def_static("conv", &ops::conv, nb::arg("a"), nb::arg("b"), nb::arg("stride") = 1, nb::arg("padding") = 0,
                 "Needle's conv: a (N, H, W, C_in), b (K, K, C_in, C_out), zero padding on H and W.");
}

}  // namespace

void bind_tensor_ops(nb::module_& m) {
  Cls cls(m, "Ops", "Needle's differentiable ops on Tensors, as static methods (use them through needle.ops).");
  def_elementwise(cls);
  def_shapes(cls);
  def_reductions(cls);
  def_indexing_and_nn(cls);
}

}  // namespace needle::python
