// Needle's own seedable generator (the same numbers on every device): manual_seed, rand, randn, randb.
#include "bindings.h"

namespace needle::python {

void bind_random(nb::module_& m) {
  m.def(
      "manual_seed", [](std::uint64_t seed) { manual_seed(seed); }, nb::arg("seed"),
      "Seeds Needle's default generator (used by rand, randn and randb; not by NumPy's global state).");
  m.def(
      "rand",
      [](const nb::args& shape, double low, double high, const DTypeLike& dtype, const std::optional<Device>& device) {
        return rand(shape_from_args(shape, "rand"), low, high, to_dtype(dtype), device_or_default(device));
      },
      nb::arg("shape"), nb::arg("low") = 0.0, nb::arg("high") = 1.0, nb::arg("dtype") = "float32",
      nb::arg("device") = nb::none(),
      nb::sig("def rand(*shape: int, low: float = 0.0, high: float = 1.0, dtype: str = 'float32', "
              "device: Device | str | None = None) -> NDArray"),
      "Uniform samples in [low, high) from Needle's generator.");
  m.def(
      "randn",
      [](const nb::args& shape, double mean, double std, const DTypeLike& dtype, const std::optional<Device>& device) {
        return randn(shape_from_args(shape, "randn"), mean, std, to_dtype(dtype), device_or_default(device));
      },
      nb::arg("shape"), nb::arg("mean") = 0.0, nb::arg("std") = 1.0, nb::arg("dtype") = "float32",
      nb::arg("device") = nb::none(),
      nb::sig("def randn(*shape: int, mean: float = 0.0, std: float = 1.0, dtype: str = 'float32', "
              "device: Device | str | None = None) -> NDArray"),
      "Normal samples N(mean, std**2) from Needle's generator.");
  m.def(
      "randb",
      [](const nb::args& shape, double p, const DTypeLike& dtype, const std::optional<Device>& device) {
        return randb(shape_from_args(shape, "randb"), p, to_dtype(dtype), device_or_default(device));
      },
      nb::arg("shape"), nb::arg("p") = 0.5, nb::arg("dtype") = "bool", nb::arg("device") = nb::none(),
      nb::sig("def randb(*shape: int, p: float = 0.5, dtype: str = 'bool', device: Device | str | None = None) "
              "-> NDArray"),
      "1 with probability p, else 0 (bool by default), from Needle's generator.");
}

}  // namespace needle::python
