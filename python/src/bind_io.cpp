// Checkpoints: safetensors files (include/needle/io/safetensors.h) read and written in C++.
#include <nanobind/stl/map.h>

#include <optional>
#include <string>

#include "bindings.h"
#include "needle/io/safetensors.h"

namespace needle::python {

void bind_io(nb::module_& m) {
  m.def(
      "save_safetensors",
      [](const std::string& path, const io::TensorMap& tensors, const io::Metadata& metadata) {
        nb::gil_scoped_release release;
        io::save_safetensors(path, tensors, metadata);
      },
      nb::arg("path"), nb::arg("tensors"), nb::arg("metadata") = io::Metadata{},
      "Writes NDArrays by name (and string metadata) to a safetensors file.");
  m.def(
      "load_safetensors",
      [](const std::string& path, const std::optional<Device>& device) {
        const Device target = device_or_default(device);
        nb::gil_scoped_release release;
        return io::load_safetensors(path, target);
      },
      nb::arg("path"), nb::arg("device") = nb::none(),
      "Every tensor of a safetensors file, as NDArrays on `device`. The whole file is validated first: a missing, "
      "truncated or malformed file raises ValueError naming it.");
  m.def("load_safetensors_metadata", &io::load_safetensors_metadata, nb::arg("path"),
        "The \"__metadata__\" of a safetensors file (empty when absent).");
}

}  // namespace needle::python
