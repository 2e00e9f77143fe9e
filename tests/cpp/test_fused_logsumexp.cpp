// The fused logsumexp row kernel (Backend::logsumexp): ref against the formula written out in double
// precision, the cpu kernel (both instruction-set builds, 1 and 2 threads) and the Backend base-class
// default against ref on many shapes and on extreme rows, the operand checks, and ops::logsumexp on each
// axis against a naive loop (through the fused kernel for one axis, the composed path for several), with
// its gradient against finite differences.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "forwarding_backend.h"
#include "fused_test_util.h"
#include "gradcheck.h"
#include "needle/backend/backend.h"
#include "needle/core/threads.h"

namespace needle {
namespace {

using testing::cpu_backend;
using testing::host;
using testing::ref_backend;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// The formula of kernels.def in double precision, one row of `values`.
double lse_formula(const std::vector<double>& row) {
  double largest = -kInf;
  bool nan = false;
  for (const double x : row) {
    nan = nan || std::isnan(x);
    largest = std::fmax(largest, x);
  }
  if (nan) return kNan;
  const double shift = std::isfinite(largest) ? largest : 0.0;
  double sum = 0.0;
  for (const double x : row) sum += std::exp(x - shift);
  return std::log(sum) + shift;
}

// rows x cols of `in` through `backend`, into a fresh (rows,) array.
NDArray run_lse(Backend& backend, const NDArray& in) {
  const Shape& shape = in.shape();
  NDArray out = NDArray::empty(Shape(shape.begin(), shape.end() - 1), in.dtype(), cpu_device());
  backend.logsumexp(out.view(), in.view());
  return out;
}

NDArray random_rows(std::int64_t rows, std::int64_t cols, DType dtype, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::vector<double> values(static_cast<std::size_t>(rows * cols));
  for (double& v : values) v = normal(rng);
  return NDArray::from_vector(values, {rows, cols}, cpu_device()).astype(dtype);
}

// NaN equal to NaN, infinities exact, finite values within tolerance * (1 + |expected|).
void expect_same_or_close(const std::vector<double>& actual, const std::vector<double>& expected, double tolerance,
                          const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(actual[i])) << what << " row " << i << ": " << actual[i];
    } else if (std::isinf(expected[i])) {
      EXPECT_EQ(actual[i], expected[i]) << what << " row " << i;
    } else {
      EXPECT_NEAR(actual[i], expected[i], tolerance * (1.0 + std::abs(expected[i]))) << what << " row " << i;
    }
  }
}

double tolerance_for(DType dtype) { return dtype == DType::Float32 ? 2e-6 : 1e-13; }

// Restores the thread count and the run-time choice of the cpu kernels' build at the end of a test.
class KernelSettings {
 public:
  KernelSettings() : threads_(get_num_threads()) {}
  ~KernelSettings() {
    set_num_threads(threads_);
    cpu::set_fused_nn_portable(false);
  }
  KernelSettings(const KernelSettings&) = delete;
  KernelSettings& operator=(const KernelSettings&) = delete;

 private:
  int threads_;
};

// Rows with every kind of extreme entry; the last column pads them to one width.
NDArray extreme_rows() {
  const std::vector<std::vector<double>> rows = {
      {-kInf, -kInf, -kInf, -kInf}, {kInf, 1.0, -kInf, 0.0},   {kNan, 1.0, 2.0, 3.0},    {1.0, -kNan, 2.0, 3.0},
      {kInf, kNan, 0.0, 0.0},       {1e30, 0.0, -1e30, 5.0},   {-1e30, -1e30, -1e30, 0}, {-200.0, 0.0, -1000.0, 1.0},
      {88.0, 89.0, 700.0, -700.0},  {-kInf, 3.0, -kInf, -kInf}};
  std::vector<double> flat;
  for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  return NDArray::from_vector(flat, {static_cast<std::int64_t>(rows.size()), 4}, cpu_device());
}

TEST(FusedLogSumExp, RefFollowsTheFormula) {
  for (const NDArray& in : {random_rows(5, 9, DType::Float64, 1), extreme_rows()}) {
    const std::vector<double> values = host(in);
    const std::int64_t cols = in.shape()[1];
    std::vector<double> expected;
    for (std::int64_t r = 0; r < in.shape()[0]; ++r) {
      expected.push_back(lse_formula(std::vector<double>(values.begin() + r * cols, values.begin() + (r + 1) * cols)));
    }
    expect_same_or_close(host(run_lse(ref_backend(), in)), expected, 1e-15, "ref");
  }
  // Rows of no columns sum nothing: log(0) = -inf.
  EXPECT_EQ(host(run_lse(ref_backend(), NDArray::zeros({3, 0}, DType::Float32, cpu_device()))),
            (std::vector<double>{-kInf, -kInf, -kInf}));
}

TEST(FusedLogSumExp, CpuAndDefaultMatchRef) {
  const KernelSettings restore;
  std::uint64_t seed = 10;
  for (const std::int64_t cols : {0, 1, 7, 8, 9, 17, 33, 65, 1000}) {
    for (const std::int64_t rows : {0, 1, 3, 70}) {
      for (const DType dtype : {DType::Float32, DType::Float64}) {
        const NDArray in = random_rows(rows, cols, dtype, seed++);
        const std::string what = str(dtype_name(dtype), " (", rows, ", ", cols, ")");
        const std::vector<double> expected = host(run_lse(ref_backend(), in));
        expect_same_or_close(host(run_lse(cpu_backend(), in)), expected, tolerance_for(dtype), what + " default build");
        NDArray composed = NDArray::empty({rows}, dtype, cpu_device());
        cpu_backend().composed_logsumexp(composed.view(), in.view());
        expect_same_or_close(host(composed), expected, tolerance_for(dtype), what + " composed");
        for (const bool portable : {false, true}) {
          cpu::set_fused_nn_portable(portable);
          std::vector<double> one_thread;
          for (const int threads : {1, 2}) {
            set_num_threads(threads);
            const std::vector<double> actual = host(run_lse(cpu_backend(), in));
            expect_same_or_close(actual, expected, tolerance_for(dtype),
                                 str(what, " threads ", threads, " portable ", portable));
            if (threads == 1) one_thread = actual;
          }
          // Rows never depend on how they are split over threads (compared as bits: NaN never appears here).
          EXPECT_EQ(host(run_lse(cpu_backend(), in)), one_thread) << what;
        }
      }
    }
  }
}

TEST(FusedLogSumExp, ExtremeRows) {
  const KernelSettings restore;
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const NDArray in = extreme_rows().astype(dtype);
    const std::vector<double> expected = host(run_lse(ref_backend(), in));
    EXPECT_EQ(expected[0], -kInf);
    EXPECT_EQ(expected[1], kInf);
    EXPECT_TRUE(std::isnan(expected[2]) && std::isnan(expected[3]) && std::isnan(expected[4]));
    for (const bool portable : {false, true}) {
      cpu::set_fused_nn_portable(portable);
      expect_same_or_close(host(run_lse(cpu_backend(), in)), expected, tolerance_for(dtype),
                           str("cpu ", dtype_name(dtype), " portable ", portable));
    }
    NDArray composed = NDArray::empty({in.shape()[0]}, dtype, cpu_device());
    cpu_backend().composed_logsumexp(composed.view(), in.view());
    expect_same_or_close(host(composed), expected, tolerance_for(dtype), str("composed ", dtype_name(dtype)));
  }
  NDArray empty_rows = NDArray::empty({2}, DType::Float64, cpu_device());
  cpu_backend().composed_logsumexp(empty_rows.view(), NDArray::zeros({2, 0}, DType::Float64, cpu_device()).view());
  EXPECT_EQ(host(empty_rows), (std::vector<double>{-kInf, -kInf}));
  EXPECT_EQ(host(run_lse(cpu_backend(), NDArray::zeros({2, 0}, DType::Float64, cpu_device()))),
            (std::vector<double>{-kInf, -kInf}));
}

TEST(FusedLogSumExp, BackendsRejectBadOperands) {
  const NDArray in = NDArray::zeros({3, 4}, DType::Float32, cpu_device());
  const NDArray wrong_shape = NDArray::zeros({4}, DType::Float32, cpu_device());
  const NDArray wrong_dtype = NDArray::zeros({3}, DType::Float64, cpu_device());
  const NDArray integers = NDArray::zeros({3, 4}, DType::Int32, cpu_device());
  const NDArray int_out = NDArray::zeros({3}, DType::Int32, cpu_device());
  const NDArray strided = NDArray::zeros({4, 3}, DType::Float32, cpu_device()).swapaxes(0, 1);
  const NDArray out = NDArray::zeros({3}, DType::Float32, cpu_device());
  for (Backend* backend : {&ref_backend(), &cpu_backend()}) {
    EXPECT_THROW(backend->logsumexp(wrong_shape.view(), in.view()), RuntimeError);
    EXPECT_THROW(backend->logsumexp(wrong_dtype.view(), in.view()), RuntimeError);
    EXPECT_THROW(backend->logsumexp(int_out.view(), integers.view()), RuntimeError);
    EXPECT_THROW(backend->logsumexp(out.view(), strided.view()), RuntimeError);
  }
  EXPECT_THROW(cpu_backend().composed_logsumexp(wrong_shape.view(), in.view()), RuntimeError);
}

// ops::logsumexp on every axis of a 3-d array, plain and transposed, both dtypes and devices, against a
// naive loop; keepdims gives the same values in the kept shape.
TEST(FusedLogSumExp, OpOnEachAxisMatchesNaiveLoop) {
  for (const Device device : {cpu_device(), ref_device()}) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const NDArray base = random_rows(6, 20, dtype, 77).reshape({3, 4, 10}).to(device);
      for (const bool transposed : {false, true}) {
        const NDArray a = transposed ? base.swapaxes(0, 2) : base;
        const Shape& shape = a.shape();
        const std::vector<double> values = host(a);
        for (std::int64_t axis = -3; axis < 3; ++axis) {
          const std::int64_t ax = axis < 0 ? axis + 3 : axis;
          Shape kept = shape;
          kept[static_cast<std::size_t>(ax)] = 1;
          std::vector<double> expected;
          for (std::int64_t i = 0; i < kept[0]; ++i) {
            for (std::int64_t j = 0; j < kept[1]; ++j) {
              for (std::int64_t k = 0; k < kept[2]; ++k) {
                std::vector<double> row;
                for (std::int64_t t = 0; t < shape[static_cast<std::size_t>(ax)]; ++t) {
                  std::int64_t idx[3] = {i, j, k};
                  idx[ax] = t;
                  row.push_back(values[static_cast<std::size_t>((idx[0] * shape[1] + idx[1]) * shape[2] + idx[2])]);
                }
                expected.push_back(lse_formula(row));
              }
            }
          }
          const std::string what = str(device.name(), " ", dtype_name(dtype), " axis ", axis, transposed ? " T" : "");
          const Tensor t(a);
          const Tensor reduced = ops::logsumexp(t, {axis});
          Shape squeezed;
          for (std::size_t d = 0; d < 3; ++d) {
            if (static_cast<std::int64_t>(d) != ax) squeezed.push_back(shape[d]);
          }
          EXPECT_EQ(reduced.shape(), squeezed) << what;
          EXPECT_EQ(reduced.dtype(), dtype) << what;
          expect_same_or_close(host(reduced.value()), expected, tolerance_for(dtype) * 10, what);
          const Tensor kept_result = ops::logsumexp(t, {axis}, /*keepdims=*/true);
          EXPECT_EQ(kept_result.shape(), kept) << what;
          expect_same_or_close(host(kept_result.value()), expected, tolerance_for(dtype) * 10, what + " keepdims");
        }
      }
    }
  }
  // A 1-d array reduced over all axes is one row; integers are promoted to float as before.
  const Tensor v(NDArray::from_vector(std::vector<double>{1.0, 2.0, 3.0}, {3}, cpu_device()));
  EXPECT_NEAR(ops::logsumexp(v).value().item().to<double>(), lse_formula({1.0, 2.0, 3.0}), 1e-15);
  const Tensor ints(
      NDArray::from_vector(std::vector<double>{1.0, 2.0, 3.0, 4.0}, {2, 2}, cpu_device()).astype(DType::Int32));
  const Tensor lse_ints = ops::logsumexp(ints, {1});
  EXPECT_TRUE(is_floating(lse_ints.dtype()));
  expect_same_or_close(host(lse_ints.value()), {lse_formula({1.0, 2.0}), lse_formula({3.0, 4.0})}, 1e-6, "int32");
}

// The cpu backend with its logsumexp calls counted, to see which path ops::logsumexp takes.
class CountingCpu final : public testing::ForwardingBackend {
 public:
  CountingCpu() : ForwardingBackend(builtin_backend_for(cpu_device())) {}
  [[nodiscard]] std::string_view name() const override { return "cpu-counting-logsumexp"; }

  int calls = 0;

 protected:
  void logsumexp_kernel(const kernels::RowLayout& /*layout*/, const StridedView& out, const StridedView& in) override {
    ++calls;
    real().logsumexp(out, in);
  }
};

TEST(FusedLogSumExp, OneAxisRunsTheFusedKernelSeveralAxesDoNot) {
  CountingCpu counting;
  Backend* const previous = set_backend_override(DeviceType::Cpu, &counting);
  const Tensor a(random_rows(6, 4, DType::Float32, 9).reshape({2, 3, 4}));
  const std::vector<double> one_axis = host(ops::logsumexp(a, {1}).value());
  const int after_one_axis = counting.calls;
  const std::vector<double> two_axes = host(ops::logsumexp(a, {0, 2}).value());
  const int after_two_axes = counting.calls;
  set_backend_override(DeviceType::Cpu, previous);
  EXPECT_EQ(after_one_axis, 1);
  EXPECT_EQ(after_two_axes, 1);  // several axes keep the composed path
  EXPECT_EQ(one_axis.size(), 8U);
  EXPECT_EQ(two_axes.size(), 3U);
}

TEST(FusedLogSumExp, GradientMatchesFiniteDifferences) {
  for (const Device device : {cpu_device(), ref_device()}) {
    for (const std::int64_t axis : {0, 1, 2}) {
      testing::expect_gradients_match([axis](const std::vector<Tensor>& t) { return ops::logsumexp(t[0], {axis}); },
                                      {random_rows(4, 6, DType::Float64, 5).reshape({2, 3, 4}).to(device)});
    }
  }
}

}  // namespace
}  // namespace needle
