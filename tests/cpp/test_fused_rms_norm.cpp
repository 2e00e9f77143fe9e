// RMS normalization: the optional rms_norm kernel of the cpu backend (both instruction-set builds, 1 and 2
// threads) against its reference, the composition of array functions that the ref device runs, and both
// against the formula in double precision; which devices implement the kernel; the checks; and
// ops::rms_norm (with and without weight) against finite differences (its second derivatives are checked
// in tests/python/test_ops_grad.py).
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "gradcheck.h"
#include "needle/backend/backend.h"
#include "needle/core/threads.h"

namespace needle {
namespace {

using testing::expect_gradients_match;
using testing::random_array;

// x / sqrt(mean(x^2) + eps) over the last axis of a contiguous float64 copy of x.
std::vector<double> rms_norm_formula(const NDArray& x, double eps) {
  const std::vector<double> values = x.astype(DType::Float64).compact().to_vector<double>();
  const std::int64_t cols = x.shape().back();
  std::vector<double> out(values.size());
  for (std::size_t start = 0; start < values.size(); start += static_cast<std::size_t>(cols)) {
    double squares = 0.0;
    for (std::int64_t j = 0; j < cols; ++j) squares += values[start + j] * values[start + j];
    const double rrms = 1.0 / std::sqrt(squares / static_cast<double>(cols) + eps);
    for (std::int64_t j = 0; j < cols; ++j) out[start + j] = values[start + j] * rrms;
  }
  return out;
}

void expect_close(const NDArray& got, const std::vector<double>& want, double rtol) {
  const std::vector<double> values = got.astype(DType::Float64).to_vector<double>();
  ASSERT_EQ(values.size(), want.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_NEAR(values[i], want[i], rtol * (1.0 + std::abs(want[i]))) << "element " << i;
  }
}

TEST(FusedRmsNorm, OnlyTheCpuBackendImplementsTheKernel) {
  EXPECT_TRUE(backend_for(cpu_device()).implements(OptionalKernel::rms_norm));
  EXPECT_FALSE(backend_for(ref_device()).implements(OptionalKernel::rms_norm));
  // Calling it where it is not implemented is a bug of the caller, reported as such.
  NDArray x = NDArray::ones({2, 3}, DType::Float32, ref_device());
  NDArray out = NDArray::empty({2, 3}, DType::Float32, ref_device());
  try {
    backend_for(ref_device()).rms_norm(out.view(), x.view(), 1e-6);
    FAIL() << "expected RuntimeError";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("rms_norm: the ref backend has no such kernel"), std::string::npos)
        << e.what();
  }
}

TEST(FusedRmsNorm, CpuKernelMatchesTheReferenceOnEveryShapeLayoutAndBuild) {
  const std::vector<Shape> shapes = {{1}, {1, 1}, {3, 7}, {2, 3, 17}, {5, 1}, {4, 0}, {0, 5}, {33, 129}};
  const double eps = 1e-5;
  std::uint64_t seed = 1;
  const int saved_threads = get_num_threads();
  for (const bool portable : {false, true}) {
    cpu::set_fused_nn_portable(portable);
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      for (const Shape& shape : shapes) {
        for (const DType dtype : {DType::Float32, DType::Float64}) {
          for (const bool transposed : {false, true}) {
            SCOPED_TRACE(str(shape_str(shape), " ", dtype_name(dtype), transposed ? " transposed" : "",
                             portable ? " portable" : "", " threads ", threads));
            // A transposed input is a non-contiguous view: the array layer compacts it for the kernel.
            Shape stored = shape;
            if (transposed && shape.size() >= 2) std::swap(stored[0], stored[1]);
            NDArray base = random_array(stored, cpu_device(), seed++, -3.0, 3.0).astype(dtype);
            NDArray x =
                transposed && shape.size() >= 2 ? base.permute(shape.size() == 2 ? Axes{1, 0} : Axes{1, 0, 2}) : base;
            const NDArray fused = rms_norm(x, eps);
            const NDArray reference = rms_norm(x.to(ref_device()), eps);
            ASSERT_EQ(fused.shape(), shape);
            ASSERT_EQ(fused.dtype(), dtype);
            const double rtol = dtype == DType::Float32 ? 2e-6 : 1e-13;
            expect_close(fused, reference.to(cpu_device()).astype(DType::Float64).to_vector<double>(), rtol);
            expect_close(fused, rms_norm_formula(x, eps), rtol);
          }
        }
      }
    }
  }
  cpu::set_fused_nn_portable(false);
  set_num_threads(saved_threads);
}

TEST(FusedRmsNorm, ChecksItsOperands) {
  EXPECT_THROW((void)rms_norm(NDArray::ones({2, 3}, DType::Int32, cpu_device()), 1e-6), TypeError);
  EXPECT_THROW((void)rms_norm(NDArray::ones({}, DType::Float32, cpu_device()), 1e-6), ValueError);
  const Tensor x(NDArray::ones({2, 3}, DType::Float32, cpu_device()));
  EXPECT_THROW((void)ops::rms_norm(x, Tensor(NDArray::ones({4}, DType::Float32, cpu_device()))), ValueError);
  EXPECT_THROW((void)ops::rms_norm(x, Tensor(), -1.0), ValueError);
  EXPECT_THROW((void)ops::rms_norm(Tensor(NDArray::ones({2, 3}, DType::Int64, cpu_device()))), TypeError);
}

TEST(FusedRmsNorm, DefaultEpsIsTheMachineEpsilonOfTheDtype) {
  // A row of zeros normalizes to 0 / sqrt(eps): the output is zero whatever eps is, so look at a tiny row,
  // where eps dominates mean(x^2): x / sqrt(x^2 + eps) ~ x / sqrt(eps).
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const double eps = dtype == DType::Float32 ? 0x1.0p-23 : 0x1.0p-52;
    const double tiny = std::sqrt(eps) * 1e-3;
    const Tensor x(NDArray::full({1, 2}, Scalar(tiny), dtype, cpu_device()));
    const double got = ops::rms_norm(x).value().astype(DType::Float64).to_vector<double>()[0];
    EXPECT_NEAR(got, tiny / std::sqrt(tiny * tiny + eps), 1e-6) << dtype_name(dtype);
  }
}

class RmsNormGradient : public ::testing::TestWithParam<Device> {};

TEST_P(RmsNormGradient, MatchesFiniteDifferences) {
  using V = std::vector<Tensor>;
  const Device device = GetParam();
  const NDArray x = random_array({3, 5}, device, 7, -2.0, 2.0);
  const NDArray w = random_array({5}, device, 8, 0.5, 1.5);
  expect_gradients_match([](const V& t) { return ops::rms_norm(t[0], Tensor(), 1e-3); }, {x});
  expect_gradients_match([](const V& t) { return ops::rms_norm(t[0], t[1], 1e-3); }, {x, w});
}

INSTANTIATE_TEST_SUITE_P(Devices, RmsNormGradient, ::testing::ValuesIn(testing::test_devices()));

}  // namespace
}  // namespace needle
