// Initializers: Needle's formulas over base samples from a SampleSource (by default the array layer's
// counter-based random draws).
#include "needle/nn/init.h"

#include <cmath>
#include <mutex>
#include <utility>

#include "needle/core/array_ops.h"
#include "needle/core/error.h"

namespace needle::nn::init {

namespace {

void check_fans(const char* fn, std::int64_t fan_in, std::int64_t fan_out) {
  NEEDLE_CHECK(fan_in > 0 && fan_out > 0, ValueError, fn, ": fan_in and fan_out must be positive, got ", fan_in,
               " and ", fan_out);
}

std::mutex& process_source_mutex() {
  static std::mutex mutex;
  return mutex;
}

// The process-wide source; null means the default GeneratorSource.
std::shared_ptr<SampleSource>& process_source() {
  static std::shared_ptr<SampleSource> source;
  return source;
}

// This thread's innermost ScopedInitializerSource, or null.
std::shared_ptr<SampleSource>& thread_source() {
  thread_local std::shared_ptr<SampleSource> source;
  return source;
}

// Needle draws float32 samples for every dtype but float64.
DType sample_dtype(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

enum class Distribution : std::uint8_t { Uniform, Normal };

// Base samples from `source` (the initializer source when null), checked against the request.
NDArray base_samples(Distribution distribution, const Shape& shape, DType dtype, Device device, SampleSource* source) {
  std::shared_ptr<SampleSource> current;
  if (source == nullptr) {
    current = initializer_source();
    source = current.get();
  }
  const DType wanted = sample_dtype(dtype);
  NDArray samples = distribution == Distribution::Uniform ? source->uniform(shape, wanted, device)
                                                          : source->normal(shape, wanted, device);
  const char* kind = distribution == Distribution::Uniform ? "uniform" : "normal";
  NEEDLE_CHECK(samples.shape() == shape && samples.dtype() == wanted && samples.device() == device, ValueError,
               "initializer sample source: ", kind, " samples of shape ", shape_str(shape), ", dtype ",
               dtype_name(wanted), " on ", device, " were requested, got shape ", shape_str(samples.shape()),
               ", dtype ", dtype_name(samples.dtype()), " on ", samples.device());
  return samples;
}

}  // namespace

NDArray GeneratorSource::uniform(const Shape& shape, DType dtype, Device device) {
  return rand(shape, 0.0, 1.0, dtype, device, generator_);
}

NDArray GeneratorSource::normal(const Shape& shape, DType dtype, Device device) {
  return randn(shape, 0.0, 1.0, dtype, device, generator_);
}

std::shared_ptr<SampleSource> initializer_source() {
  if (thread_source() != nullptr) return thread_source();
  const std::lock_guard<std::mutex> lock(process_source_mutex());
  if (process_source() == nullptr) process_source() = std::make_shared<GeneratorSource>();
  return process_source();
}

void set_initializer_source(std::shared_ptr<SampleSource> source) {
  std::shared_ptr<SampleSource> previous;  // released outside the lock (a binding's source may run code)
  const std::lock_guard<std::mutex> lock(process_source_mutex());
  previous = std::exchange(process_source(), std::move(source));
}

ScopedInitializerSource::ScopedInitializerSource(std::shared_ptr<SampleSource> source)
    : previous_(std::exchange(thread_source(), std::move(source))) {}

ScopedInitializerSource::~ScopedInitializerSource() { thread_source() = std::move(previous_); }

NDArray uniform(const Shape& shape, double low, double high, DType dtype, Device device, SampleSource* source) {
  const NDArray u = base_samples(Distribution::Uniform, shape, dtype, device, source);
  return (u * Scalar(high - low) + Scalar(low)).astype(dtype);
}

NDArray normal(const Shape& shape, double mean, double std, DType dtype, Device device, SampleSource* source) {
  NEEDLE_CHECK(std >= 0, ValueError, "normal: std must be non-negative, got ", std);
  const NDArray z = base_samples(Distribution::Normal, shape, dtype, device, source);
  return (z * Scalar(std) + Scalar(mean)).astype(dtype);
}

NDArray zeros(const Shape& shape, DType dtype, Device device) { return NDArray::zeros(shape, dtype, device); }

NDArray ones(const Shape& shape, DType dtype, Device device) { return NDArray::ones(shape, dtype, device); }

double calculate_gain(const std::string& nonlinearity) {
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "linear" || nonlinearity == "sigmoid") return 1.0;
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + 0.01 * 0.01));  // PyTorch's default slope
  throw ValueError(str("calculate_gain: unsupported nonlinearity '", nonlinearity,
                       "' (expected leaky_relu, linear, relu, sigmoid or tanh)"));
}

NDArray xavier_uniform(std::int64_t fan_in, std::int64_t fan_out, double gain, const std::optional<Shape>& shape,
                       DType dtype, Device device, SampleSource* source) {
  check_fans("xavier_uniform", fan_in, fan_out);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return uniform(shape.value_or(Shape{fan_in, fan_out}), -bound, bound, dtype, device, source);
}

NDArray xavier_normal(std::int64_t fan_in, std::int64_t fan_out, double gain, const std::optional<Shape>& shape,
                      DType dtype, Device device, SampleSource* source) {
  check_fans("xavier_normal", fan_in, fan_out);
  const double std = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  return normal(shape.value_or(Shape{fan_in, fan_out}), 0.0, std, dtype, device, source);
}

NDArray kaiming_uniform(std::int64_t fan_in, std::int64_t fan_out, const std::optional<Shape>& shape,
                        const std::string& nonlinearity, DType dtype, Device device, SampleSource* source) {
  check_fans("kaiming_uniform", fan_in, fan_out);
  const double bound = calculate_gain(nonlinearity) * std::sqrt(3.0 / static_cast<double>(fan_in));
  return uniform(shape.value_or(Shape{fan_in, fan_out}), -bound, bound, dtype, device, source);
}

NDArray kaiming_normal(std::int64_t fan_in, std::int64_t fan_out, const std::optional<Shape>& shape,
                       const std::string& nonlinearity, DType dtype, Device device, SampleSource* source) {
  check_fans("kaiming_normal", fan_in, fan_out);
  const double std = calculate_gain(nonlinearity) / std::sqrt(static_cast<double>(fan_in));
  return normal(shape.value_or(Shape{fan_in, fan_out}), 0.0, std, dtype, device, source);
}

}  // namespace needle::nn::init
