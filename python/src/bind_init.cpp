// needle.init's C++ side: the initializers of include/needle/nn/init.h (Needle's formulas, written once)
// and their sample sources. A Python subclass of SampleSource supplies base samples (the package's draws
// from NumPy's global state); InitializerSourceScope makes a source the one that C++ layer constructors
// draw from on this thread while a with block runs.
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/trampoline.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "bindings.h"
#include "needle/nn/init.h"

namespace needle::python {

namespace {

using nn::init::SampleSource;

// Python subclasses implement uniform(shape, dtype, device) and normal(...) with shape a tuple and dtype a
// name. C++ may ask a source for samples from code that does not hold the GIL, so each call takes it
// first. An exception raised by the Python method leaves as nb::python_error, unwinds through the
// initializer and the layer constructor (which hold no half-built state), and is restored as the same
// Python exception where the call entered C++; a wrong return type raises TypeError the same way.
class PySampleSource final : public SampleSource {
 public:
  NB_TRAMPOLINE(SampleSource);

  NDArray uniform(const Shape& shape, DType dtype, Device device) override {
    return call<nb::detail::str_hash("uniform")>("uniform", shape, dtype, device);
  }
  NDArray normal(const Shape& shape, DType dtype, Device device) override {
    return call<nb::detail::str_hash("normal")>("normal", shape, dtype, device);
  }

 private:
  // NB_OVERRIDE_PURE_NAME, with the arguments converted to Python's vocabulary first (a tuple, a dtype
  // name): nanobind has no conversion of its own for Shape-as-tuple or DType.
  template <std::uint64_t Hash>
  NDArray call(const char* name, const Shape& shape, DType dtype, Device device) {
    const nb::gil_scoped_acquire gil;
    const nb::detail::ticket ticket(nb_trampoline, name, Hash, true);
    const nb::object samples =
        nb_trampoline.base().attr(ticket.key)(to_tuple(shape), std::string(dtype_name(dtype)), device);
    NEEDLE_CHECK(nb::isinstance<NDArray>(samples), TypeError, "SampleSource.", name, " must return an NDArray, got ",
                 nb::inst_name(samples).c_str());
    return nb::cast<NDArray>(samples);
  }
};

// The engine of needle.init.initializer_source(): a ScopedInitializerSource held while a with block runs.
class InitializerSourceScope {
 public:
  explicit InitializerSourceScope(std::shared_ptr<SampleSource> source) : source_(std::move(source)) {}
  void enter() {
    NEEDLE_CHECK(!active_.has_value(), RuntimeError, "initializer_source: this scope is already active");
    active_.emplace(source_);
  }
  void exit() { active_.reset(); }

 private:
  std::shared_ptr<SampleSource> source_;
  std::optional<nn::init::ScopedInitializerSource> active_;
};

Device device_of(const std::optional<Device>& device) { return device_or_default(device); }

}  // namespace

void bind_init(nb::module_& m) {
  nb::class_<SampleSource, PySampleSource>(
      m, "SampleSource",
      "Where the initializers (and the built-in layers' constructors) get base samples. Subclass it and implement "
      "uniform and normal to draw from elsewhere; errors they raise reach the caller.")
      .def(nb::init<>())
      .def(
          "uniform",
          [](SampleSource& self, const Shape& shape, const DTypeLike& dtype, const Device& device) {
            return self.uniform(shape, to_dtype(dtype), device);
          },
          nb::arg("shape"), nb::arg("dtype"), nb::arg("device"),
          nb::sig("def uniform(self, shape: tuple[int, ...], dtype: str, device: Device) -> NDArray"),
          "Uniform samples in [0, 1) of `shape`, as `dtype` (float32 or float64) on `device`.")
      .def(
          "normal",
          [](SampleSource& self, const Shape& shape, const DTypeLike& dtype, const Device& device) {
            return self.normal(shape, to_dtype(dtype), device);
          },
          nb::arg("shape"), nb::arg("dtype"), nb::arg("device"),
          nb::sig("def normal(self, shape: tuple[int, ...], dtype: str, device: Device) -> NDArray"),
          "Standard normal samples of `shape`, as `dtype` on `device`.");
  nb::class_<nn::init::GeneratorSource, SampleSource>(
      m, "GeneratorSource", "The default source: rand/randn over Needle's default generator (manual_seed).")
      .def(nb::init<>());

  m.def("initializer_source", &nn::init::initializer_source,
        "The source initializers and layer constructors use on this thread when given none.");
  m.def("set_initializer_source", &nn::init::set_initializer_source, nb::arg("source").none(),
        "Sets the process-wide initializer source (None: the default GeneratorSource).");
  nb::class_<InitializerSourceScope>(m, "InitializerSourceScope",
                                     "Makes a source this thread's initializer source inside a with block.")
      .def(nb::init<std::shared_ptr<SampleSource>>(), nb::arg("source"))
      .def(
          "__enter__",
          [](InitializerSourceScope& self) -> InitializerSourceScope& {
            self.enter();
            return self;
          },
          nb::rv_policy::reference)
      .def(
          "__exit__", [](InitializerSourceScope& self, const nb::args& /*exc*/) { self.exit(); },
          nb::sig("def __exit__(self, *args: object) -> None"));

  const auto source_arg = [] { return nb::arg("source").none() = nb::none(); };
  m.def(
      "init_uniform",
      [](const Shape& shape, double low, double high, const DTypeLike& dtype, const std::optional<Device>& device,
         SampleSource* source) {
        return nn::init::uniform(shape, low, high, to_dtype(dtype), device_of(device), source);
      },
      nb::arg("shape"), nb::arg("low") = 0.0, nb::arg("high") = 1.0, nb::arg("dtype") = "float32",
      nb::arg("device") = nb::none(), source_arg(),
      "Uniform in [low, high): base samples u * (high - low) + low (source None: the initializer source).");
  m.def(
      "init_normal",
      [](const Shape& shape, double mean, double std, const DTypeLike& dtype, const std::optional<Device>& device,
         SampleSource* source) {
        return nn::init::normal(shape, mean, std, to_dtype(dtype), device_of(device), source);
      },
      nb::arg("shape"), nb::arg("mean") = 0.0, nb::arg("std") = 1.0, nb::arg("dtype") = "float32",
      nb::arg("device") = nb::none(), source_arg(), "Normal N(mean, std**2): base samples z * std + mean.");
  m.def("calculate_gain", &nn::init::calculate_gain, nb::arg("nonlinearity"),
        "The gain of a nonlinearity (relu sqrt(2), tanh 5/3, linear and sigmoid 1, leaky_relu); ValueError "
        "otherwise.");
  m.def(
      "init_xavier_uniform",
      [](std::int64_t fan_in, std::int64_t fan_out, double gain, const std::optional<Shape>& shape,
         const DTypeLike& dtype, const std::optional<Device>& device, SampleSource* source) {
        return nn::init::xavier_uniform(fan_in, fan_out, gain, shape, to_dtype(dtype), device_of(device), source);
      },
      nb::arg("fan_in"), nb::arg("fan_out"), nb::arg("gain") = 1.0, nb::arg("shape") = nb::none(),
      nb::arg("dtype") = "float32", nb::arg("device") = nb::none(), source_arg(),
      "Uniform in +-gain * sqrt(6 / (fan_in + fan_out)), shape (fan_in, fan_out) unless given.");
  m.def(
      "init_xavier_normal",
      [](std::int64_t fan_in, std::int64_t fan_out, double gain, const std::optional<Shape>& shape,
         const DTypeLike& dtype, const std::optional<Device>& device, SampleSource* source) {
        return nn::init::xavier_normal(fan_in, fan_out, gain, shape, to_dtype(dtype), device_of(device), source);
      },
      nb::arg("fan_in"), nb::arg("fan_out"), nb::arg("gain") = 1.0, nb::arg("shape") = nb::none(),
      nb::arg("dtype") = "float32", nb::arg("device") = nb::none(), source_arg(),
      "Normal with std gain * sqrt(2 / (fan_in + fan_out)).");
  m.def(
      "init_kaiming_uniform",
      [](std::int64_t fan_in, std::int64_t fan_out, const std::optional<Shape>& shape, const std::string& nonlinearity,
         const DTypeLike& dtype, const std::optional<Device>& device, SampleSource* source) {
        return nn::init::kaiming_uniform(fan_in, fan_out, shape, nonlinearity, to_dtype(dtype), device_of(device),
                                         source);
      },
      nb::arg("fan_in"), nb::arg("fan_out"), nb::arg("shape") = nb::none(), nb::arg("nonlinearity") = "relu",
      nb::arg("dtype") = "float32", nb::arg("device") = nb::none(), source_arg(),
      "Uniform in +-gain * sqrt(3 / fan_in), shape (fan_in, fan_out) unless given.");
  m.def(
      "init_kaiming_normal",
      [](std::int64_t fan_in, std::int64_t fan_out, const std::optional<Shape>& shape, const std::string& nonlinearity,
         const DTypeLike& dtype, const std::optional<Device>& device, SampleSource* source) {
        return nn::init::kaiming_normal(fan_in, fan_out, shape, nonlinearity, to_dtype(dtype), device_of(device),
                                        source);
      },
      nb::arg("fan_in"), nb::arg("fan_out"), nb::arg("shape") = nb::none(), nb::arg("nonlinearity") = "relu",
      nb::arg("dtype") = "float32", nb::arg("device") = nb::none(), source_arg(),
      "Normal with std gain / sqrt(fan_in), shape (fan_in, fan_out) unless given.");
}

}  // namespace needle::python
