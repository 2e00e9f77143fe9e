// Gradient checking for op tests: analytic gradients from backward() against central finite differences
// in float64.
#pragma once

#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

namespace needle::testing {

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Random float64 array with values in [low, high) (a fixed seed per call site keeps tests repeatable).
inline NDArray random_array(const Shape& shape, Device device, std::uint64_t seed, double low = -1.0,
                            double high = 1.0) {
  Generator generator(seed);
  return rand(shape, low, high, DType::Float64, device, &generator);
}

// The scalar the check differentiates: sum(f(inputs) * weights) for fixed random weights, so every
// output element contributes with a different factor.
inline double weighted_output(const TensorFn& f, const std::vector<Tensor>& inputs, const NDArray& weights) {
  NoGradGuard no_grad;
  const Tensor out = f(inputs);
  return sum(mul(out.value().astype(DType::Float64), weights)).item().to<double>();
}

// For every floating-point input, compares the gradient backward() computes with central differences
// (step `eps`). Passes when ||analytic - numeric|| <= tolerance * max(1, ||numeric||).
inline void expect_gradients_match(const TensorFn& f, const std::vector<NDArray>& values, double tolerance = 1e-6,
                                   double eps = 1e-6) {
  std::vector<Tensor> inputs;
  for (const NDArray& v : values) inputs.emplace_back(v.copy(), is_floating(v.dtype()));
  const Tensor out = f(inputs);
  ASSERT_TRUE(out.requires_grad()) << "the output does not depend on any input that requires a gradient";
  const NDArray weights = random_array(out.shape(), out.device(), 1234);
  out.backward(Tensor(weights.astype(out.dtype())));

  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!is_floating(values[i].dtype())) continue;
    SCOPED_TRACE(str("input ", i, " of shape ", shape_str(values[i].shape())));
    ASSERT_TRUE(inputs[i].grad().defined()) << "no gradient reached this input";
    const std::vector<double> analytic = inputs[i].grad().value().astype(DType::Float64).to_vector<double>();
    std::vector<double> point = values[i].astype(DType::Float64).to_vector<double>();
    std::vector<double> numeric(point.size());
    for (std::size_t j = 0; j < point.size(); ++j) {
      const double original = point[j];
      auto evaluate = [&](double x) {
        point[j] = x;
        std::vector<Tensor> shifted = inputs;
        shifted[i] =
            Tensor(NDArray::from_vector(point, values[i].shape(), values[i].device()).astype(values[i].dtype()));
        return weighted_output(f, shifted, weights);
      };
      numeric[j] = (evaluate(original + eps) - evaluate(original - eps)) / (2 * eps);
      point[j] = original;
    }
    double diff = 0.0;
    double norm = 0.0;
    for (std::size_t j = 0; j < point.size(); ++j) {
      diff += (analytic[j] - numeric[j]) * (analytic[j] - numeric[j]);
      norm += numeric[j] * numeric[j];
    }
    EXPECT_LE(std::sqrt(diff), tolerance * std::max(1.0, std::sqrt(norm)))
        << "gradient differs from finite differences: |analytic - numeric| = " << std::sqrt(diff)
        << ", |numeric| = " << std::sqrt(norm);
  }
}

// Devices every op test runs on.
inline std::vector<Device> test_devices() { return {ref_device(), cpu_device()}; }

}  // namespace needle::testing
