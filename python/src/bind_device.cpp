// Devices: cpu(), ref(), cuda() and the helper methods Needle's initializers call on a device.
#include <string>

#include "bindings.h"

namespace needle::python {

std::string device_repr(const Device& device) {
  if (device.type == DeviceType::Cuda && device.index != 0) return str("cuda(", device.index, ")");
  return device.name() + "()";
}

namespace {

// Needle's device.rand/randn draw from NumPy's global random state; that lives in the Python layer.
nb::object numpy_random(const char* function, const Device& device, const nb::args& shape, const DTypeLike& dtype) {
  const nb::object helpers = nb::module_::import_("needle.backend_ndarray._numpy_random");
  return helpers.attr(function)(device, to_tuple(shape_from_args(shape, function)), dtype.obj);
}

NDArray one_hot(const Device& device, std::int64_t n, nb::handle indices, const DTypeLike& dtype) {
  NEEDLE_CHECK(n >= 0, ValueError, "one_hot: number of classes must be non-negative (got ", n, ")");
  const NDArray index = nb::isinstance<NDArray>(indices)
                            ? nb::cast<const NDArray&>(indices).to(device).astype(DType::Int64)
                            : to_ndarray(indices, device, DType::Int64);
  if (index.size() > 0) {
    const auto lowest = needle::min(index).item().to<std::int64_t>();
    const auto highest = needle::max(index).item().to<std::int64_t>();
    NEEDLE_CHECK(lowest >= 0, IndexError, "one_hot: index ", lowest, " is out of range for ", n, " classes");
    NEEDLE_CHECK(highest < n, IndexError, "one_hot: index ", highest, " is out of range for ", n, " classes");
  }
  return needle::one_hot(index, n, to_dtype(dtype));
}

}  // namespace

void bind_device(nb::module_& m) {
  nb::class_<Device> cls(m, "Device",
                         "Where an array lives and which backend runs its kernels: cpu(), ref() or cuda(). "
                         "Needle calls this class BackendDevice.");
  cls.def(
         "__init__", [](Device* self, const std::string& name) { new (self) Device(device_from_name(name)); },
         nb::arg("name"), "The device named \"cpu\", \"ref\", \"cuda\" or \"cuda:N\".")
      .def_prop_ro("name", &Device::name, "\"cpu\", \"ref\", \"cuda\" (\"cuda:N\" for other CUDA devices).")
      .def_prop_ro(
          "index", [](const Device& d) { return d.index; }, "Device index (CUDA devices).")
      .def_prop_ro("is_host", &Device::is_host, "True when NumPy can view this device's memory without a copy.")
      .def("enabled", &Device::enabled, "True when this device's backend is compiled in and usable.")
      .def("__repr__", &device_repr)
      .def("__str__", &Device::name)
      .def(
          "__eq__", [](const Device& a, const Device& b) { return a == b; }, nb::is_operator(),
          nb::sig("def __eq__(self, other: object, /) -> bool"))
      .def(
          "__ne__", [](const Device& a, const Device& b) { return a != b; }, nb::is_operator(),
          nb::sig("def __ne__(self, other: object, /) -> bool"))
      .def("__hash__",
           [](const Device& d) {
             return static_cast<std::int64_t>(d.type) * 1000003 + static_cast<std::int64_t>(d.index);
           })
      .def(
          "empty",
          [](const Device& d, const Shape& shape, const DTypeLike& dtype) {
            return NDArray::empty(shape, to_dtype(dtype), d);
          },
          nb::arg("shape"), nb::arg("dtype") = "float32", "An uninitialized array on this device.")
      .def(
          "full",
          [](const Device& d, const Shape& shape, const Scalar& fill_value, const DTypeLike& dtype) {
            return NDArray::full(shape, fill_value, to_dtype(dtype), d);
          },
          nb::arg("shape"), nb::arg("fill_value"), nb::arg("dtype") = "float32",
          "An array of `shape` filled with `fill_value`.")
      .def("one_hot", &one_hot, nb::arg("n"), nb::arg("i"), nb::arg("dtype") = "float32",
           nb::sig("def one_hot(self, n: int, i: int | typing.Sequence[int] | NDArray | numpy.typing.ArrayLike, "
                   "dtype: str = 'float32') -> NDArray"),
           "Rows of the n x n identity for the indices `i` (shape i.shape + (n,)).")
      .def(
          "rand",
          [](const Device& d, const nb::args& shape, const DTypeLike& dtype) {
            return numpy_random("rand", d, shape, dtype);
          },
          nb::arg("shape"), nb::arg("dtype") = "float32",
          nb::sig("def rand(self, *shape: int, dtype: str = 'float32') -> NDArray"),
          "Uniform [0, 1) samples drawn from NumPy's global random state (numpy.random.rand).")
      .def(
          "randn",
          [](const Device& d, const nb::args& shape, const DTypeLike& dtype) {
            return numpy_random("randn", d, shape, dtype);
          },
          nb::arg("shape"), nb::arg("dtype") = "float32",
          nb::sig("def randn(self, *shape: int, dtype: str = 'float32') -> NDArray"),
          "Standard normal samples drawn from NumPy's global random state (numpy.random.randn).");
  def_course_device(cls);
  nb::implicitly_convertible<std::string, Device>();

  m.def("cpu", &cpu_device, "The fast CPU backend (the default device).");
  m.def("ref", &ref_device, "The readable reference backend (Needle's cpu_numpy role).");
  m.def("cuda", &cuda_device, nb::arg("index") = 0, "The CUDA backend; check enabled() before use.");
  m.def("default_device", &default_device, "The device new arrays go to when none is given (cpu).");
}

}  // namespace needle::python
