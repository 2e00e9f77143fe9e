// Shared declarations of the Python bindings: the conversions between Python objects and Needle's C++
// types (scalars, dtypes, axes, shapes, index expressions, NumPy arrays) and one bind_* entry point per
// file.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "needle/needle.h"

namespace needle::python {

namespace nb = nanobind;

// A dtype argument as given by the caller ("float32", numpy.float32, numpy.dtype("int64")). Converted
// in the function body by to_dtype() so that an unknown dtype raises TypeError with a clear message.
struct DTypeLike {
  nb::object obj;
};

// An axis argument: None (every axis), an int, or a sequence of ints.
using AxisArg = std::optional<std::variant<std::int64_t, std::vector<std::int64_t>>>;

// Python tuple[int, ...] (shape, strides).
using IntTuple = nb::typed<nb::tuple, int, nb::ellipsis>;

// Caches NumPy's module and scalar types; called once when the module is imported.
void init_numpy();
const nb::module_& numpy();

DType to_dtype(const DTypeLike& dtype);
std::optional<DType> to_dtype(const std::optional<DTypeLike>& dtype);
Device device_or_default(const std::optional<Device>& device);

// None -> {} (every axis), an int -> {axis}, a sequence -> itself.
Axes to_axes(const AxisArg& axis);
// The axis argument is an explicitly empty sequence: NumPy reduces nothing then.
bool is_empty_axes(const AxisArg& axis);

IntTuple to_tuple(const std::vector<std::int64_t>& values);
// A shape given either as one sequence argument or as several int arguments (rand(2, 3), rand((2, 3))).
Shape shape_from_args(const nb::args& args, const char* op);

// a[key]: ints, slices, None, Ellipsis and tuples of those; anything else raises IndexError.
Index to_index(nb::handle key);

// NDArray(obj, device, dtype): an NDArray (copied), a NumPy array or scalar (its dtype kept when
// supported), a nested list or a Python scalar (float -> float32, int -> int64, bool -> bool).
NDArray to_ndarray(nb::handle obj, std::optional<Device> device, std::optional<DType> dtype);

// How to_ndarray stores floating-point input when no dtype is requested: always as float32 (the course
// Needle's NDArray backend, the default), or as NumPy does (float64 arrays and Python floats stay
// float64; its NumPy backend, NEEDLE_BACKEND=np). Integer and bool input keep their kind either way.
enum class FloatInputPolicy : std::uint8_t { Float32, NumPy };
void set_float_input_policy(FloatInputPolicy policy);
FloatInputPolicy float_input_policy();
// A NumPy array viewing the storage of a host array (copied to the host first otherwise); the NumPy
// array keeps the NDArray's storage alive.
nb::object to_numpy(const NDArray& array);

// Python object for a Scalar (bool, int or float).
nb::object scalar_to_python(const Scalar& value);

// "cpu()", "ref()", "cuda()", "cuda(1)": how Needle prints a device.
std::string device_repr(const Device& device);

// A reduction (sum, max, min, mean) with NumPy's axis argument: None reduces every axis, an empty
// sequence reduces none.
using ReduceFn = NDArray (*)(const NDArray&, const Axes&, bool);
NDArray reduce_axes(ReduceFn fn, const NDArray& a, const AxisArg& axis, bool keepdims);
// flip's axes: None means every axis.
Axes flip_axes(const NDArray& a, const AxisArg& axes);

// The course Needle's NDArray internals and device functions (bind_course_ndarray.cpp), added to the
// classes bind_ndarray and bind_device create.
void def_course_ndarray(nb::module_& m, nb::class_<NDArray>& cls);
void def_course_device(nb::class_<Device>& cls);

// Raises `error` in Python as the exception class its kind stands for (what bind_errors() registers for
// every bound function; functions written against the C API call it themselves).
void set_python_error(const Error& error);

void bind_errors(nb::module_& m);
void bind_device(nb::module_& m);
void bind_ndarray(nb::module_& m);
void bind_array_ops(nb::module_& m);
void bind_random(nb::module_& m);
void bind_init(nb::module_& m);
void bind_nn(nb::module_& m);
void bind_optim(nb::module_& m);
void bind_data(nb::module_& m);
void bind_io(nb::module_& m);
void bind_debug(nb::module_& m);
void bind_threads(nb::module_& m);
void bind_dist(nb::module_& m);
void bind_torch_layer(nb::module_& m);

}  // namespace needle::python

namespace nanobind::detail {

// Python bool / int / float and NumPy scalars -> needle::Scalar (bool, int64 or double).
template <>
struct type_caster<needle::Scalar> {
  NB_TYPE_CASTER(needle::Scalar, const_name("bool | int | float"))

  bool from_python(handle src, std::uint8_t flags, cleanup_list* cleanup) noexcept;
  static handle from_cpp(const needle::Scalar& value, rv_policy policy, cleanup_list* cleanup) noexcept;
};

template <>
struct type_caster<needle::python::DTypeLike> {
  NB_TYPE_CASTER(needle::python::DTypeLike, const_name("str"))

  bool from_python(handle src, std::uint8_t flags, cleanup_list* cleanup) noexcept;
  static handle from_cpp(const needle::python::DTypeLike& value, rv_policy /*policy*/,
                         cleanup_list* /*cleanup*/) noexcept {
    return value.obj.inc_ref();
  }
};

}  // namespace nanobind::detail
