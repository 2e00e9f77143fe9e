// Parameter initializers with Needle's formulas (needle.init) and the source of their randomness.
//
// Every random initializer asks a SampleSource for base samples (uniform in [0, 1) or standard normal, of
// a shape, dtype and device) and scales and shifts them with its formula; each returns a fresh array that
// a layer wraps with Parameter(). The source is chosen per call (`source`) or, when none is given, is the
// initializer source of this thread: the innermost ScopedInitializerSource, else the process-wide one
// (set_initializer_source), which by default draws from the default Generator (seeded by manual_seed).
// Layer constructors draw through the initializer source, so swapping it changes where every built-in
// layer's initial values come from, but never their formulas or order. The Python package supplies one
// drawing from NumPy's global state, which reproduces the course Needle's numbers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "needle/core/dtype.h"
#include "needle/core/ndarray.h"
#include "needle/core/random.h"

namespace needle::nn::init {

// Base samples for the initializers. The initializers request float32 samples for every dtype but
// float64 (as Needle does) and check what comes back: the shape, dtype and device asked for (ValueError
// naming the request otherwise). Exceptions a source throws reach the initializer's caller unchanged.
class SampleSource {
 public:
  SampleSource() = default;
  virtual ~SampleSource() = default;
  SampleSource(const SampleSource&) = delete;
  SampleSource& operator=(const SampleSource&) = delete;
  SampleSource(SampleSource&&) = delete;
  SampleSource& operator=(SampleSource&&) = delete;

  // Uniform samples in [0, 1) of `shape`, as `dtype` on `device`.
  virtual NDArray uniform(const Shape& shape, DType dtype, Device device) = 0;
  // Standard normal samples of `shape`, as `dtype` on `device`.
  virtual NDArray normal(const Shape& shape, DType dtype, Device device) = 0;
};

// The default source: rand/randn over a Generator (null: the default generator, read at each draw), so the
// same seed gives the same numbers on every device.
class GeneratorSource final : public SampleSource {
 public:
  explicit GeneratorSource(Generator* generator = nullptr) : generator_(generator) {}
  NDArray uniform(const Shape& shape, DType dtype, Device device) override;
  NDArray normal(const Shape& shape, DType dtype, Device device) override;

 private:
  Generator* generator_;
};

// The source initializers given none use on this thread (never null).
std::shared_ptr<SampleSource> initializer_source();
// Sets the process-wide source (null: a GeneratorSource over the default generator again). Threads inside
// a ScopedInitializerSource keep theirs until it ends.
void set_initializer_source(std::shared_ptr<SampleSource> source);

// Makes `source` this thread's initializer source until destroyed, then restores the one before (nestable).
class ScopedInitializerSource {
 public:
  explicit ScopedInitializerSource(std::shared_ptr<SampleSource> source);
  ~ScopedInitializerSource();
  ScopedInitializerSource(const ScopedInitializerSource&) = delete;
  ScopedInitializerSource& operator=(const ScopedInitializerSource&) = delete;
  ScopedInitializerSource(ScopedInitializerSource&&) = delete;
  ScopedInitializerSource& operator=(ScopedInitializerSource&&) = delete;

 private:
  std::shared_ptr<SampleSource> previous_;
};

// Uniform in [low, high): u * (high - low) + low for base samples u, computed in the sample dtype and then
// converted to `dtype`.
NDArray uniform(const Shape& shape, double low = 0.0, double high = 1.0, DType dtype = kDefaultFloat,
                Device device = default_device(), SampleSource* source = nullptr);
// Normal with the given mean and standard deviation: z * std + mean for base samples z, as uniform().
NDArray normal(const Shape& shape, double mean = 0.0, double std = 1.0, DType dtype = kDefaultFloat,
               Device device = default_device(), SampleSource* source = nullptr);
NDArray zeros(const Shape& shape, DType dtype = kDefaultFloat, Device device = default_device());
NDArray ones(const Shape& shape, DType dtype = kDefaultFloat, Device device = default_device());

// The gain Needle (and PyTorch) use for a nonlinearity: "relu" sqrt(2), "tanh" 5/3, "linear"/"sigmoid"
// 1, "leaky_relu" sqrt(2 / (1 + 0.01^2)). Throws ValueError for other names.
double calculate_gain(const std::string& nonlinearity);

// Xavier/Glorot: uniform in +-gain * sqrt(6 / (fan_in + fan_out)), or normal with std
// gain * sqrt(2 / (fan_in + fan_out)). Shape (fan_in, fan_out) unless given.
NDArray xavier_uniform(std::int64_t fan_in, std::int64_t fan_out, double gain = 1.0,
                       const std::optional<Shape>& shape = std::nullopt, DType dtype = kDefaultFloat,
                       Device device = default_device(), SampleSource* source = nullptr);
NDArray xavier_normal(std::int64_t fan_in, std::int64_t fan_out, double gain = 1.0,
                      const std::optional<Shape>& shape = std::nullopt, DType dtype = kDefaultFloat,
                      Device device = default_device(), SampleSource* source = nullptr);

// Kaiming/He: uniform in +-gain * sqrt(3 / fan_in), or normal with std gain / sqrt(fan_in), gain from
// `nonlinearity` (sqrt(2) for relu). fan_out only sets the default shape (fan_in, fan_out), as in Needle.
NDArray kaiming_uniform(std::int64_t fan_in, std::int64_t fan_out, const std::optional<Shape>& shape = std::nullopt,
                        const std::string& nonlinearity = "relu", DType dtype = kDefaultFloat,
                        Device device = default_device(), SampleSource* source = nullptr);
NDArray kaiming_normal(std::int64_t fan_in, std::int64_t fan_out, const std::optional<Shape>& shape = std::nullopt,
                       const std::string& nonlinearity = "relu", DType dtype = kDefaultFloat,
                       Device device = default_device(), SampleSource* source = nullptr);

}  // namespace needle::nn::init
