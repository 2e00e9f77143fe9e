// Initializers: Needle's formulas on top of the array layer's counter-based random draws.
#include "needle/nn/init.h"

#include <cmath>

#include "needle/core/array_ops.h"
#include "needle/core/error.h"

namespace needle::nn::init {

namespace {

void check_fans(const char* fn, std::int64_t fan_in, std::int64_t fan_out) {
  NEEDLE_CHECK(fan_in > 0 && fan_out > 0, ValueError, fn, ": fan_in and fan_out must be positive, got ", fan_in,
               " and ", fan_out);
}

}  // namespace

NDArray uniform(const Shape& shape, double low, double high, DType dtype, Device device, Generator* generator) {
  return rand(shape, low, high, dtype, device, generator);
}

NDArray normal(const Shape& shape, double mean, double std, DType dtype, Device device, Generator* generator) {
  return randn(shape, mean, std, dtype, device, generator);
}

NDArray zeros(const Shape& shape, DType dtype, Device device) { return NDArray::zeros(shape, dtype, device); }

NDArray ones(const Shape& shape, DType dtype, Device device) { return NDArray::ones(shape, dtype, device); }

double calculate_gain(const std::string& nonlinearity) {
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "linear" || nonlinearity == "sigmoid") return 1.0;
  throw ValueError(
      str("calculate_gain: unsupported nonlinearity '", nonlinearity, "' (expected relu, tanh, linear or sigmoid)"));
}

NDArray xavier_uniform(std::int64_t fan_in, std::int64_t fan_out, double gain, const std::optional<Shape>& shape,
                       DType dtype, Device device, Generator* generator) {
  check_fans("xavier_uniform", fan_in, fan_out);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return rand(shape.value_or(Shape{fan_in, fan_out}), -bound, bound, dtype, device, generator);
}

NDArray xavier_normal(std::int64_t fan_in, std::int64_t fan_out, double gain, const std::optional<Shape>& shape,
                      DType dtype, Device device, Generator* generator) {
  check_fans("xavier_normal", fan_in, fan_out);
  const double std = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  return randn(shape.value_or(Shape{fan_in, fan_out}), 0.0, std, dtype, device, generator);
}

NDArray kaiming_uniform(std::int64_t fan_in, std::int64_t fan_out, const std::optional<Shape>& shape,
                        const std::string& nonlinearity, DType dtype, Device device, Generator* generator) {
  check_fans("kaiming_uniform", fan_in, fan_out);
  const double bound = calculate_gain(nonlinearity) * std::sqrt(3.0 / static_cast<double>(fan_in));
  return rand(shape.value_or(Shape{fan_in, fan_out}), -bound, bound, dtype, device, generator);
}

NDArray kaiming_normal(std::int64_t fan_in, std::int64_t fan_out, const std::optional<Shape>& shape,
                       const std::string& nonlinearity, DType dtype, Device device, Generator* generator) {
  check_fans("kaiming_normal", fan_in, fan_out);
  const double std = calculate_gain(nonlinearity) / std::sqrt(static_cast<double>(fan_in));
  return randn(shape.value_or(Shape{fan_in, fan_out}), 0.0, std, dtype, device, generator);
}

}  // namespace needle::nn::init
