// The fused batch-norm kernels (Backend::batch_norm and batch_norm_backward): the ref kernels against
// hand-worked values and against the formulas composed from array functions, the cpu kernels (both
// instruction-set builds, 1 and 2 threads) and the Backend base-class defaults against the ref kernels,
// bad operands, and the op built on them (2-d and 4-d inputs, with and without weight and bias, gradients
// and second gradients) against the composed formula and finite differences.
#include <gtest/gtest.h>
#include <needle/debug/debug.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "fused_test_util.h"
#include "gradcheck.h"
#include "needle/backend/backend.h"
#include "needle/core/threads.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::cpu_backend;
using testing::expect_close;
using testing::host;
using testing::ref_backend;

using testing::expect_gradients_match;
using testing::expect_second_gradients_match;
using testing::random_array;
using V = std::vector<Tensor>;

constexpr double kEps = 1e-5;

double tolerance_for(DType dtype) { return dtype == DType::Float32 ? 2e-5 : 1e-11; }

// The operands of one forward and one backward call: x and g of shape (N, C, S), weight and bias (C,).
struct Inputs {
  NDArray x;
  NDArray g;
  NDArray weight;
  NDArray bias;
};

Inputs make_inputs(std::int64_t n, std::int64_t c, std::int64_t s, DType dtype, std::uint64_t seed) {
  Inputs in;
  // A per-channel offset of 10 to 40 checks that the statistics do not lose precision to a large mean.
  const NDArray offsets = random_array({1, c, 1}, cpu_device(), seed + 3, 10.0, 40.0);
  in.x = (random_array({n, c, s}, cpu_device(), seed, -4.0, 4.0) + offsets).astype(dtype);
  in.g = random_array({n, c, s}, cpu_device(), seed + 1, -1.0, 1.0).astype(dtype);
  in.weight = random_array({c}, cpu_device(), seed + 2, 0.5, 2.0).astype(dtype);
  in.bias = random_array({c}, cpu_device(), seed + 4, -1.0, 1.0).astype(dtype);
  return in;
}

struct Forward {
  NDArray y;
  NDArray mean;
  NDArray var;
};

struct Backward {
  NDArray dx;
  NDArray dweight;
  NDArray dbias;
};

// The kernels by `backend` into fresh arrays; `base_default` calls the Backend base class's composed
// version instead of the backend's override.
Forward run_forward(Backend& backend, const Inputs& in, bool base_default = false) {
  const DType dtype = in.x.dtype();
  const std::int64_t c = in.x.shape()[1];
  Forward out{NDArray::full(in.x.shape(), Scalar(-7.0), dtype, cpu_device()),
              NDArray::full({c}, Scalar(-7.0), dtype, cpu_device()),
              NDArray::full({c}, Scalar(-7.0), dtype, cpu_device())};
  if (base_default) {
    backend.composed_batch_norm(out.y.view(), out.mean.view(), out.var.view(), in.x.view(), in.weight.view(),
                                in.bias.view(), kEps);
  } else {
    backend.batch_norm(out.y.view(), out.mean.view(), out.var.view(), in.x.view(), in.weight.view(), in.bias.view(),
                       kEps);
  }
  return out;
}

Backward run_backward(Backend& backend, const Inputs& in, const Forward& stats, bool base_default = false) {
  const DType dtype = in.x.dtype();
  const std::int64_t c = in.x.shape()[1];
  Backward out{NDArray::full(in.x.shape(), Scalar(-7.0), dtype, cpu_device()),
               NDArray::full({c}, Scalar(-7.0), dtype, cpu_device()),
               NDArray::full({c}, Scalar(-7.0), dtype, cpu_device())};
  if (base_default) {
    backend.composed_batch_norm_backward(out.dx.view(), out.dweight.view(), out.dbias.view(), in.g.view(), in.x.view(),
                                         stats.mean.view(), stats.var.view(), in.weight.view(), kEps);
  } else {
    backend.batch_norm_backward(out.dx.view(), out.dweight.view(), out.dbias.view(), in.g.view(), in.x.view(),
                                stats.mean.view(), stats.var.view(), in.weight.view(), kEps);
  }
  return out;
}

// Every output of both kernels against `expected`'s.
void expect_same_outputs(const Forward& f, const Backward& b, const Forward& expected_f, const Backward& expected_b,
                         double tolerance, const std::string& what) {
  expect_close(host(f.y), host(expected_f.y), tolerance, what + " y");
  expect_close(host(f.mean), host(expected_f.mean), tolerance, what + " mean");
  expect_close(host(f.var), host(expected_f.var), tolerance, what + " var");
  expect_close(host(b.dx), host(expected_b.dx), tolerance, what + " dx");
  expect_close(host(b.dweight), host(expected_b.dweight), tolerance, what + " dweight");
  expect_close(host(b.dbias), host(expected_b.dbias), tolerance, what + " dbias");
}

// Restores the thread count and the run-time choice of the cpu kernels' build at the end of a test.
class BatchNormKernelSettings {
 public:
  BatchNormKernelSettings() : threads_(get_num_threads()) {}
  ~BatchNormKernelSettings() {
    set_num_threads(threads_);
    cpu::set_batch_norm_portable(false);
  }
  BatchNormKernelSettings(const BatchNormKernelSettings&) = delete;
  BatchNormKernelSettings& operator=(const BatchNormKernelSettings&) = delete;

 private:
  int threads_;
};

// ---- ref kernels against hand-worked values and composed formulas --------------------------------

TEST(FusedBatchNormRefKernels, MatchHandWorkedValues) {
  // One channel holding 1, 2 (sample 0) and 3, 4 (sample 1): mean 2.5, biased variance 1.25.
  Inputs in;
  in.x = NDArray::from_vector(std::vector<double>{1.0, 2.0, 3.0, 4.0}, {2, 1, 2}, cpu_device());
  in.weight = NDArray::from_vector(std::vector<double>{2.0}, {1}, cpu_device());
  in.bias = NDArray::from_vector(std::vector<double>{0.5}, {1}, cpu_device());
  const double s = std::sqrt(1.25);
  Inputs exact = in;
  NDArray y = NDArray::empty({2, 1, 2}, DType::Float64, cpu_device());
  NDArray mean = NDArray::empty({1}, DType::Float64, cpu_device());
  NDArray var = NDArray::empty({1}, DType::Float64, cpu_device());
  ref_backend().batch_norm(y.view(), mean.view(), var.view(), in.x.view(), in.weight.view(), in.bias.view(), 0.0);
  expect_close(host(mean), {2.5}, 1e-15, "mean");
  expect_close(host(var), {1.25}, 1e-15, "var");
  expect_close(host(y), {-3.0 / s + 0.5, -1.0 / s + 0.5, 1.0 / s + 0.5, 3.0 / s + 0.5}, 1e-15, "y");
  // A constant output gradient moves no input (the mean absorbs it): dx = 0, dbias = 4, dweight = 0.
  NDArray dx = NDArray::empty({2, 1, 2}, DType::Float64, cpu_device());
  NDArray dweight = NDArray::empty({1}, DType::Float64, cpu_device());
  NDArray dbias = NDArray::empty({1}, DType::Float64, cpu_device());
  const NDArray ones = NDArray::ones({2, 1, 2}, DType::Float64, cpu_device());
  ref_backend().batch_norm_backward(dx.view(), dweight.view(), dbias.view(), ones.view(), in.x.view(), mean.view(),
                                    var.view(), in.weight.view(), 0.0);
  expect_close(host(dx), {0, 0, 0, 0}, 1e-15, "dx of ones");
  expect_close(host(dbias), {4.0}, 1e-15, "dbias of ones");
  expect_close(host(dweight), {0.0}, 1e-15, "dweight of ones");
  // Nor does a gradient along xhat (scaling the output, eps = 0): dx = 0, dweight = sum(xhat^2) = 4.
  const NDArray xhat =
      NDArray::from_vector(std::vector<double>{-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s}, {2, 1, 2}, cpu_device());
  ref_backend().batch_norm_backward(dx.view(), dweight.view(), dbias.view(), xhat.view(), in.x.view(), mean.view(),
                                    var.view(), in.weight.view(), 0.0);
  expect_close(host(dx), {0, 0, 0, 0}, 1e-15, "dx along xhat");
  expect_close(host(dweight), {4.0}, 1e-15, "dweight along xhat");
}

TEST(FusedBatchNormRefKernels, MatchTheFormulasComposedFromArrayFunctions) {
  const Inputs in = make_inputs(5, 3, 7, DType::Float64, 11);
  const Axes axes{0, 2};
  const NDArray mean = needle::mean(in.x, axes, true);
  const NDArray centered = in.x - mean;
  const NDArray var = needle::mean(centered * centered, axes, true);
  const NDArray invstd =
      NDArray::full({}, Scalar(1.0), DType::Float64, cpu_device()) / needle::sqrt(var + Scalar(kEps));
  const NDArray xhat = centered * invstd;
  const NDArray w = in.weight.reshape({1, 3, 1});
  const NDArray b = in.bias.reshape({1, 3, 1});
  const double m = 5.0 * 7.0;
  const NDArray dbias = sum(in.g, axes, true);
  const NDArray dweight = sum(in.g * xhat, axes, true);
  const NDArray dx = w * invstd * (in.g - dbias * Scalar(1.0 / m) - xhat * (dweight * Scalar(1.0 / m)));

  const Forward f = run_forward(ref_backend(), in);
  const Backward g = run_backward(ref_backend(), in, f);
  expect_close(host(f.y), host(xhat * w + b), 1e-13, "y");
  expect_close(host(f.mean), host(mean), 1e-13, "mean");
  expect_close(host(f.var), host(var), 1e-13, "var");
  expect_close(host(g.dx), host(dx), 1e-13, "dx");
  expect_close(host(g.dweight), host(dweight), 1e-13, "dweight");
  expect_close(host(g.dbias), host(dbias), 1e-13, "dbias");
}

// ---- cpu kernels and base-class defaults against ref ---------------------------------------------

struct Case {
  std::int64_t n;
  std::int64_t c;
  std::int64_t s;
};

std::vector<Case> kernel_cases() {
  std::vector<Case> cases;
  for (std::int64_t s : {1, 2, 4, 7, 8, 9, 16, 17, 33, 64, 65}) {
    for (std::int64_t n : {1, 2, 7, 32}) {
      for (std::int64_t c : {1, 3, 16}) {
        if (n * s > 1) cases.push_back({n, c, s});
      }
    }
  }
  cases.push_back({5, 0, 4});       // no channels: nothing to compute
  cases.push_back({32, 128, 64});   // several chunks of channels per thread
  cases.push_back({64, 100, 1});    // BatchNorm1d-like, channels split over threads
  cases.push_back({9, 130, 1});     // more channels than one tile of the column kernels
  cases.push_back({2048, 128, 1});  // a channels-last (32, 128, 8, 8) input, split over threads
  cases.push_back({1100, 3, 1});    // rows in blocks of 512 summed apart, the last one partial
  cases.push_back({4097, 16, 1});   // a channels-last (N, 16, H, W) input: eight full blocks and one row
  return cases;
}

TEST(FusedBatchNormCpuKernels, MatchRefOnEveryShapeDtypeThreadCountAndBuild) {
  const BatchNormKernelSettings restore;
  std::uint64_t seed = 100;
  for (const Case& c : kernel_cases()) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const Inputs in = make_inputs(c.n, c.c, c.s, dtype, seed++);
      const Forward expected_f = run_forward(ref_backend(), in);
      const Backward expected_b = run_backward(ref_backend(), in, expected_f);
      std::vector<double> first_dx;
      std::vector<double> first_y;
      for (const bool portable : {false, true}) {
        cpu::set_batch_norm_portable(portable);
        for (const int threads : {1, 2}) {
          set_num_threads(threads);
          const std::string what = str(dtype_name(dtype), " (", c.n, ", ", c.c, ", ", c.s, ") threads ", threads,
                                       portable ? " portable" : " dispatched");
          const Forward f = run_forward(cpu_backend(), in);
          // The backward reads the ref statistics, so its check does not depend on the forward's.
          const Backward b = run_backward(cpu_backend(), in, expected_f);
          expect_same_outputs(f, b, expected_f, expected_b, tolerance_for(dtype), what);
          // Channels never depend on how they are split over threads.
          if (threads == 1) {
            first_y = host(f.y);
            first_dx = host(b.dx);
          } else {
            EXPECT_EQ(host(f.y), first_y) << what << ": y differs from the 1-thread result";
            EXPECT_EQ(host(b.dx), first_dx) << what << ": dx differs from the 1-thread result";
          }
        }
      }
    }
  }
}

TEST(FusedBatchNormCpuKernels, KeepFloat32StatisticsAccurateUnderALargeMean) {
  // Values 1000 + [-0.5, 0.5): a float32 sum of squares would lose the variance (about 1/12) entirely.
  const NDArray x = (random_array({32, 4, 64}, cpu_device(), 7, -0.5, 0.5) + Scalar(1000.0));
  Inputs in = make_inputs(32, 4, 64, DType::Float32, 8);
  in.x = x.astype(DType::Float32);
  const Forward expected = run_forward(ref_backend(), in);
  const Forward f = run_forward(cpu_backend(), in);
  expect_close(host(f.var), host(expected.var), 1e-5, "var");
  expect_close(host(f.y), host(expected.y), 1e-4, "y");
  const Backward expected_b = run_backward(ref_backend(), in, expected);
  const Backward b = run_backward(cpu_backend(), in, expected);
  expect_close(host(b.dx), host(expected_b.dx), 1e-4, "dx");
  expect_close(host(b.dweight), host(expected_b.dweight), 1e-4, "dweight");
}

TEST(FusedBatchNormBaseDefaults, MatchRefOnTheCpuAndRefBackends) {
  std::uint64_t seed = 500;
  for (const Case& c : std::vector<Case>{{2, 1, 1}, {1, 3, 5}, {7, 3, 1}, {5, 0, 3}, {4, 16, 9}, {32, 8, 64}}) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const Inputs in = make_inputs(c.n, c.c, c.s, dtype, seed++);
      const Forward expected_f = run_forward(ref_backend(), in);
      const Backward expected_b = run_backward(ref_backend(), in, expected_f);
      for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
        const std::string what =
            str("default on ", backend->name(), " ", dtype_name(dtype), " (", c.n, ", ", c.c, ", ", c.s, ")");
        const Forward f = run_forward(*backend, in, /*base_default=*/true);
        const Backward b = run_backward(*backend, in, expected_f, /*base_default=*/true);
        // The composed default sums in the array's dtype.
        expect_same_outputs(f, b, expected_f, expected_b, dtype == DType::Float32 ? 2e-4 : 1e-10, what);
      }
    }
  }
}

TEST(FusedBatchNormKernels, RejectBadOperands) {
  const NDArray x = NDArray::ones({2, 3, 4}, DType::Float64, cpu_device());
  const NDArray vec = NDArray::ones({3}, DType::Float64, cpu_device());
  for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
    SCOPED_TRACE(std::string(backend->name()));
    NDArray y = NDArray::empty({2, 3, 4}, DType::Float64, cpu_device());
    NDArray mean = NDArray::empty({3}, DType::Float64, cpu_device());
    NDArray var = NDArray::empty({3}, DType::Float64, cpu_device());
    const auto forward = [&](const NDArray& in, const NDArray& w) {
      backend->batch_norm(y.view(), mean.view(), var.view(), in.view(), w.view(), vec.view(), kEps);
    };
    // Not (N, C, S).
    testing::expect_error<RuntimeError>([&] { forward(x.reshape({2, 12}), vec); }, "3");
    // Another shape than the output's, a non-contiguous input, a wrong dtype, a per-channel operand of
    // the wrong length.
    testing::expect_error<RuntimeError>(
        [&] {
          forward(NDArray::ones({2, 3, 5}, DType::Float64, cpu_device()), vec);
        },
        "shape");
    const NDArray strided = NDArray::ones({2, 3, 8}, DType::Float64, cpu_device()).as_strided({2, 3, 4}, {24, 8, 2}, 0);
    testing::expect_error<RuntimeError>([&] { forward(strided, vec); }, "contiguous");
    testing::expect_error<RuntimeError>([&] { forward(x.astype(DType::Float32), vec); }, "dtype");
    testing::expect_error<RuntimeError>([&] { forward(x, NDArray::ones({4}, DType::Float64, cpu_device())); }, "shape");
    // Integers.
    const NDArray ints = NDArray::ones({2, 3, 4}, DType::Int64, cpu_device());
    NDArray int_out = NDArray::empty({2, 3, 4}, DType::Int64, cpu_device());
    const NDArray int_vec = NDArray::ones({3}, DType::Int64, cpu_device());
    testing::expect_error<RuntimeError>(
        [&] {
          backend->batch_norm(int_out.view(), int_vec.view(), int_vec.view(), ints.view(), int_vec.view(),
                              int_vec.view(), kEps);
        },
        "float32");
    // Channels with no values.
    const NDArray empty = NDArray::empty({0, 3, 4}, DType::Float64, cpu_device());
    NDArray empty_out = NDArray::empty({0, 3, 4}, DType::Float64, cpu_device());
    testing::expect_error<RuntimeError>(
        [&] {
          backend->batch_norm(empty_out.view(), mean.view(), var.view(), empty.view(), vec.view(), vec.view(), kEps);
        },
        "at least one value");
    // The backward checks its operands the same way.
    NDArray dx = NDArray::empty({2, 3, 4}, DType::Float64, cpu_device());
    testing::expect_error<RuntimeError>(
        [&] {
          backend->batch_norm_backward(dx.view(), mean.view(), var.view(), x.astype(DType::Float32).view(), x.view(),
                                       vec.view(), vec.view(), vec.view(), kEps);
        },
        "dtype");
  }
}

// ---- the op ---------------------------------------------------------------------------------------

class FusedBatchNormOpsTest : public ::testing::TestWithParam<Device> {};

// Training-mode batch norm of x (N, C, ...) by composed array functions.
NDArray composed_batch_norm(const NDArray& x, const NDArray& w, const NDArray& b, double eps) {
  Axes axes{0};
  for (std::int64_t d = 2; d < x.ndim(); ++d) axes.push_back(d);
  Shape param(static_cast<std::size_t>(x.ndim()), 1);
  param[1] = x.shape()[1];
  const NDArray centered = x - needle::mean(x, axes, true);
  const NDArray var = needle::mean(centered * centered, axes, true);
  return centered / needle::sqrt(var + Scalar(eps)) * w.reshape(param) + b.reshape(param);
}

TEST_P(FusedBatchNormOpsTest, ForwardMatchesTheComposedFormulaAndUpdatesRunningStatistics) {
  const Device d = GetParam();
  for (const Shape& shape : {Shape{6, 3}, Shape{3, 2, 3, 4}, Shape{1, 2, 5}, Shape{4, 1, 2, 2}}) {
    SCOPED_TRACE(shape_str(shape));
    const NDArray x = random_array(shape, d, 21, -3.0, 3.0);
    const NDArray w = random_array({shape[1]}, d, 22);
    const NDArray b = random_array({shape[1]}, d, 23);
    // A non-contiguous input: the same values, transposed twice.
    const NDArray permuted = x.swapaxes(0, 1).compact().swapaxes(0, 1);
    for (const NDArray& in : {x, permuted}) {
      const Tensor running_mean(NDArray::zeros({shape[1]}, DType::Float64, d));
      const Tensor running_var(NDArray::ones({shape[1]}, DType::Float64, d));
      const Tensor y = ops::batch_norm(Tensor(in), Tensor(w), Tensor(b), running_mean, running_var, true, 0.25, 1e-3);
      expect_close(host(y.value()), host(composed_batch_norm(x, w, b, 1e-3)), 1e-12, "y");
      const Tensor plain = ops::batch_norm(Tensor(in), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-3);
      expect_close(host(plain.value()),
                   host(composed_batch_norm(x, NDArray::ones({shape[1]}, DType::Float64, d),
                                            NDArray::zeros({shape[1]}, DType::Float64, d), 1e-3)),
                   1e-12, "y without weight and bias");
      // Running statistics move a quarter of the way to the batch mean and the unbiased batch variance.
      Axes axes{0};
      for (std::int64_t k = 2; k < x.ndim(); ++k) axes.push_back(k);
      const double count = static_cast<double>(x.size() / shape[1]);
      const NDArray batch_mean = needle::mean(x, axes);
      const NDArray centered = x - needle::mean(x, axes, true);
      const NDArray unbiased = sum(centered * centered, axes) * Scalar(1.0 / (count - 1));
      expect_close(host(running_mean.value()), host(batch_mean * Scalar(0.25)), 1e-12, "running_mean");
      expect_close(host(running_var.value()), host(unbiased * Scalar(0.25) + Scalar(0.75)), 1e-12, "running_var");
    }
  }
}

TEST_P(FusedBatchNormOpsTest, MixedDtypesPromoteAndTooFewValuesAreRejected) {
  const Device d = GetParam();
  const NDArray x = random_array({4, 3, 2}, d, 31);
  const NDArray w = random_array({3}, d, 32);
  const NDArray b = random_array({3}, d, 33);
  // float32 input, float64 weight and bias: the result is float64, as the element-wise ops give.
  const Tensor y =
      ops::batch_norm(Tensor(x.astype(DType::Float32)), Tensor(w), Tensor(b), Tensor(), Tensor(), true, 0.1, 1e-5);
  EXPECT_EQ(y.dtype(), DType::Float64);
  expect_close(host(y.value()), host(composed_batch_norm(x.astype(DType::Float32).astype(DType::Float64), w, b, 1e-5)),
               1e-6, "mixed dtypes");
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::batch_norm(Tensor(random_array({1, 3}, d, 34)), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1,
                              1e-5);
      },
      "more than 1 value per channel");
}

TEST_P(FusedBatchNormOpsTest, GradientsAndSecondGradientsMatchFiniteDifferences) {
  const Device d = GetParam();
  for (const Shape& shape : {Shape{6, 3}, Shape{3, 2, 3, 4}, Shape{1, 2, 3, 2}}) {
    SCOPED_TRACE(shape_str(shape));
    const NDArray x = random_array(shape, d, 41, -2.0, 2.0);
    const NDArray w = random_array({shape[1]}, d, 42, 0.5, 1.5);
    const NDArray b = random_array({shape[1]}, d, 43);
    const auto affine = [](const V& t) {
      return ops::batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), true, 0.1, 1e-3);
    };
    const auto plain = [](const V& t) {
      return ops::batch_norm(t[0], Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-3);
    };
    expect_gradients_match(affine, {x, w, b});
    expect_gradients_match(plain, {x});
    expect_second_gradients_match(affine, {x, w, b}, 1e-5, 1e-5);
    expect_second_gradients_match(plain, {x}, 1e-5, 1e-5);
    // A squared output makes the second derivative depend on the output gradient too.
    const auto squared = [](const V& t) {
      const Tensor y = ops::batch_norm(t[0], t[1], Tensor(), Tensor(), Tensor(), true, 0.1, 1e-3);
      return ops::multiply(y, y);
    };
    expect_gradients_match(squared, {x, w});
    expect_second_gradients_match(squared, {x, w}, 1e-5, 1e-5);
  }
}

// The convolution layer's output is an NHWC array seen as NCHW: the op reads it in place as (N * H * W, C, 1)
// and returns the input gradient in that layout.
TEST_P(FusedBatchNormOpsTest, ChannelsLastInputsMatchTheComposedFormulaAndFiniteDifferences) {
  const Device d = GetParam();
  const NDArray nhwc = random_array({3, 2, 4, 5}, d, 61, -2.0, 2.0);
  const NDArray x = nhwc.permute({0, 3, 1, 2});
  const NDArray w = random_array({5}, d, 62, 0.5, 1.5);
  const NDArray b = random_array({5}, d, 63);
  const Tensor y = ops::batch_norm(Tensor(x), Tensor(w), Tensor(b), Tensor(), Tensor(), true, 0.1, 1e-3);
  EXPECT_EQ(y.shape(), x.shape());
  expect_close(host(y.value()), host(composed_batch_norm(x.compact(), w, b, 1e-3)), 1e-12, "y");
  const auto channels_last = [](const V& t) {
    return ops::batch_norm(ops::permute(t[0], {0, 3, 1, 2}), t[1], t[2], Tensor(), Tensor(), true, 0.1, 1e-3);
  };
  expect_gradients_match(channels_last, {nhwc, w, b});
  expect_second_gradients_match(channels_last, {nhwc, w, b}, 1e-5, 1e-5);
  // The output squared: an output gradient that depends on y, read channels-last like x.
  const auto squared = [](const V& t) {
    const Tensor y =
        ops::batch_norm(ops::permute(t[0], {0, 3, 1, 2}), t[1], Tensor(), Tensor(), Tensor(), true, 0.1, 1e-3);
    return ops::multiply(y, y);
  };
  expect_gradients_match(squared, {nhwc, w});
}

TEST_P(FusedBatchNormOpsTest, LayerUpdatesRunningStatisticsFromTheKernelsStatistics) {
  const Device d = GetParam();
  nn::BatchNorm2d bn(3, 1e-5, 0.2, d, DType::Float64);
  const NDArray x = random_array({4, 3, 2, 5}, d, 51, -2.0, 3.0);
  const Tensor y = bn(Tensor(x));
  expect_close(
      host(y.value()),
      host(composed_batch_norm(x, NDArray::ones({3}, DType::Float64, d), NDArray::zeros({3}, DType::Float64, d), 1e-5)),
      1e-12, "y");
  // The layer averages the biased batch variance into running_var.
  const Axes axes{0, 2, 3};
  const NDArray centered = x - needle::mean(x, axes, true);
  const NDArray biased = needle::mean(centered * centered, axes);
  const auto buffers = bn.named_buffers();
  ASSERT_EQ(buffers.size(), 2U);
  for (const auto& [name, tensor] : buffers) {
    const NDArray expected =
        name == "running_mean" ? needle::mean(x, axes) * Scalar(0.2) : biased * Scalar(0.2) + Scalar(0.8);
    expect_close(host(tensor.value()), host(expected), 1e-12, name);
  }
}

// check_against_ref computes the op again on ref: the gradients must still come from the first computation,
// on the device of the input.
TEST(FusedBatchNormOps, GradientsAreUnchangedUnderCheckAgainstRef) {
  const NDArray nhwc = random_array({4, 3, 3, 5}, cpu_device(), 71, -2.0, 2.0);
  const NDArray w = random_array({5}, cpu_device(), 72, 0.5, 1.5);
  const NDArray g = random_array({4, 5, 3, 3}, cpu_device(), 73);
  const auto gradients = [&] {
    Tensor x(nhwc.copy(), true);
    Tensor weight(w.copy(), true);
    ops::batch_norm(ops::permute(x, {0, 3, 1, 2}), weight, Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5)
        .backward(Tensor(g));
    return std::vector<NDArray>{x.grad().value(), weight.grad().value()};
  };
  const std::vector<NDArray> expected = gradients();
  const debug::CheckAgainstRefGuard check;
  const std::vector<NDArray> checked = gradients();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(checked[i].device(), cpu_device());
    expect_close(host(checked[i]), host(expected[i]), 1e-12, str("gradient ", i));
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, FusedBatchNormOpsTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
