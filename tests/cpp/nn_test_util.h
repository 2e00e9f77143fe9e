// Helpers shared by the layer tests (test_nn_*.cpp): gradients of a module's parameters against central
// finite differences, plain host matrices for the reference computations, and element-wise comparisons.
#pragma once

#include <gtest/gtest.h>
#include <needle/needle.h>
#include <needle/nn/layers.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "gradcheck.h"

namespace needle::testing {

// The values of an array or tensor as float64, row-major.
inline std::vector<double> host(const NDArray& a) { return a.astype(DType::Float64).to_vector<double>(); }
inline std::vector<double> host(const Tensor& t) { return host(t.value()); }

inline void expect_all_near(const std::vector<double>& actual, const std::vector<double>& expected,
                            double tolerance = 1e-9) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tolerance * std::max(1.0, std::abs(expected[i]))) << "at element " << i;
  }
}

// A float64 tensor of the given values (no gradient).
inline Tensor tensor64(const std::vector<double>& values, const Shape& shape, Device device = cpu_device()) {
  return Tensor(NDArray::from_vector(values, shape, device));
}

// Row-major (rows x cols) matrix product of host vectors: the reference for every projection.
inline std::vector<double> host_matmul(const std::vector<double>& a, const std::vector<double>& b, std::size_t rows,
                                       std::size_t inner, std::size_t cols) {
  std::vector<double> out(rows * cols, 0.0);
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t k = 0; k < inner; ++k) {
      for (std::size_t j = 0; j < cols; ++j) out[i * cols + j] += a[i * inner + k] * b[k * cols + j];
    }
  }
  return out;
}

// For every parameter of `module`, compares the gradient backward() accumulates for
// sum(f(inputs) * weights) (fixed random weights) with central differences obtained by perturbing the
// parameter's value in place. The module must be deterministic (eval mode or no dropout) and float64.
inline void expect_parameter_gradients_match(nn::Module& module, const std::function<Tensor()>& f,
                                             double tolerance = 1e-6, double eps = 1e-6) {
  module.zero_grad();
  const Tensor out = f();
  const NDArray weights = random_array(out.shape(), out.device(), 4242);
  out.backward(Tensor(weights.astype(out.dtype())));
  const auto objective = [&] {
    NoGradGuard no_grad;
    return sum(mul(f().value().astype(DType::Float64), weights)).item().to<double>();
  };
  for (const auto& entry : module.named_parameters()) {
    const std::string& name = entry.first;
    Tensor param = entry.second;  // a handle: set_value below changes the module's parameter
    SCOPED_TRACE("parameter " + name);
    ASSERT_TRUE(param.grad().defined()) << "no gradient reached " << name;
    const std::vector<double> analytic = host(param.grad());
    const NDArray original = param.value();
    std::vector<double> point = host(original);
    double diff = 0.0;
    double norm = 0.0;
    for (std::size_t j = 0; j < point.size(); ++j) {
      const double x = point[j];
      const auto at = [&](double v) {
        point[j] = v;
        param.set_value(NDArray::from_vector(point, original.shape(), original.device()).astype(original.dtype()));
        return objective();
      };
      const double numeric = (at(x + eps) - at(x - eps)) / (2 * eps);
      point[j] = x;
      diff += (analytic[j] - numeric) * (analytic[j] - numeric);
      norm += numeric * numeric;
    }
    param.set_value(original);
    EXPECT_LE(std::sqrt(diff), tolerance * std::max(1.0, std::sqrt(norm)))
        << "gradient of " << name << " differs from finite differences: |analytic - numeric| = " << std::sqrt(diff)
        << ", |numeric| = " << std::sqrt(norm);
  }
  module.zero_grad();
}

}  // namespace needle::testing
