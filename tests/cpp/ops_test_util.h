// Helpers shared by the op tests (test_ops_*.cpp): expected errors, plain host values, and a check of
// second derivatives (double backward) against finite differences of the first gradient.
#pragma once

#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <string>
#include <vector>

#include "gradcheck.h"

namespace needle::testing {

// Expects `fn` to throw ErrorType with a message containing `fragment`.
template <typename ErrorType, typename Fn>
void expect_error(Fn&& fn, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const ErrorType& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// 0, 1, ..., numel(shape) - 1 as a float64 array: every element distinct, so misplaced elements show.
inline NDArray iota(const Shape& shape, Device device) {
  std::vector<double> values(static_cast<std::size_t>(numel(shape)));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i);
  return NDArray::from_vector(values, shape, device);
}

// A tensor's elements as float64, row-major.
inline std::vector<double> values_of(const Tensor& t) { return t.value().astype(DType::Float64).to_vector<double>(); }

// Row-major strides of `shape` for the hand-written loops that compute expectations.
inline std::vector<std::size_t> host_strides(const Shape& shape) {
  std::vector<std::size_t> strides(shape.size(), 1);
  for (std::size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * static_cast<std::size_t>(shape[d]);
  return strides;
}

// Second derivatives: with h(x) = sum(v * d/dx0 sum(w * f(x))) (the first gradient of input 0, built with
// create_graph), compares dh/dx_i from a second backward with central differences of h, for every
// floating input. Passes when ||analytic - numeric|| <= tolerance * max(1, ||numeric||).
inline void expect_second_gradients_match(const TensorFn& f, const std::vector<NDArray>& values,
                                          double tolerance = 1e-6, double eps = 1e-6) {
  auto leaves = [&](const std::vector<NDArray>& arrays) {
    std::vector<Tensor> inputs;
    for (const NDArray& a : arrays) inputs.emplace_back(a.copy(), is_floating(a.dtype()));
    return inputs;
  };
  Shape out_shape;
  {
    NoGradGuard no_grad;
    out_shape = f(leaves(values)).shape();
  }
  const Device device = values[0].device();
  const NDArray w = random_array(out_shape, device, 4321).astype(values[0].dtype());
  const NDArray v = random_array(values[0].shape(), device, 8765);
  // h at `point`, without recording the second-order graph.
  auto h = [&](const std::vector<NDArray>& point) {
    const std::vector<Tensor> inputs = leaves(point);
    f(inputs).backward(Tensor(w));
    return sum(mul(inputs[0].grad().value().astype(DType::Float64), v)).item().to<double>();
  };

  std::vector<Tensor> inputs = leaves(values);
  f(inputs).backward(Tensor(w), /*retain_graph=*/false, /*create_graph=*/true);
  const Tensor first = inputs[0].grad();
  ASSERT_TRUE(first.requires_grad()) << "the first gradient does not depend on any input";
  for (Tensor& t : inputs) t.reset_grad();
  ops::summation(ops::multiply(first, Tensor(v.astype(first.dtype())))).backward();

  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!is_floating(values[i].dtype())) continue;
    SCOPED_TRACE(str("second derivative, input ", i, " of shape ", shape_str(values[i].shape())));
    std::vector<double> analytic(static_cast<std::size_t>(values[i].size()), 0.0);
    if (inputs[i].grad().defined()) analytic = values_of(inputs[i].grad());
    std::vector<double> point = values[i].astype(DType::Float64).to_vector<double>();
    double diff = 0.0;
    double norm = 0.0;
    for (std::size_t j = 0; j < point.size(); ++j) {
      const double original = point[j];
      auto evaluate = [&](double x) {
        point[j] = x;
        std::vector<NDArray> shifted = values;
        shifted[i] = NDArray::from_vector(point, values[i].shape(), device).astype(values[i].dtype());
        return h(shifted);
      };
      const double numeric = (evaluate(original + eps) - evaluate(original - eps)) / (2 * eps);
      point[j] = original;
      diff += (analytic[j] - numeric) * (analytic[j] - numeric);
      norm += numeric * numeric;
    }
    EXPECT_LE(std::sqrt(diff), tolerance * std::max(1.0, std::sqrt(norm)))
        << "second derivative differs from finite differences: |analytic - numeric| = " << std::sqrt(diff)
        << ", |numeric| = " << std::sqrt(norm);
  }
  for (Tensor& t : inputs) t.reset_grad();
}

}  // namespace needle::testing
