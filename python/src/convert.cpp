// Conversions between Python objects and Needle's C++ types.
#include <nanobind/ndarray.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "bindings.h"

namespace needle::python {

namespace cache {

// NumPy's module and scalar types, looked up once (kept alive for the life of the process).
struct NumpyTypes {
  nb::module_ module;
  nb::handle ndarray;
  nb::handle generic;
  nb::handle bool_;
  nb::handle integer;
  nb::handle floating;
};

NumpyTypes* g_numpy = nullptr;

}  // namespace cache

namespace {

using cache::g_numpy;
using cache::NumpyTypes;

const NumpyTypes& np_types() {
  if (g_numpy == nullptr) init_numpy();
  return *g_numpy;
}

std::string python_type_name(nb::handle obj) { return nb::cast<std::string>(nb::type_name(obj.type())); }

bool is_instance(nb::handle obj, nb::handle type) { return PyObject_IsInstance(obj.ptr(), type.ptr()) == 1; }

// An exact Python int (not bool) or a NumPy integer, as int64. Anything else: std::nullopt.
std::optional<std::int64_t> as_index(nb::handle obj) {
  if (PyBool_Check(obj.ptr())) return std::nullopt;
  if (!PyLong_Check(obj.ptr())) {
    if (!is_instance(obj, np_types().integer)) return std::nullopt;
  }
  const nb::object value = nb::steal(PyNumber_Index(obj.ptr()));
  if (!value.is_valid()) throw nb::python_error();
  int overflow = 0;
  const long long result = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
  if (overflow != 0) throw IndexError(str("index ", nb::cast<std::string>(nb::repr(obj)), " does not fit in int64"));
  return static_cast<std::int64_t>(result);
}

std::optional<std::int64_t> slice_bound(nb::handle bound) {
  if (bound.is_none()) return std::nullopt;
  auto value = as_index(bound);
  if (!value) {
    throw TypeError(str("slice indices must be integers or None (got ", python_type_name(bound), ")"));
  }
  return value;
}

IndexItem to_index_item(nb::handle item) {
  if (item.is_none()) return IndexItem::new_axis();
  if (item.ptr() == Py_Ellipsis) return IndexItem::ellipsis();
  if (PySlice_Check(item.ptr())) {
    const std::optional<std::int64_t> step = slice_bound(item.attr("step"));
    return IndexItem::range(slice_bound(item.attr("start")), slice_bound(item.attr("stop")), step.value_or(1));
  }
  if (auto index = as_index(item)) return IndexItem::at(*index);
  throw IndexError(str("NDArray index: only integers, slices (`:`), ellipsis (`...`) and None are valid indices (got ",
                       python_type_name(item), ")"));
}

// How floating-point input without a requested dtype is stored (set_float_input_policy).
FloatInputPolicy g_float_input_policy = FloatInputPolicy::Float32;

// The dtype an input array of NumPy dtype kind/itemsize is stored as when no dtype is requested. Integer
// and bool input keep their kind; floating input follows the policy.
DType natural_dtype(const std::string& kind, std::size_t itemsize, const std::string& name) {
  if (kind == "b") return DType::Bool;
  // int16 and uint16 widen to int32, uint32 to int64 (no Needle dtype holds them exactly).
  if (kind == "i") return itemsize == 1 ? DType::Int8 : itemsize <= 4 ? DType::Int32 : DType::Int64;
  if (kind == "u") return itemsize == 1 ? DType::UInt8 : itemsize <= 2 ? DType::Int32 : DType::Int64;
  if (kind == "f") {
    if (g_float_input_policy == FloatInputPolicy::Float32 || itemsize <= 4) return DType::Float32;
    return DType::Float64;
  }
  throw TypeError(
      str("NDArray: unsupported dtype ", name, " (supported: bool, uint8, int8, int32, int64, float32, float64)"));
}

}  // namespace

void init_numpy() {
  if (g_numpy != nullptr) return;
  nb::module_ np = nb::module_::import_("numpy");
  // Deliberately leaked: NumPy outlives every use, and destroying these at exit would race the interpreter.
  g_numpy = new NumpyTypes{np,
                           nb::object(np.attr("ndarray")).release(),
                           nb::object(np.attr("generic")).release(),
                           nb::object(np.attr("bool_")).release(),
                           nb::object(np.attr("integer")).release(),
                           nb::object(np.attr("floating")).release()};
}

const nb::module_& numpy() { return np_types().module; }

void set_float_input_policy(FloatInputPolicy policy) { g_float_input_policy = policy; }
FloatInputPolicy float_input_policy() { return g_float_input_policy; }

DType to_dtype(const DTypeLike& dtype) {
  if (nb::isinstance<nb::str>(dtype.obj)) return dtype_from_name(nb::cast<std::string>(dtype.obj));
  // numpy.float32, numpy.dtype("int64"), ...
  nb::object np_dtype;
  try {
    np_dtype = numpy().attr("dtype")(dtype.obj);
  } catch (const nb::python_error&) {
    throw TypeError(str("unsupported dtype ", nb::cast<std::string>(nb::repr(dtype.obj))));
  }
  return dtype_from_name(nb::cast<std::string>(np_dtype.attr("name")));
}

std::optional<DType> to_dtype(const std::optional<DTypeLike>& dtype) {
  if (!dtype) return std::nullopt;
  return to_dtype(*dtype);
}

Device device_or_default(const std::optional<Device>& device) { return device ? *device : default_device(); }

Axes to_axes(const AxisArg& axis) {
  if (!axis) return {};
  if (const auto* single = std::get_if<std::int64_t>(&*axis)) return {*single};
  return std::get<std::vector<std::int64_t>>(*axis);
}

bool is_empty_axes(const AxisArg& axis) {
  if (!axis) return false;
  const auto* many = std::get_if<std::vector<std::int64_t>>(&*axis);
  return many != nullptr && many->empty();
}

IntTuple to_tuple(const std::vector<std::int64_t>& values) {
  nb::object tuple = nb::steal(PyTuple_New(static_cast<Py_ssize_t>(values.size())));
  if (!tuple.is_valid()) throw nb::python_error();
  for (std::size_t i = 0; i < values.size(); ++i) {
    PyObject* item = PyLong_FromLongLong(values[i]);
    if (item == nullptr) throw nb::python_error();
    PyTuple_SET_ITEM(tuple.ptr(), static_cast<Py_ssize_t>(i), item);
  }
  return nb::borrow<IntTuple>(tuple);
}

Shape shape_from_args(const nb::args& args, const char* op) {
  if (args.size() == 1 && (nb::isinstance<nb::tuple>(args[0]) || nb::isinstance<nb::list>(args[0]))) {
    return nb::cast<Shape>(args[0]);
  }
  Shape shape;
  shape.reserve(args.size());
  for (nb::handle arg : args) {
    auto dim = as_index(arg);
    if (!dim) throw TypeError(str(op, ": shape entries must be integers (got ", python_type_name(arg), ")"));
    shape.push_back(*dim);
  }
  return shape;
}

Index to_index(nb::handle key) {
  Index index;
  if (nb::isinstance<nb::tuple>(key)) {
    const auto items = nb::borrow<nb::tuple>(key);
    index.reserve(items.size());
    for (nb::handle item : items) index.push_back(to_index_item(item));
  } else {
    index.push_back(to_index_item(key));
  }
  return index;
}

NDArray to_ndarray(nb::handle obj, std::optional<Device> device, std::optional<DType> dtype) {
  if (nb::isinstance<NDArray>(obj)) {
    const NDArray& other = nb::cast<const NDArray&>(obj);
    NDArray result = other;
    if (device) result = result.to(*device);
    if (dtype) result = result.astype(*dtype);
    if (result.shares_storage_with(other)) result = result.copy();
    return result;
  }
  const Device target_device = device_or_default(device);
  const NumpyTypes& np = np_types();
  nb::object array = np.module.attr("asarray")(obj);
  const nb::object np_dtype = array.attr("dtype");
  const auto kind = nb::cast<std::string>(np_dtype.attr("kind"));
  const auto itemsize = nb::cast<std::size_t>(np_dtype.attr("itemsize"));
  const auto name = nb::cast<std::string>(np_dtype.attr("name"));
  const DType natural = natural_dtype(kind, itemsize, name);
  const DType target = dtype.value_or(natural);
  // Needle has no unsigned 64-bit dtype, and NumPy's cast to int64 wraps 2**64 - 1 to -1 without a word:
  // refuse the values that do not fit instead.
  if (kind == "u" && itemsize == 8 && is_integral(target) && nb::cast<std::size_t>(array.attr("size")) > 0) {
    const auto largest = nb::cast<std::uint64_t>(nb::int_(array.attr("max")()));
    NEEDLE_CHECK(largest <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), ValueError,
                 "NDArray: value ", largest, " of a uint64 input does not fit in ", dtype_name(target),
                 " (Needle has no unsigned 64-bit dtype; the largest value it holds is 2**63 - 1)");
  }
  array = np.module.attr("asarray")(array, nb::arg("dtype") = std::string(dtype_name(target)), nb::arg("order") = "C");
  const auto shape = nb::cast<Shape>(array.attr("shape"));
  const auto view = nb::cast<nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>>(array);
  return NDArray::from_host(view.data(), shape, target, target_device);
}

nb::object to_numpy(const NDArray& array) {
  const NDArray host = array.device().is_host() ? array : array.to(cpu_device());
  auto* keep_alive = new NDArray(host);
  nb::capsule owner(keep_alive, [](void* p) noexcept { delete static_cast<NDArray*>(p); });
  std::vector<std::size_t> shape(host.shape().begin(), host.shape().end());
  const nb::dlpack::dtype dtype =
      dispatch_dtype(host.dtype(), []<typename T>() -> nb::dlpack::dtype { return nb::dtype<T>(); });
  nb::ndarray<nb::numpy> view(host.data(), shape.size(), shape.data(), owner, host.strides().data(), dtype,
                              nb::device::cpu::value);
  return nb::cast(std::move(view), nb::rv_policy::reference);
}

NDArray reduce_axes(ReduceFn fn, const NDArray& a, const AxisArg& axis, bool keepdims) {
  if (is_empty_axes(axis)) {
    // NumPy reduces nothing for axis=(); reducing an appended size-1 axis keeps the op's dtype rules.
    return fn(a.unsqueeze(a.ndim()), {a.ndim()}, false);
  }
  return fn(a, to_axes(axis), keepdims);
}

Axes flip_axes(const NDArray& a, const AxisArg& axes) {
  if (axes) return to_axes(axes);
  Axes all(static_cast<std::size_t>(a.ndim()));
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int64_t>(i);
  return all;
}

nb::object scalar_to_python(const Scalar& value) {
  if (value.is_bool()) return nb::bool_(value.to<bool>());
  if (value.is_integral()) return nb::int_(value.to<std::int64_t>());
  return nb::float_(value.to<double>());
}

}  // namespace needle::python

namespace nanobind::detail {

bool type_caster<needle::Scalar>::from_python(handle src, std::uint8_t flags, cleanup_list* cleanup) noexcept {
  PyObject* obj = src.ptr();
  // A NumPy array of one element stands for its element (course code passes np.random.randn(1) as the
  // scalar of divide_scalar). Only in nanobind's second, converting pass: an overload that takes arrays
  // (NDArray's operators with a NumPy operand) matches first and keeps NumPy's broadcasting.
  if ((flags & static_cast<std::uint8_t>(cast_flags::convert)) != 0 && needle::python::cache::g_numpy != nullptr &&
      PyObject_IsInstance(obj, needle::python::cache::g_numpy->ndarray.ptr()) == 1) {
    PyObject* size = PyObject_GetAttrString(obj, "size");
    const long elements = size != nullptr ? PyLong_AsLong(size) : -1;
    Py_XDECREF(size);
    if (elements != 1) {
      PyErr_Clear();
      return false;
    }
    PyObject* item = PyObject_CallMethod(obj, "item", nullptr);
    if (item == nullptr) {
      PyErr_Clear();
      return false;
    }
    const bool converted = from_python(item, flags, cleanup);
    Py_DECREF(item);
    return converted;
  }
  if (PyBool_Check(obj)) {
    value = needle::Scalar(obj == Py_True);
    return true;
  }
  if (PyLong_Check(obj)) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow != 0 || (v == -1 && PyErr_Occurred() != nullptr)) {
      PyErr_Clear();
      return false;
    }
    value = needle::Scalar(static_cast<std::int64_t>(v));
    return true;
  }
  if (PyFloat_Check(obj)) {
    value = needle::Scalar(PyFloat_AS_DOUBLE(obj));
    return true;
  }
  if (needle::python::cache::g_numpy == nullptr) return false;
  const auto& np = *needle::python::cache::g_numpy;
  if (PyObject_IsInstance(obj, np.generic.ptr()) != 1) return false;
  if (PyObject_IsInstance(obj, np.bool_.ptr()) == 1) {
    const int truth = PyObject_IsTrue(obj);
    if (truth < 0) {
      PyErr_Clear();
      return false;
    }
    value = needle::Scalar(truth == 1);
    return true;
  }
  if (PyObject_IsInstance(obj, np.integer.ptr()) == 1) {
    PyObject* as_int = PyNumber_Index(obj);
    if (as_int == nullptr) {
      PyErr_Clear();
      return false;
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(as_int, &overflow);
    Py_DECREF(as_int);
    if (overflow != 0) return false;
    value = needle::Scalar(static_cast<std::int64_t>(v));
    return true;
  }
  if (PyObject_IsInstance(obj, np.floating.ptr()) == 1) {
    const double v = PyFloat_AsDouble(obj);
    if (v == -1.0 && PyErr_Occurred() != nullptr) {
      PyErr_Clear();
      return false;
    }
    value = needle::Scalar(v);
    return true;
  }
  return false;
}

handle type_caster<needle::Scalar>::from_cpp(const needle::Scalar& value, rv_policy /*policy*/,
                                             cleanup_list* /*cleanup*/) noexcept {
  if (value.is_bool()) return handle(value.to<bool>() ? Py_True : Py_False).inc_ref();
  if (value.is_integral()) return PyLong_FromLongLong(value.to<std::int64_t>());
  return PyFloat_FromDouble(value.to<double>());
}

bool type_caster<needle::python::DTypeLike>::from_python(handle src, std::uint8_t /*flags*/,
                                                         cleanup_list* /*cleanup*/) noexcept {
  // Strings, NumPy dtypes and type objects (numpy.float32, float); to_dtype() validates the value.
  if (src.is_none()) return false;
  if (!PyUnicode_Check(src.ptr()) && !PyType_Check(src.ptr()) && !hasattr(src, "kind")) return false;
  value.obj = borrow(src);
  return true;
}

}  // namespace nanobind::detail
