// The course Needle's NDArray internals, over Needle's NDArray: the storage handle (`_handle`), the
// underscored metadata (`_shape`, `_strides`, `_offset`, `_device`), `make`, `flat`, `process_slice`, and
// the device objects' backend functions on handles (`device.ewise_add(a._handle, b._handle, out._handle)`).
//
// Course code (its tests, its gradient checks) reaches below the array API to these names. Each is a thin
// alias of something Needle already has: a handle is the whole storage seen as a 1-D array, so every
// handle function is a few array operations on views of it (python/needle/backend_ndarray/handles.py).
#include <cstdint>
#include <string>

#include "bindings.h"

namespace needle::python {

namespace {

// The course's tile size for matmul_tiled (its CPU backend's TILE); any size works here, since
// matmul_tiled is a regular matmul over tile-major views.
constexpr std::int64_t kCourseTileSize = 8;

// One storage as the course sees it: a flat array of `size` elements with an address (`ptr()`), shared by
// every view of the storage and unchanged by writes through any of them.
struct StorageHandle {
  NDArray whole;  // the entire storage as a compact 1-D array of the dtype it was viewed with
};

StorageHandle handle_of(const NDArray& a) {
  const auto elements = static_cast<std::int64_t>(a.storage()->nbytes() / a.itemsize());
  return {a.as_strided({elements}, {1}, 0)};
}

// make(): a view of `handle` (a fresh compact storage when None) with any shape, strides and offset.
NDArray make_array(const Shape& shape, const std::optional<Strides>& strides, const std::optional<Device>& device,
                   const std::optional<StorageHandle>& handle, std::int64_t offset) {
  if (!handle) {
    NEEDLE_CHECK(!strides && offset == 0, ValueError,
                 "NDArray.make: strides and offset need a handle (a new array is compact, at offset 0)");
    return NDArray::empty(shape, kDefaultFloat, device_or_default(device), "NDArray.make");
  }
  NEEDLE_CHECK(!device || *device == handle->whole.device(), ValueError, "NDArray.make: the handle lives on ",
               handle->whole.device(), ", not on ", *device);
  return handle->whole.as_strided(shape, strides ? *strides : compact_strides(shape), offset, "NDArray.make");
}

// process_slice(): a slice with Python's defaults filled in for an axis of `size` (negative bounds count
// from the end, as in Python), so that start, stop and step are all integers.
nb::slice normalized_slice(const NDArray& a, const nb::slice& slice, std::int64_t axis) {
  NEEDLE_CHECK(axis >= 0 && axis < a.ndim(), IndexError, "NDArray.process_slice: axis ", axis,
               " is out of range for an array of shape ", shape_str(a.shape()));
  const auto [start, stop, step, length] = slice.compute(static_cast<std::size_t>(a.shape()[axis]));
  (void)length;
  return nb::slice(nb::int_(start), nb::int_(stop), nb::int_(step));
}

nb::object handle_functions() { return nb::module_::import_("needle.backend_ndarray.handles"); }

}  // namespace

void def_course_ndarray(nb::module_& m, nb::class_<NDArray>& cls) {
  nb::class_<StorageHandle>(m, "StorageHandle",
                            "A storage seen as a flat array: the course Needle's `NDArray._handle` (its backend's "
                            "`Array`). Views of one storage share one handle.")
      .def_prop_ro(
          "size", [](const StorageHandle& h) { return h.whole.size(); }, "Number of elements of the storage.")
      .def_prop_ro(
          "dtype", [](const StorageHandle& h) { return std::string(dtype_name(h.whole.dtype())); },
          "The element type the storage is seen with.")
      .def_prop_ro(
          "device", [](const StorageHandle& h) { return h.whole.device(); }, "The device holding the storage.")
      .def(
          "ptr", [](const StorageHandle& h) { return reinterpret_cast<std::uintptr_t>(h.whole.storage()->data()); },
          "The storage's first byte's address, as an integer (a device address off the host).")
      .def_prop_ro(
          "array", [](const StorageHandle& h) { return h.whole; }, "The whole storage as a compact 1-D NDArray.")
      .def("__repr__", [](const StorageHandle& h) {
        return str("StorageHandle(size=", h.whole.size(), ", dtype=", dtype_name(h.whole.dtype()),
                   ", device=", device_repr(h.whole.device()), ")");
      });

  cls.def_prop_ro("_handle", &handle_of, "The storage this array views (course name).")
      .def_prop_ro(
          "_shape", [](const NDArray& a) { return to_tuple(a.shape()); }, "`shape` (course name).")
      .def_prop_ro(
          "_strides", [](const NDArray& a) { return to_tuple(a.strides()); }, "`strides` (course name).")
      .def_prop_ro("_offset", &NDArray::offset, "`offset` (course name).")
      .def_prop_ro("_device", &NDArray::device, "`device` (course name).")
      .def_static("make", &make_array, nb::arg("shape"), nb::arg("strides") = nb::none(),
                  nb::arg("device") = nb::none(), nb::arg("handle") = nb::none(), nb::arg("offset") = 0,
                  "A view of `handle` with any shape, strides and offset (in elements), or a new compact "
                  "float32 array of `shape` when `handle` is None.")
      .def_prop_ro(
          "flat",
          [](const NDArray& a) {
            NEEDLE_CHECK(a.is_compact(), ValueError, "NDArray.flat: the array of shape ", shape_str(a.shape()),
                         " and strides ", shape_str(a.strides()),
                         " is not compact, so no 1-D view of it exists; call compact() first");
            return a.as_strided({a.size()}, {1}, a.offset());
          },
          "A writable 1-D view of a compact array (`a.flat[j] += eps` changes `a`).")
      .def("process_slice", &normalized_slice, nb::arg("sl"), nb::arg("dim"),
           "`sl` with its start, stop and step made integers for axis `dim` (Python's slice rules).");
}

void def_course_device(nb::class_<Device>& cls) {
  cls.def_prop_ro_static(
         "__tile_size__", [](nb::handle /*cls*/) { return kCourseTileSize; },
         "The tile size `matmul_tiled` expects (course name).")
      .def(
          "Array",
          [](const Device& d, std::int64_t size, const DTypeLike& dtype) {
            return StorageHandle{NDArray::empty({size}, to_dtype(dtype), d, "Array")};
          },
          nb::arg("size"), nb::arg("dtype") = "float32", "A new storage of `size` elements (course name).")
      .def(
          "__getattr__",
          [](const Device& /*device*/, const std::string& name) -> nb::object {
            const nb::object functions = handle_functions();
            if (name.rfind("__", 0) == 0 || !nb::hasattr(functions, name.c_str())) {
              throw nb::attribute_error(str("'Device' object has no attribute '", name, "'").c_str());
            }
            return functions.attr(name.c_str());  // handles know their device
          },
          nb::arg("name"),
          "The course backend's functions on handles (`fill`, `compact`, `ewise_add`, `matmul`, ...; see "
          "needle.backend_ndarray.handles), called as methods of the device.");
}

}  // namespace needle::python
