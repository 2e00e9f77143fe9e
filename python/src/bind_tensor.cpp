// The Tensor class: construction, attributes, autograd entry points, NumPy interop, indexing, operators and
// the methods that mirror ops (Needle's names with PyTorch's spellings accepted too).
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tensor_bindings.h"

namespace needle::python {

namespace {

#define NEEDLE_NUMPY_ARRAY "numpy.typing.NDArray[typing.Any]"
#define NEEDLE_INDEX_KEY                                                  \
  "int | slice | None | types.EllipsisType | tuple[int | slice | None | " \
  "types.EllipsisType, ...]"

// A string that lives as long as the module (nanobind keeps pointers to signature strings).
const char* persistent(std::string text) {
  static std::deque<std::string> strings;
  return strings.emplace_back(std::move(text)).c_str();
}

// The value of a new tensor built from `array`: a Tensor's value is shared (moved or converted when
// device/dtype ask for it, as in Needle); anything else is converted like NDArray(...) converts it.
NDArray tensor_value(nb::handle array, const std::optional<Device>& device, std::optional<DType> dtype) {
  if (nb::isinstance<TensorImpl>(array)) {
    NDArray value = nb::cast<Tensor>(array).value();
    if (device) value = value.to(*device);
    if (dtype) value = value.astype(*dtype);
    return value;
  }
  return to_ndarray(array, device, dtype);
}

// ---- operators ------------------------------------------------------------------------------------

using TensorTensorFn = Tensor (*)(const Tensor&, const Tensor&);
using TensorScalarFn = Tensor (*)(const Tensor&, const Scalar&);
using ScalarTensorFn = Tensor (*)(const Scalar&, const Tensor&);

const char* operand_signature(const char* name) {
  return persistent(str("def ", name, "(self, other: NDArray | " NEEDLE_NUMPY_ARRAY ", /) -> Tensor"));
}

// name(self, other) and rname(self, other) for other a Tensor, a scalar, an NDArray or a NumPy array (or a
// list). Anything else gives NotImplemented so that Python tries the other operand.
void def_operator(nb::class_<TensorImpl>& cls, const char* name, const char* rname, TensorTensorFn tt,
                  TensorScalarFn ts, ScalarTensorFn st) {
  cls.def(
      name, [tt](const Tensor& a, const Tensor& b) { return tt(a, b); }, nb::is_operator());
  if (ts != nullptr) {
    cls.def(
        name, [ts](const Tensor& a, const Scalar& s) { return ts(a, s); }, nb::is_operator());
  }
  cls.def(
      name,
      [tt](const Tensor& a, nb::handle other) -> nb::object {
        const std::optional<Tensor> b = operand_tensor(other, a);
        if (!b) return nb::borrow(Py_NotImplemented);
        return nb::cast(tt(a, *b));
      },
      nb::is_operator(), nb::sig(operand_signature(name)));
  if (rname == nullptr) return;
  if (st != nullptr) {
    cls.def(
        rname, [st](const Tensor& a, const Scalar& s) { return st(s, a); }, nb::is_operator());
  }
  cls.def(
      rname,
      [tt](const Tensor& a, nb::handle other) -> nb::object {
        const std::optional<Tensor> b = operand_tensor(other, a);
        if (!b) return nb::borrow(Py_NotImplemented);
        return nb::cast(tt(*b, a));
      },
      nb::is_operator(), nb::sig(operand_signature(rname)));
}

template <TensorTensorFn Compare>
Tensor compare_scalar(const Tensor& a, const Scalar& s) {
  return Compare(a, scalar_tensor(s, a));
}

void def_operators(nb::class_<TensorImpl>& cls) {
  def_operator(
      cls, "__add__", "__radd__", [](const Tensor& a, const Tensor& b) { return ops::add(a, b); },
      [](const Tensor& a, const Scalar& s) { return ops::add_scalar(a, s); },
      [](const Scalar& s, const Tensor& a) { return ops::add_scalar(a, s); });
  def_operator(
      cls, "__sub__", "__rsub__", [](const Tensor& a, const Tensor& b) { return ops::sub(a, b); },
      [](const Tensor& a, const Scalar& s) { return ops::add_scalar(a, s.negated()); },
      [](const Scalar& s, const Tensor& a) { return ops::add_scalar(ops::negate(a), s); });
  def_operator(
      cls, "__mul__", "__rmul__", [](const Tensor& a, const Tensor& b) { return ops::multiply(a, b); },
      [](const Tensor& a, const Scalar& s) { return ops::mul_scalar(a, s); },
      [](const Scalar& s, const Tensor& a) { return ops::mul_scalar(a, s); });
  def_operator(
      cls, "__truediv__", "__rtruediv__", [](const Tensor& a, const Tensor& b) { return ops::divide(a, b); },
      [](const Tensor& a, const Scalar& s) { return ops::divide_scalar(a, s); },
      [](const Scalar& s, const Tensor& a) { return ops::rdivide_scalar(s, a); });
  def_operator(
      cls, "__pow__", "__rpow__", [](const Tensor& a, const Tensor& b) { return ops::power(a, b); },
      [](const Tensor& a, const Scalar& s) { return ops::power_scalar(a, s); },
      [](const Scalar& s, const Tensor& a) { return ops::rpower_scalar(s, a); });
  def_operator(
      cls, "__matmul__", "__rmatmul__", [](const Tensor& a, const Tensor& b) { return ops::matmul(a, b); }, nullptr,
      nullptr);
  def_operator(cls, "__eq__", nullptr, &ops::eq, &compare_scalar<&ops::eq>, nullptr);
  def_operator(cls, "__ne__", nullptr, &ops::ne, &compare_scalar<&ops::ne>, nullptr);
  def_operator(cls, "__lt__", nullptr, &ops::lt, &compare_scalar<&ops::lt>, nullptr);
  def_operator(cls, "__le__", nullptr, &ops::le, &compare_scalar<&ops::le>, nullptr);
  def_operator(cls, "__gt__", nullptr, &ops::gt, &compare_scalar<&ops::gt>, nullptr);
  def_operator(cls, "__ge__", nullptr, &ops::ge, &compare_scalar<&ops::ge>, nullptr);
  cls.def("__neg__", [](const Tensor& a) { return ops::negate(a); }).def("__abs__", [](const Tensor& a) {
    return ops::abs(a);
  });
}

// ---- indexing -------------------------------------------------------------------------------------

void set_item(const Tensor& t, nb::handle key, nb::handle value) {
  NEEDLE_CHECK(!t.requires_grad() || (!grad_enabled() && t.is_leaf()), RuntimeError,
               "Tensor.__setitem__: a tensor that requires grad cannot be modified in place (shape ",
               shape_str(t.shape()),
               "); assign under `with needle.no_grad():` (leaves only), or write to a detached copy or to .data");
  NDArray& target = t.impl()->value;
  const Index index = to_index(key);
  if (nb::isinstance<TensorImpl>(value)) {
    target.assign(index, nb::cast<Tensor>(value).value());
  } else if (nb::isinstance<NDArray>(value)) {
    target.assign(index, nb::cast<const NDArray&>(value));
  } else {
    Scalar scalar;
    if (nb::try_cast<Scalar>(value, scalar)) {
      target.assign(index, scalar);
    } else {
      target.assign(index, to_ndarray(value, target.device(), target.dtype()));
    }
  }
}

// ---- shapes ---------------------------------------------------------------------------------------

std::int64_t normalized_axis(std::int64_t axis, std::int64_t ndim, const char* op) {
  NEEDLE_CHECK(axis >= -ndim && axis < ndim, IndexError, op, ": dimension ", axis,
               " is out of range for a tensor with ", ndim, " dimensions");
  return axis < 0 ? axis + ndim : axis;
}

Tensor flatten(const Tensor& a, std::int64_t start_dim, std::int64_t end_dim) {
  const std::int64_t ndim = a.ndim();
  if (ndim == 0) return ops::reshape(a, {1});
  const std::int64_t start = normalized_axis(start_dim, ndim, "flatten");
  const std::int64_t end = normalized_axis(end_dim, ndim, "flatten");
  NEEDLE_CHECK(start <= end, ValueError, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  const Shape& shape = a.shape();
  Shape flat(shape.begin(), shape.begin() + start);
  std::int64_t merged = 1;
  for (std::int64_t i = start; i <= end; ++i) merged *= shape[static_cast<std::size_t>(i)];
  flat.push_back(merged);
  flat.insert(flat.end(), shape.begin() + end + 1, shape.end());
  return ops::reshape(a, flat);
}

Axes reversed_axes(const Tensor& a) {
  Axes axes(static_cast<std::size_t>(a.ndim()));
  for (std::size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<std::int64_t>(axes.size() - 1 - i);
  return axes;
}

// ---- the class ------------------------------------------------------------------------------------

void def_attributes(nb::class_<TensorImpl>& cls) {
  cls.def_prop_ro(
         "shape", [](const Tensor& t) { return to_tuple(t.shape()); }, "The dimensions (a tuple).")
      .def_prop_ro(
          "dtype", [](const Tensor& t) { return std::string(dtype_name(t.dtype())); },
          "The element type: \"float32\", \"float64\", \"int64\", \"int32\", \"int8\", \"uint8\" or \"bool\".")
      .def_prop_ro(
          "device", [](const Tensor& t) { return t.device(); }, "The device holding the values.")
      .def_prop_ro(
          "ndim", [](const Tensor& t) { return t.ndim(); }, "Number of dimensions.")
      .def_prop_ro(
          "size", [](const Tensor& t) { return t.size(); }, "Number of elements.")
      .def(
          "numel", [](const Tensor& t) { return t.size(); }, "Number of elements (PyTorch's name).")
      .def_prop_rw(
          "data", [](const Tensor& t) { return t.detach(); },
          [](const Tensor& t, nb::handle value) {
            // As in Needle: the same dtype (and device) is required; the shape may change.
            NDArray array;
            if (nb::isinstance<TensorImpl>(value)) {
              array = nb::cast<Tensor>(value).value();
            } else if (nb::isinstance<NDArray>(value)) {
              array = nb::cast<NDArray>(value);
            } else {
              array = to_ndarray(value, t.device(), t.dtype());
            }
            Tensor(t.impl()).set_value(array);
          },
          nb::for_setter(nb::sig("def data(self, value: Tensor | NDArray | numpy.typing.ArrayLike, /) -> None")),
          "A detached tensor sharing this tensor's values; assigning a Tensor, NDArray or array of the same dtype and "
          "device replaces the values (outside the graph).")
      .def_prop_rw(
          "grad",
          [](const Tensor& t) -> std::optional<Tensor> {
            Tensor grad = t.grad();
            if (!grad.defined()) return std::nullopt;
            return grad;
          },
          [](const Tensor& t, const std::optional<Tensor>& grad) {
            Tensor(t.impl()).set_grad(grad.value_or(Tensor()));
          },
          "The accumulated gradient (None until a backward pass reaches this tensor).")
      .def_prop_rw(
          "requires_grad", [](const Tensor& t) { return t.requires_grad(); },
          [](const Tensor& t, bool requires_grad) { Tensor(t.impl()).set_requires_grad(requires_grad); },
          "Whether gradients are computed for this tensor (floating dtypes only).")
      .def(
          "requires_grad_",
          [](const Tensor& t, bool requires_grad) {
            Tensor(t.impl()).set_requires_grad(requires_grad);
            return t;
          },
          nb::arg("requires_grad") = true, "Sets requires_grad in place and returns this tensor.")
      .def_prop_ro(
          "is_leaf", [](const Tensor& t) { return t.is_leaf(); },
          "True when no recorded op produced this tensor (created by the user, detached, or outside grad mode).")
      .def_prop_ro(
          "_version", [](const Tensor& t) { return t.value().storage()->version(); },
          "How many in-place writes reached this tensor's storage (through any view): PyTorch's _version. "
          "backward() raises when a tensor it saved has changed version since the forward pass.")
      .def_prop_ro("op", &op_object, nb::for_getter(nb::sig("def op(self, /) -> Op | None")),
                   "The op that produced this tensor (None for leaves).")
      .def_prop_ro(
          "inputs", [](const Tensor& t) { return t.inputs(); }, "The op's input tensors (empty for leaves).")
      .def_prop_rw(
          "cached_data", [](const Tensor& t) { return t.value(); },
          [](const Tensor& t, const NDArray& value) { Tensor(t.impl()).set_value(value); },
          "The NDArray holding the values (Needle's name).")
      .def(
          "realize_cached_data", [](const Tensor& t) { return t.value(); },
          "The NDArray holding the values (values are computed eagerly).")
      .def(
          "detach", [](const Tensor& t) { return t.detach(); },
          "A new leaf sharing this tensor's values, outside the graph.");
}

void def_autograd_methods(nb::class_<TensorImpl>& cls) {
  cls.def(
         "backward",
         [](const Tensor& t, nb::handle out_grad, bool retain_graph, bool create_graph) {
           Tensor seed;
           if (nb::isinstance<TensorImpl>(out_grad)) {
             seed = nb::cast<Tensor>(out_grad);
           } else if (!out_grad.is_none()) {
             seed = constant_tensor(nb::isinstance<NDArray>(out_grad) ? nb::cast<NDArray>(out_grad)
                                                                      : to_ndarray(out_grad, t.device(), t.dtype()));
           }
           t.backward(seed, retain_graph, create_graph);
         },
         nb::arg("out_grad") = nb::none(), nb::arg("retain_graph") = false, nb::arg("create_graph") = false,
         nb::sig("def backward(self, out_grad: Tensor | NDArray | numpy.typing.ArrayLike | None = None, "
                 "retain_graph: bool = False, create_graph: bool = False) -> None"),
         "Reverse mode from this tensor: accumulates d(self)/d(leaf) . out_grad into the .grad of every tensor that "
         "requires grad. Without out_grad, a tensor of ones (also for non-scalar outputs, as in Needle). The graph "
         "is released afterwards unless retain_graph; create_graph records the backward pass itself.")
      .def_static("make_from_op", &make_from_op, nb::arg("op"), nb::arg("inputs"),
                  nb::sig("def make_from_op(op: Op, inputs: typing.Sequence[Tensor]) -> Tensor"),
                  "The output of `op` on `inputs`, recorded in the graph when grad mode is on and an input "
                  "requires grad.")
      .def_static(
          "make_const",
          [](nb::handle data, bool requires_grad) {
            if (nb::isinstance<TensorImpl>(data)) return Tensor(nb::cast<Tensor>(data).value(), requires_grad);
            return Tensor(
                nb::isinstance<NDArray>(data) ? nb::cast<NDArray>(data) : to_ndarray(data, std::nullopt, std::nullopt),
                requires_grad);
          },
          nb::arg("data"), nb::arg("requires_grad") = false,
          nb::sig("def make_const(data: Tensor | NDArray | numpy.typing.ArrayLike, requires_grad: bool = False) "
                  "-> Tensor"),
          "A leaf holding `data` (a Tensor's or an NDArray's values are shared, not copied).");
}

void def_conversions(nb::class_<TensorImpl>& cls) {
  cls.def(
         "__array__",
         [](const Tensor& t, nb::handle dtype, std::optional<bool> copy) {
           nb::object array = to_numpy(t.value());
           if (!dtype.is_none()) array = array.attr("astype")(dtype, nb::arg("copy") = false);
           if (copy.value_or(false) && nb::cast<bool>(numpy().attr("shares_memory")(array, to_numpy(t.value())))) {
             array = array.attr("copy")();
           }
           return array;
         },
         nb::arg("dtype") = nb::none(), nb::arg("copy") = nb::none(),
         nb::sig("def __array__(self, dtype: object = None, copy: bool | None = None) -> " NEEDLE_NUMPY_ARRAY))
      .def(
          "item",
          [](const Tensor& t) {
            NEEDLE_CHECK(t.size() == 1, ValueError, "Tensor.item: only a tensor with one element can be converted ",
                         "to a Python scalar (got shape ", shape_str(t.shape()), ")");
            return scalar_to_python(t.value().item());
          },
          nb::sig("def item(self) -> bool | int | float"), "The single element as a Python number.")
      .def(
          "to",
          [](const Tensor& t, const Device& device) {
            // A leaf stays a leaf on the new device (moving parameters); anything else is moved by a
            // differentiable op so gradients flow back to the original device.
            if (t.device() == device) return t;
            if (t.is_leaf()) return Tensor(t.value().to(device), t.requires_grad());
            return ops::to_device(t, device);
          },
          nb::arg("device"),
          "This tensor on `device`: itself when already there; a leaf becomes a new leaf there (the values "
          "copied); a computed tensor is moved differentiably (its gradient flows back).")
      .def(
          "astype", [](const Tensor& t, const DTypeLike& dtype) { return ops::astype(t, to_dtype(dtype)); },
          nb::arg("dtype"), "This tensor converted to `dtype` (differentiable between floating dtypes).")
      .def("__float__",
           [](const Tensor& t) {
             NEEDLE_CHECK(t.size() == 1, TypeError, "only a tensor with one element can be converted to float");
             return t.value().item().to<double>();
           })
      .def("__int__",
           [](const Tensor& t) {
             NEEDLE_CHECK(t.size() == 1, TypeError, "only a tensor with one element can be converted to int");
             return t.value().item().to<std::int64_t>();
           })
      .def("__bool__",
           [](const Tensor& t) {
             NEEDLE_CHECK(t.size() == 1, ValueError, "the truth value of a tensor of shape ", shape_str(t.shape()),
                          " is ambiguous");
             return t.value().item().to<bool>();
           })
      .def("__len__",
           [](const Tensor& t) {
             NEEDLE_CHECK(t.ndim() > 0, TypeError, "len() of a 0-d tensor");
             return t.shape()[0];
           })
      .def("__hash__",
           [](const Tensor& t) { return static_cast<std::int64_t>(std::hash<const TensorImpl*>{}(t.impl().get())); })
      .def("__repr__", &tensor_repr)
      .def("__str__", &tensor_repr);
}

void def_indexing(nb::class_<TensorImpl>& cls) {
  cls.def("__setitem__", &set_item,
          nb::sig("def __setitem__(self, key: " NEEDLE_INDEX_KEY
                  ", value: Tensor | NDArray | bool | int | float | numpy.typing.ArrayLike) -> None"),
          "Writes `value` (broadcast, converted to this dtype) into the indexed elements, in place. Refused for "
          "tensors that require grad (except leaves under no_grad).");
  cls.def(
         "__getitem__", [](const Tensor& a, nb::handle key) { return ops::getitem(a, to_index(key)); },
         nb::sig("def __getitem__(self, key: " NEEDLE_INDEX_KEY ") -> Tensor"),
         "Basic indexing (ints, slices with steps, None, ...); the gradient flows back into the indexed elements.")
      .def(
          "__iter__",
          [](const Tensor& a) {
            NEEDLE_CHECK(a.ndim() > 0, TypeError, "iteration over a 0-d tensor");
            return nb::iter(nb::cast(ops::split(a, 0)));
          },
          nb::sig("def __iter__(self) -> typing.Iterator[Tensor]"), "The slices along the first axis.");
}

void def_reductions(nb::class_<TensorImpl>& cls) {
  const auto def_reduce = [&cls](const char* name, TensorReduceFn fn, const char* doc) {
    cls.def(
        name,
        [fn, name](const Tensor& a, const AxisArg& axes, bool keepdims, const AxisArg& dim,
                   std::optional<bool> keepdim) { return reduce_tensor(fn, name, a, axes, keepdims, dim, keepdim); },
        nb::arg("axes") = nb::none(), nb::arg("keepdims") = false, nb::kw_only(), nb::arg("dim") = nb::none(),
        nb::arg("keepdim") = nb::none(), doc);
  };
  def_reduce(
      "sum", [](const Tensor& a, const Axes& axes, bool keepdims) { return ops::summation(a, axes, keepdims); },
      "Sum over `axes` (None: every axis); PyTorch's dim=/keepdim= are accepted.");
  def_reduce(
      "mean", [](const Tensor& a, const Axes& axes, bool keepdims) { return ops::mean(a, axes, keepdims); },
      "Mean over `axes` (None: every axis).");
  def_reduce(
      "max", [](const Tensor& a, const Axes& axes, bool keepdims) { return ops::max(a, axes, keepdims); },
      "Maximum over `axes` (None: every axis; the values only, as in Needle).");
  def_reduce(
      "min", [](const Tensor& a, const Axes& axes, bool keepdims) { return ops::min(a, axes, keepdims); },
      "Minimum over `axes` (None: every axis).");
  def_reduce(
      "logsumexp", [](const Tensor& a, const Axes& axes, bool keepdims) { return ops::logsumexp(a, axes, keepdims); },
      "log(sum(exp(a))) over `axes`, computed stably (None: every axis).");
  cls.def(
      "argmax",
      [](const Tensor& a, std::optional<std::int64_t> dim, bool keepdim) { return ops::argmax(a, dim, keepdim); },
      nb::arg("dim") = nb::none(), nb::arg("keepdim") = false,
      "Index (int64) of the first maximum along `dim` (None: of the flattened tensor); no gradient.");
}

void def_shape_methods(nb::class_<TensorImpl>& cls) {
  const auto reshape = [](const Tensor& a, const nb::args& shape) {
    return ops::reshape(a, shape_from_args(shape, "reshape"));
  };
  cls.def("reshape", reshape, nb::sig("def reshape(self, *shape: int | typing.Sequence[int]) -> Tensor"),
          "A tensor with the same values in a new shape (one entry may be -1): reshape((2, 3)) or reshape(2, 3).")
      .def("view", reshape, nb::sig("def view(self, *shape: int | typing.Sequence[int]) -> Tensor"),
           "PyTorch's name for reshape.")
      .def(
          "transpose",
          [](const Tensor& a, const nb::args& dims, const std::optional<std::vector<std::int64_t>>& axes) {
            return ops::transpose(a, transpose_axes(dims, axes));
          },
          nb::arg("dims"), nb::kw_only(), nb::arg("axes") = nb::none(),
          nb::sig("def transpose(self, *dims: int | typing.Sequence[int] | None, axes: typing.Sequence[int] | None = "
                  "None) -> Tensor"),
          "Needle's transpose: swaps the last two axes, or the two given ones (transpose((0, 2)), transpose(0, 2) "
          "or transpose(axes=(0, 2))).")
      .def(
          "permute",
          [](const Tensor& a, const nb::args& axes) { return ops::permute(a, axes_from_args(axes, "permute")); },
          nb::sig("def permute(self, *axes: int | typing.Sequence[int]) -> Tensor"),
          "The axes reordered: permute((2, 0, 1)) or permute(2, 0, 1).")
      .def_prop_ro(
          "T", [](const Tensor& a) { return ops::permute(a, reversed_axes(a)); }, "The axes reversed.")
      .def(
          "broadcast_to",
          [](const Tensor& a, const nb::args& shape) {
            return ops::broadcast_to(a, shape_from_args(shape, "broadcast_to"));
          },
          nb::sig("def broadcast_to(self, *shape: int | typing.Sequence[int]) -> Tensor"),
          "Broadcast to `shape` (NumPy rules).")
      .def("flatten", &flatten, nb::arg("start_dim") = 0, nb::arg("end_dim") = -1,
           "Axes start_dim..end_dim merged into one.")
      .def(
          "unsqueeze", [](const Tensor& a, std::int64_t dim) { return ops::unsqueeze(a, dim); }, nb::arg("dim"),
          "A size-1 axis inserted at `dim`.")
      .def(
          "squeeze", [](const Tensor& a, const AxisArg& dim) { return ops::squeeze(a, to_axes(dim)); },
          nb::arg("dim") = nb::none(), "The given size-1 axes removed (every size-1 axis by default).");
}

void def_math_methods(nb::class_<TensorImpl>& cls) {
  cls.def("exp", [](const Tensor& a) { return ops::exp(a); })
      .def("log", [](const Tensor& a) { return ops::log(a); })
      .def("sqrt", [](const Tensor& a) { return ops::sqrt(a); })
      .def("abs", [](const Tensor& a) { return ops::abs(a); })
      .def("relu", [](const Tensor& a) { return ops::relu(a); })
      .def("tanh", [](const Tensor& a) { return ops::tanh(a); })
      .def("sigmoid", [](const Tensor& a) { return ops::sigmoid(a); })
      .def(
          "matmul", [](const Tensor& a, const Tensor& b) { return ops::matmul(a, b); }, nb::arg("other"),
          "Matrix product (batched, broadcasting batch dimensions).");
  cls.def(
         "softmax", [](const Tensor& a, std::int64_t dim) { return ops::softmax(a, dim); }, nb::arg("dim") = -1,
         "Softmax along `dim`.")
      .def(
          "log_softmax", [](const Tensor& a, std::int64_t dim) { return ops::logsoftmax(a, dim); }, nb::arg("dim") = -1,
          "Log-softmax along `dim`.");
}

}  // namespace

// ---- shared helpers -------------------------------------------------------------------------------

Tensor scalar_tensor(const Scalar& value, const Tensor& like) {
  return constant_tensor(NDArray::full({}, value, promote_with_scalar(like.dtype(), value), like.device()));
}

std::optional<Tensor> operand_tensor(nb::handle other, const Tensor& like) {
  if (nb::isinstance<TensorImpl>(other)) return nb::cast<Tensor>(other);
  if (nb::isinstance<NDArray>(other)) return constant_tensor(nb::cast<NDArray>(other));
  if (nb::isinstance(other, numpy().attr("ndarray")) || nb::isinstance<nb::list>(other)) {
    return constant_tensor(to_ndarray(other, like.device(), std::nullopt));
  }
  return std::nullopt;
}

AxisArg either_axes(const char* op, const AxisArg& axes, const AxisArg& dim) {
  NEEDLE_CHECK(!(axes && dim), TypeError, op, ": give the axes as `axes` or as `dim`, not both");
  return axes ? axes : dim;
}

Tensor reduce_tensor(TensorReduceFn fn, const char* op, const Tensor& a, const AxisArg& axes, bool keepdims,
                     const AxisArg& dim, std::optional<bool> keepdim) {
  const AxisArg axis = either_axes(op, axes, dim);
  if (is_empty_axes(axis)) {
    // NumPy reduces nothing for axes=(): reduce an appended size-1 axis instead.
    return fn(ops::unsqueeze(a, a.ndim()), {a.ndim()}, false);
  }
  return fn(a, to_axes(axis), keepdim.value_or(keepdims));
}

std::optional<std::pair<std::int64_t, std::int64_t>> transpose_axes(
    const nb::args& dims, const std::optional<std::vector<std::int64_t>>& axes) {
  NEEDLE_CHECK(!(axes && dims.size() > 0), TypeError, "transpose: give the axes once (positionally or as axes=)");
  std::vector<std::int64_t> pair;
  if (axes) {
    pair = *axes;
  } else if (dims.size() == 1) {
    if (dims[0].is_none()) return std::nullopt;
    pair = nb::cast<std::vector<std::int64_t>>(dims[0]);
  } else if (dims.size() == 2) {
    pair = {nb::cast<std::int64_t>(dims[0]), nb::cast<std::int64_t>(dims[1])};
  } else if (dims.size() == 0) {
    return std::nullopt;
  } else {
    throw TypeError(str("transpose: expected two axes, got ", dims.size()));
  }
  NEEDLE_CHECK(pair.size() == 2, ValueError, "transpose: expected a pair of axes, got ", pair.size());
  return std::make_pair(pair[0], pair[1]);
}

Axes axes_from_args(const nb::args& args, const char* op) { return shape_from_args(args, op); }

std::string tensor_repr(const Tensor& t) {
  const nb::object values =
      numpy().attr("array2string")(to_numpy(t.value()), nb::arg("separator") = ", ", nb::arg("prefix") = "Tensor(");
  std::string repr = str("Tensor(", nb::cast<std::string>(values), ", shape=", shape_str(t.shape()),
                         ", dtype=", dtype_name(t.dtype()), ", device=", device_repr(t.device()));
  if (t.requires_grad()) repr += ", requires_grad=True";
  if (t.op()) repr += str(", op=", t.op()->name());
  return repr + ")";
}

void bind_tensor(nb::module_& m) {
  nb::class_<TensorImpl> cls(m, "Tensor",
                             "An NDArray value with autograd: the op that produced it, its inputs and its gradient. "
                             "Values are computed eagerly; the graph is recorded when grad mode is on and an input "
                             "requires grad.");
  cls.def(
      "__init__",
      [](TensorImpl* self, nb::handle array, const std::optional<Device>& device, const std::optional<DTypeLike>& dtype,
         bool requires_grad) {
        NDArray value = tensor_value(array, device, to_dtype(dtype));
        new (self) TensorImpl();
        self->requires_grad = requires_grad && is_floating(value.dtype());
        self->value = std::move(value);
      },
      nb::arg("array"), nb::kw_only(), nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none(),
      nb::arg("requires_grad") = true,
      nb::sig("def __init__(self, array: Tensor | NDArray | numpy.typing.ArrayLike, *, device: Device | str | None = "
              "None, dtype: str | None = None, requires_grad: bool = True) -> None"),
      "A leaf tensor from a Tensor (its values shared unless device/dtype ask for a conversion), an NDArray "
      "(copied), a NumPy array (its dtype kept), a nested list or a scalar (float -> float32, int -> int64). "
      "requires_grad defaults to True as in Needle (honoured for floating dtypes only).");
  def_attributes(cls);
  def_autograd_methods(cls);
  def_conversions(cls);
  def_indexing(cls);
  def_operators(cls);
  def_reductions(cls);
  def_shape_methods(cls);
  def_math_methods(cls);
  // Last, so that in the generated stub no annotation of the class body sees the method `numpy` where it
  // means the module.
  cls.def(
      "numpy", [](const Tensor& t) { return to_numpy(t.value()); }, nb::sig("def numpy(self) -> " NEEDLE_NUMPY_ARRAY),
      "The values as a NumPy array sharing this tensor's memory (host devices; other devices copy).");
  // NumPy defers binary operators with a Tensor operand to Tensor's.
  cls.attr("__array_priority__") = 1001;
}

}  // namespace needle::python
