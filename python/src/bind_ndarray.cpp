// The NDArray class: metadata, views, copies, indexing, NumPy interop and operators.
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"

namespace needle::python {

namespace {

// How the stubs spell a NumPy array.
#define NEEDLE_NUMPY_ARRAY "numpy.typing.NDArray[typing.Any]"

std::string ndarray_repr(const NDArray& a) {
  const nb::object values =
      numpy().attr("array2string")(to_numpy(a), nb::arg("separator") = ", ", nb::arg("prefix") = "NDArray(");
  return str("NDArray(", nb::cast<std::string>(values), ", shape=", shape_str(a.shape()),
             ", dtype=", dtype_name(a.dtype()), ", device=", device_repr(a.device()), ")");
}

Scalar single_item(const NDArray& a, const char* what) {
  NEEDLE_CHECK(a.size() == 1, TypeError, "only size-1 arrays can be converted to Python ", what, " (got shape ",
               shape_str(a.shape()), ")");
  return a.item();
}

// A string that lives as long as the module (nanobind keeps pointers to signature strings).
const char* persistent(std::string text) {
  static std::deque<std::string> strings;
  return strings.emplace_back(std::move(text)).c_str();
}

const char* numpy_operand_signature(const char* name) {
  return persistent(str("def ", name, "(self, other: " NEEDLE_NUMPY_ARRAY ", /) -> NDArray"));
}

// NumPy arrays as operands of NDArray operators (both orders): converted onto the NDArray's device.
// Anything else gives NotImplemented so that Python tries the other operand.
template <BinaryOp Op>
nb::object with_numpy_operand(const NDArray& a, nb::handle other, bool reflected) {
  if (!nb::isinstance(other, numpy().attr("ndarray"))) return nb::borrow(Py_NotImplemented);
  const NDArray b = to_ndarray(other, a.device(), std::nullopt);
  return nb::cast(reflected ? binary(Op, b, a) : binary(Op, a, b));
}

// __add__/__radd__ and friends: NDArray op NDArray, NDArray op scalar, scalar op NDArray, and NumPy arrays
// on either side (NDArray's __array_priority__ makes NumPy defer to these).
template <BinaryOp Op>
void def_binary_operator(nb::class_<NDArray>& cls, const char* name, const char* reflected_name) {
  cls.def(
      name, [](const NDArray& a, const NDArray& b) { return binary(Op, a, b); }, nb::is_operator());
  cls.def(
      name, [](const NDArray& a, const Scalar& s) { return binary(Op, a, s); }, nb::is_operator());
  cls.def(
      name, [](const NDArray& a, nb::handle other) { return with_numpy_operand<Op>(a, other, false); },
      nb::is_operator(), nb::sig(numpy_operand_signature(name)));
  if (reflected_name != nullptr) {
    cls.def(
        reflected_name, [](const NDArray& a, const Scalar& s) { return binary(Op, a, s, true); }, nb::is_operator());
    cls.def(
        reflected_name, [](const NDArray& a, nb::handle other) { return with_numpy_operand<Op>(a, other, true); },
        nb::is_operator(), nb::sig(numpy_operand_signature(reflected_name)));
  }
}

void def_views(nb::class_<NDArray>& cls) {
  cls.def(
         "compact",
         [](nb::handle self) -> nb::object {
           const auto& a = nb::cast<const NDArray&>(self);
           return a.is_compact() ? nb::borrow(self) : nb::cast(a.compact());
         },
         nb::sig("def compact(self) -> NDArray"), "This array itself when already contiguous, else a contiguous copy.")
      .def("is_compact", &NDArray::is_compact, "True when the elements are stored densely in row-major order.")
      .def("copy", &NDArray::copy, "A fresh contiguous copy.")
      .def(
          "as_strided",
          [](const NDArray& a, const Shape& shape, const Strides& strides, std::optional<std::int64_t> offset) {
            return a.as_strided(shape, strides, offset.value_or(a.offset()));
          },
          nb::arg("shape"), nb::arg("strides"), nb::arg("offset") = nb::none(),
          "A view with any shape and strides (in elements) over the same storage; offset defaults to this array's.")
      .def("reshape", &NDArray::reshape, nb::arg("new_shape"),
           "A view with a new shape (one entry may be -1) when the strides allow it, else a compact copy.")
      .def("permute", &NDArray::permute, nb::arg("new_axes"), "A view with the axes reordered.")
      .def("swapaxes", &NDArray::swapaxes, nb::arg("axis1"), nb::arg("axis2"), "A view with two axes swapped.")
      .def("broadcast_to", &NDArray::broadcast_to, nb::arg("new_shape"),
           "A view broadcast to `new_shape` (NumPy rules, zero strides).")
      .def("unsqueeze", &NDArray::unsqueeze, nb::arg("axis"), "A view with a size-1 axis inserted at `axis`.")
      .def(
          "squeeze", [](const NDArray& a, const AxisArg& axis) { return a.squeeze(to_axes(axis)); },
          nb::arg("axis") = nb::none(), "A view without the given size-1 axes (every size-1 axis by default).")
      .def(
          "__getitem__", [](const NDArray& a, nb::handle key) { return a.index(to_index(key)); },
          nb::sig("def __getitem__(self, key: int | slice | None | types.EllipsisType | "
                  "tuple[int | slice | None | types.EllipsisType, ...]) -> NDArray"),
          "NumPy basic indexing (ints, slices with steps, None, ...): a view.")
      .def(
          "__setitem__", [](NDArray& a, nb::handle key, const NDArray& value) { a.assign(to_index(key), value); },
          nb::sig("def __setitem__(self, key: int | slice | None | types.EllipsisType | "
                  "tuple[int | slice | None | types.EllipsisType, ...], value: NDArray) -> None"))
      .def(
          "__setitem__", [](NDArray& a, nb::handle key, const Scalar& value) { a.assign(to_index(key), value); },
          nb::sig("def __setitem__(self, key: int | slice | None | types.EllipsisType | "
                  "tuple[int | slice | None | types.EllipsisType, ...], value: bool | int | float) -> None"))
      .def(
          "__setitem__",
          [](NDArray& a, nb::handle key, nb::handle value) {
            a.assign(to_index(key), to_ndarray(value, a.device(), a.dtype()));
          },
          nb::sig("def __setitem__(self, key: int | slice | None | types.EllipsisType | "
                  "tuple[int | slice | None | types.EllipsisType, ...], value: numpy.typing.ArrayLike) -> None"),
          "Writes `value` (broadcast and converted to this dtype) into the indexed view.");
}

void def_conversions(nb::class_<NDArray>& cls) {
  cls.def(
         "__array__",
         [](const NDArray& a, nb::handle dtype, std::optional<bool> copy) {
           nb::object array = to_numpy(a);
           if (!dtype.is_none()) array = array.attr("astype")(dtype, nb::arg("copy") = false);
           if (copy.value_or(false) && nb::cast<bool>(numpy().attr("shares_memory")(array, to_numpy(a)))) {
             array = array.attr("copy")();
           }
           return array;
         },
         nb::arg("dtype") = nb::none(), nb::arg("copy") = nb::none(),
         nb::sig("def __array__(self, dtype: object = None, copy: bool | None = None) -> " NEEDLE_NUMPY_ARRAY))
      .def("to", &NDArray::to, nb::arg("device"), "This array on `device` (itself when already there).")
      .def(
          "astype", [](const NDArray& a, const DTypeLike& dtype) { return a.astype(to_dtype(dtype)); },
          nb::arg("dtype"), "This array converted to `dtype` (itself when it already has it).")
      .def(
          "fill", [](NDArray& a, const Scalar& value) { a.fill(value); }, nb::arg("value"),
          "Sets every element to `value` (in place).")
      .def(
          "item", [](const NDArray& a) { return scalar_to_python(a.item()); },
          nb::sig("def item(self) -> bool | int | float"), "The single element of a size-1 array.")
      .def("__float__", [](const NDArray& a) { return single_item(a, "scalars").to<double>(); })
      .def("__int__", [](const NDArray& a) { return single_item(a, "scalars").to<std::int64_t>(); })
      .def("__bool__",
           [](const NDArray& a) {
             NEEDLE_CHECK(a.size() == 1, ValueError, "the truth value of an array of shape ", shape_str(a.shape()),
                          " is ambiguous");
             return a.item().to<bool>();
           })
      .def("__len__",
           [](const NDArray& a) {
             NEEDLE_CHECK(a.ndim() > 0, TypeError, "len() of a 0-d NDArray");
             return a.shape()[0];
           })
      .def(
          "__iter__",
          [](const NDArray& a) {
            NEEDLE_CHECK(a.ndim() > 0, TypeError, "iteration over a 0-d NDArray");
            return nb::iter(nb::cast(split(a, 0)));
          },
          nb::sig("def __iter__(self) -> typing.Iterator[NDArray]"))
      .def("__repr__", &ndarray_repr)
      .def("__str__", &ndarray_repr);
}

void def_computations(nb::class_<NDArray>& cls) {
  cls.def(
         "sum",
         [](const NDArray& a, const AxisArg& axis, bool keepdims) { return reduce_axes(&sum, a, axis, keepdims); },
         nb::arg("axis") = nb::none(), nb::arg("keepdims") = false, "Sum over `axis` (None: every axis).")
      .def(
          "max",
          [](const NDArray& a, const AxisArg& axis, bool keepdims) {
            return reduce_axes(&needle::max, a, axis, keepdims);
          },
          nb::arg("axis") = nb::none(), nb::arg("keepdims") = false, "Maximum over `axis` (None: every axis).")
      .def(
          "min",
          [](const NDArray& a, const AxisArg& axis, bool keepdims) {
            return reduce_axes(&needle::min, a, axis, keepdims);
          },
          nb::arg("axis") = nb::none(), nb::arg("keepdims") = false, "Minimum over `axis` (None: every axis).")
      .def(
          "mean",
          [](const NDArray& a, const AxisArg& axis, bool keepdims) { return reduce_axes(&mean, a, axis, keepdims); },
          nb::arg("axis") = nb::none(), nb::arg("keepdims") = false, "Mean over `axis` (None: every axis).")
      .def(
          "argmax",
          [](const NDArray& a, std::optional<std::int64_t> axis, bool keepdims) { return argmax(a, axis, keepdims); },
          nb::arg("axis") = nb::none(), nb::arg("keepdims") = false, "Index of the first maximum (int64).")
      .def(
          "argmin",
          [](const NDArray& a, std::optional<std::int64_t> axis, bool keepdims) { return argmin(a, axis, keepdims); },
          nb::arg("axis") = nb::none(), nb::arg("keepdims") = false, "Index of the first minimum (int64).")
      .def(
          "flip", [](const NDArray& a, const AxisArg& axes) { return flip(a, flip_axes(a, axes)); },
          nb::arg("axes") = nb::none(), "A compact copy with `axes` reversed (None: every axis).")
      .def(
          "pad",
          [](const NDArray& a, const std::vector<std::pair<std::int64_t, std::int64_t>>& axes, const Scalar& value) {
            return pad(a, axes, value);
          },
          nb::arg("axes"), nb::arg("value") = 0.0, "A copy padded by (before, after) cells per axis.")
      .def(
          "maximum", [](const NDArray& a, const NDArray& b) { return maximum(a, b); }, nb::arg("other"))
      .def(
          "maximum", [](const NDArray& a, const Scalar& s) { return binary(BinaryOp::Maximum, a, s); },
          nb::arg("other"), "Element-wise maximum with an array or a scalar.")
      .def(
          "minimum", [](const NDArray& a, const NDArray& b) { return minimum(a, b); }, nb::arg("other"))
      .def(
          "minimum", [](const NDArray& a, const Scalar& s) { return binary(BinaryOp::Minimum, a, s); },
          nb::arg("other"), "Element-wise minimum with an array or a scalar.")
      .def("exp", [](const NDArray& a) { return exp(a); })
      .def("log", [](const NDArray& a) { return log(a); })
      .def("tanh", [](const NDArray& a) { return tanh(a); })
      .def("sqrt", [](const NDArray& a) { return sqrt(a); })
      .def("sigmoid", [](const NDArray& a) { return sigmoid(a); })
      .def("relu", [](const NDArray& a) { return relu(a); });

  def_binary_operator<BinaryOp::Add>(cls, "__add__", "__radd__");
  def_binary_operator<BinaryOp::Sub>(cls, "__sub__", "__rsub__");
  def_binary_operator<BinaryOp::Mul>(cls, "__mul__", "__rmul__");
  def_binary_operator<BinaryOp::Div>(cls, "__truediv__", "__rtruediv__");
  def_binary_operator<BinaryOp::Pow>(cls, "__pow__", "__rpow__");
  def_binary_operator<BinaryOp::Eq>(cls, "__eq__", nullptr);
  def_binary_operator<BinaryOp::Ne>(cls, "__ne__", nullptr);
  def_binary_operator<BinaryOp::Lt>(cls, "__lt__", nullptr);
  def_binary_operator<BinaryOp::Le>(cls, "__le__", nullptr);
  def_binary_operator<BinaryOp::Gt>(cls, "__gt__", nullptr);
  def_binary_operator<BinaryOp::Ge>(cls, "__ge__", nullptr);
  cls.def(
         "__matmul__", [](const NDArray& a, const NDArray& b) { return matmul(a, b); }, nb::is_operator())
      .def("__neg__", [](const NDArray& a) { return negate(a); })
      .def("__abs__", [](const NDArray& a) { return abs(a); });
}

}  // namespace

void bind_ndarray(nb::module_& m) {
  nb::class_<NDArray> cls(m, "NDArray",
                          "A strided view of device memory (shape, strides in elements, offset, dtype, device). "
                          "No autograd.");
  cls.def(
      "__init__",
      [](NDArray* self, nb::handle other, const std::optional<Device>& device, const std::optional<DTypeLike>& dtype) {
        new (self) NDArray(to_ndarray(other, device, to_dtype(dtype)));
      },
      nb::arg("other"), nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none(),
      nb::sig("def __init__(self, other: NDArray | numpy.typing.ArrayLike, device: Device | str | None = None, "
              "dtype: str | None = None) -> None"),
      "An array from an NDArray (copied), a NumPy array, a nested list or a scalar. Without `dtype`, "
      "integers and bools keep their kind; floating values become float32 (see set_float_input_policy).");
  cls.def_prop_ro(
         "shape", [](const NDArray& a) { return to_tuple(a.shape()); }, "The dimensions (a tuple).")
      .def_prop_ro(
          "strides", [](const NDArray& a) { return to_tuple(a.strides()); }, "The strides, in elements (a tuple).")
      .def_prop_ro("offset", &NDArray::offset, "Offset of element 0 in the storage, in elements.")
      .def_prop_ro("size", &NDArray::size, "Number of elements.")
      .def_prop_ro("ndim", &NDArray::ndim, "Number of dimensions.")
      .def_prop_ro("itemsize", &NDArray::itemsize, "Bytes per element.")
      .def_prop_ro("device", &NDArray::device, "The device holding the storage.")
      .def_prop_ro(
          "dtype", [](const NDArray& a) { return std::string(dtype_name(a.dtype())); },
          "The element type: \"float32\", \"float64\", \"int64\", \"int32\", \"int8\", \"uint8\" or \"bool\".")
      .def(
          "shares_memory", [](const NDArray& a, const NDArray& b) { return a.shares_storage_with(b); },
          nb::arg("other"), "True when both arrays view the same storage.");
  def_views(cls);
  def_course_ndarray(m, cls);
  m.def(
      "set_float_input_policy",
      [](const std::string& policy) {
        NEEDLE_CHECK(policy == "float32" || policy == "numpy", ValueError,
                     "set_float_input_policy: expected \"float32\" or \"numpy\", got \"", policy, "\"");
        set_float_input_policy(policy == "float32" ? FloatInputPolicy::Float32 : FloatInputPolicy::NumPy);
      },
      nb::arg("policy"),
      "How arrays and tensors store floating-point input given without a dtype: \"float32\" (the default, "
      "the course Needle's NDArray backend) or \"numpy\" (NumPy's dtypes: float64 stays float64; the "
      "course's NumPy backend, NEEDLE_BACKEND=np).");
  m.def(
      "float_input_policy", [] { return float_input_policy() == FloatInputPolicy::Float32 ? "float32" : "numpy"; },
      "The current set_float_input_policy.");
  def_conversions(cls);
  def_computations(cls);
  // Last, so that in the generated stub no annotation of the class body sees the method `numpy` where it
  // means the module (type checkers resolve `numpy.typing...` in class scope).
  cls.def(
      "numpy", [](const NDArray& a) { return to_numpy(a); }, nb::sig("def numpy(self) -> " NEEDLE_NUMPY_ARRAY),
      "A NumPy array sharing this array's memory (host devices; other devices copy to the host).");
  cls.attr("__hash__") = nb::none();
  // NumPy defers binary operators with an NDArray operand to NDArray's (so np.float32(2) * a is an NDArray).
  cls.attr("__array_priority__") = 1000;
}

}  // namespace needle::python
