// The fused neural-network kernels (softmax, log-softmax, layer norm and their backward passes): the ref
// kernels against hand-worked values and against the formulas composed from array functions, the cpu
// kernels (both instruction-set builds, 1 and 2 threads) and the Backend base-class defaults against
// the ref kernels, and the ops built on them (any axis, any layout, gradients and second gradients)
// against naive loops and finite differences.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <limits>
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

// Which fused kernel a test runs.
enum class Kernel { Softmax, LogSoftmax, SoftmaxBackward, LogSoftmaxBackward, LayerNorm, LayerNormBackward };

std::string kernel_name(Kernel kernel) {
  switch (kernel) {
    case Kernel::Softmax:
      return "softmax";
    case Kernel::LogSoftmax:
      return "logsoftmax";
    case Kernel::SoftmaxBackward:
      return "softmax_backward";
    case Kernel::LogSoftmaxBackward:
      return "logsoftmax_backward";
    case Kernel::LayerNorm:
      return "layer_norm";
    case Kernel::LayerNormBackward:
      return "layer_norm_backward";
  }
  return "?";
}

constexpr double kEps = 1e-5;

// The inputs a kernel reads: x (logits or layer-norm input), g (an output gradient) and y (the forward
// output the softmax backward passes take), all contiguous host arrays of `shape`.
struct KernelInputs {
  NDArray x;
  NDArray g;
  NDArray y_softmax;
  NDArray y_logsoftmax;
};

KernelInputs make_inputs(const Shape& shape, DType dtype, std::uint64_t seed) {
  KernelInputs in;
  // A per-row offset of up to 40 checks the shift by the row maximum.
  in.x = (random_array(shape, cpu_device(), seed, -4.0, 4.0) + Scalar(40.0)).astype(dtype);
  in.g = random_array(shape, cpu_device(), seed + 1, -1.0, 1.0).astype(dtype);
  in.y_softmax = NDArray::empty(shape, dtype, cpu_device());
  in.y_logsoftmax = NDArray::empty(shape, dtype, cpu_device());
  if (in.x.size() > 0) {
    ref_backend().softmax(in.y_softmax.view(), in.x.view(), false);
    ref_backend().softmax(in.y_logsoftmax.view(), in.x.view(), true);
  }
  return in;
}

// Runs `kernel` with `backend`'s implementation into a fresh array; `base_default` calls the Backend
// base class's composed version instead of the backend's override.
NDArray run_kernel(Backend& backend, Kernel kernel, const KernelInputs& in, bool base_default = false) {
  NDArray out = NDArray::full(in.x.shape(), Scalar(-7.0), in.x.dtype(), cpu_device());
  const StridedView o = out.view();
  switch (kernel) {
    case Kernel::Softmax:
    case Kernel::LogSoftmax: {
      const bool log = kernel == Kernel::LogSoftmax;
      base_default ? backend.composed_softmax(o, in.x.view(), log) : backend.softmax(o, in.x.view(), log);
      break;
    }
    case Kernel::SoftmaxBackward:
    case Kernel::LogSoftmaxBackward: {
      const bool log = kernel == Kernel::LogSoftmaxBackward;
      const StridedView y = log ? in.y_logsoftmax.view() : in.y_softmax.view();
      base_default ? backend.composed_softmax_backward(o, in.g.view(), y, log)
                   : backend.softmax_backward(o, in.g.view(), y, log);
      break;
    }
    case Kernel::LayerNorm:
      base_default ? backend.composed_layer_norm(o, in.x.view(), kEps) : backend.layer_norm(o, in.x.view(), kEps);
      break;
    case Kernel::LayerNormBackward:
      base_default ? backend.composed_layer_norm_backward(o, in.g.view(), in.x.view(), kEps)
                   : backend.layer_norm_backward(o, in.g.view(), in.x.view(), kEps);
      break;
  }
  return out;
}

const std::vector<Kernel> kAllKernels = {Kernel::Softmax,         Kernel::LogSoftmax,
                                         Kernel::SoftmaxBackward, Kernel::LogSoftmaxBackward,
                                         Kernel::LayerNorm,       Kernel::LayerNormBackward};

double tolerance_for(DType dtype) { return dtype == DType::Float32 ? 2e-5 : 1e-11; }

// Restores the thread count and the run-time choice of the cpu kernels' build at the end of a test.
class FusedKernelSettings {
 public:
  FusedKernelSettings() : threads_(get_num_threads()) {}
  ~FusedKernelSettings() {
    set_num_threads(threads_);
    cpu::set_fused_nn_portable(false);
  }
  FusedKernelSettings(const FusedKernelSettings&) = delete;
  FusedKernelSettings& operator=(const FusedKernelSettings&) = delete;

 private:
  int threads_;
};

// ---- ref kernels against hand-worked values and composed formulas --------------------------------

TEST(FusedNnRefKernels, MatchHandWorkedRows) {
  Backend& ref = ref_backend();
  // softmax([0, ln 2, ln 3]) = [1, 2, 3] / 6.
  const NDArray x = NDArray::from_vector(std::vector<double>{0.0, std::log(2.0), std::log(3.0)}, {1, 3}, cpu_device());
  NDArray y = NDArray::empty({1, 3}, DType::Float64, cpu_device());
  ref.softmax(y.view(), x.view(), false);
  expect_close(host(y), {1.0 / 6, 2.0 / 6, 3.0 / 6}, 1e-15, "softmax");
  NDArray log_y = NDArray::empty({1, 3}, DType::Float64, cpu_device());
  ref.softmax(log_y.view(), x.view(), true);
  expect_close(host(log_y), {std::log(1.0 / 6), std::log(2.0 / 6), std::log(3.0 / 6)}, 1e-15, "logsoftmax");

  // With g = e_k the backward passes give row k of the Jacobian: y_i (delta_ik - y_k), delta_ik - p_i.
  const NDArray e1 = NDArray::from_vector(std::vector<double>{0.0, 1.0, 0.0}, {1, 3}, cpu_device());
  NDArray dx = NDArray::empty({1, 3}, DType::Float64, cpu_device());
  ref.softmax_backward(dx.view(), e1.view(), y.view(), false);
  expect_close(host(dx), {-(1.0 / 6) * (2.0 / 6), (2.0 / 6) * (1 - 2.0 / 6), -(3.0 / 6) * (2.0 / 6)}, 1e-15,
               "softmax_backward");
  ref.softmax_backward(dx.view(), e1.view(), log_y.view(), true);
  expect_close(host(dx), {-1.0 / 6, 1 - 2.0 / 6, -3.0 / 6}, 1e-15, "logsoftmax_backward");

  // layer_norm([1, 2, 3, 4]) with eps = 0: mean 2.5, variance 1.25.
  const NDArray ln_x = NDArray::from_vector(std::vector<double>{1.0, 2.0, 3.0, 4.0}, {1, 4}, cpu_device());
  NDArray ln_y = NDArray::empty({1, 4}, DType::Float64, cpu_device());
  ref.layer_norm(ln_y.view(), ln_x.view(), 0.0);
  const double s = std::sqrt(1.25);
  expect_close(host(ln_y), {-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s}, 1e-15, "layer_norm");
  // Shifting every input equally or scaling the output along xhat (eps = 0) changes nothing: dx = 0.
  NDArray ln_dx = NDArray::empty({1, 4}, DType::Float64, cpu_device());
  const NDArray ones = NDArray::ones({1, 4}, DType::Float64, cpu_device());
  ref.layer_norm_backward(ln_dx.view(), ones.view(), ln_x.view(), 0.0);
  expect_close(host(ln_dx), {0, 0, 0, 0}, 1e-15, "layer_norm_backward of ones");
  ref.layer_norm_backward(ln_dx.view(), ln_y.view(), ln_x.view(), 0.0);
  expect_close(host(ln_dx), {0, 0, 0, 0}, 1e-15, "layer_norm_backward along xhat");
}

TEST(FusedNnRefKernels, MatchTheFormulasComposedFromArrayFunctions) {
  const Shape shape{5, 9};
  const KernelInputs in = make_inputs(shape, DType::Float64, 11);
  const NDArray& x = in.x;
  const NDArray& g = in.g;
  const NDArray shifted = x - max(x, {1}, true);
  const NDArray p = exp(shifted) / sum(exp(shifted), {1}, true);
  const NDArray log_p = shifted - log(sum(exp(shifted), {1}, true));
  const NDArray centered = x - mean(x, {1}, true);
  const NDArray rstd = NDArray::full({}, Scalar(1.0), DType::Float64, cpu_device()) /
                       sqrt(mean(centered * centered, {1}, true) + Scalar(kEps));
  const NDArray xhat = centered * rstd;
  const double n = 9.0;
  const NDArray expected[] = {
      p,
      log_p,
      in.y_softmax * (g - sum(g * in.y_softmax, {1}, true)),
      g - exp(in.y_logsoftmax) * sum(g, {1}, true),
      xhat,
      rstd * (g - sum(g, {1}, true) * Scalar(1.0 / n) - xhat * (sum(g * xhat, {1}, true) * Scalar(1.0 / n))),
  };
  for (std::size_t k = 0; k < kAllKernels.size(); ++k) {
    expect_close(host(run_kernel(ref_backend(), kAllKernels[k], in)), host(expected[k]), 1e-13,
                 kernel_name(kAllKernels[k]));
  }
}

// ---- cpu kernels and base-class defaults against ref ---------------------------------------------

struct Case {
  std::int64_t rows;
  std::int64_t cols;
};

std::vector<Case> kernel_cases() {
  std::vector<Case> cases;
  for (std::int64_t cols : {0, 1, 7, 8, 9, 63, 64, 65, 257, 1000}) {
    for (std::int64_t rows : {0, 1, 7, 8, 9, 63, 64, 65}) cases.push_back({rows, cols});
  }
  for (std::int64_t rows : {0, 1, 7, 9}) cases.push_back({rows, 10000});
  cases.push_back({257, 64});
  return cases;
}

TEST(FusedNnCpuKernels, MatchRefOnEveryShapeDtypeThreadCountAndBuild) {
  const FusedKernelSettings restore;
  std::uint64_t seed = 100;
  for (const Case& c : kernel_cases()) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const KernelInputs in = make_inputs({c.rows, c.cols}, dtype, seed++);
      for (const Kernel kernel : kAllKernels) {
        const std::vector<double> expected = host(run_kernel(ref_backend(), kernel, in));
        std::vector<double> first_run;
        for (const bool portable : {false, true}) {
          cpu::set_fused_nn_portable(portable);
          for (const int threads : {1, 2}) {
            set_num_threads(threads);
            const std::string what = str(kernel_name(kernel), " ", dtype_name(dtype), " (", c.rows, ", ", c.cols,
                                         ") threads ", threads, portable ? " portable" : " dispatched");
            const std::vector<double> actual = host(run_kernel(cpu_backend(), kernel, in));
            expect_close(actual, expected, tolerance_for(dtype), what);
            // Rows never depend on how they are split over threads.
            if (threads == 1) first_run = actual;
            if (threads == 2) {
              EXPECT_EQ(actual, first_run) << what << ": differs from the 1-thread result";
            }
          }
        }
      }
    }
  }
}

// The affine layer norm's backward (three outputs): the cpu kernel's builds and thread counts and the base
// class's composed default against ref, on the same shapes as the single-output kernels plus more rows than
// one block of the cpu kernel's column sums (whose result must not depend on the thread count either).
struct AffineGrads {
  std::vector<double> dx, dweight, dbias;
};

AffineGrads run_affine_backward(Backend& backend, const KernelInputs& in, const NDArray& weight,
                                bool base_default = false) {
  const std::int64_t cols = in.x.ndim() == 0 ? 1 : in.x.shape().back();
  NDArray dx = NDArray::full(in.x.shape(), Scalar(-7.0), in.x.dtype(), cpu_device());
  NDArray dweight = NDArray::full({cols}, Scalar(-7.0), in.x.dtype(), cpu_device());
  NDArray dbias = NDArray::full({cols}, Scalar(-7.0), in.x.dtype(), cpu_device());
  if (base_default) {
    backend.composed_layer_norm_affine_backward(dx.view(), dweight.view(), dbias.view(), in.g.view(), in.x.view(),
                                                weight.view(), kEps);
  } else {
    backend.layer_norm_affine_backward(dx.view(), dweight.view(), dbias.view(), in.g.view(), in.x.view(), weight.view(),
                                       kEps);
  }
  return {host(dx), host(dweight), host(dbias)};
}

TEST(FusedNnCpuKernels, AffineLayerNormBackwardMatchesRefOnEveryShapeDtypeThreadCountAndBuild) {
  const FusedKernelSettings restore;
  std::uint64_t seed = 500;
  std::vector<Case> cases = kernel_cases();
  cases.push_back({2049, 128});  // several blocks of rows, the last one partial
  for (const Case& c : cases) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const KernelInputs in = make_inputs({c.rows, c.cols}, dtype, seed);
      const NDArray weight = random_array({c.cols}, cpu_device(), seed++, -2.0, 2.0).astype(dtype);
      const AffineGrads expected = run_affine_backward(ref_backend(), in, weight);
      const std::string shape = str(dtype_name(dtype), " (", c.rows, ", ", c.cols, ")");
      // The composed default sums the columns in the arrays' dtype (ref and the cpu kernel sum in double),
      // so its error grows with the number of rows.
      const double tolerance = tolerance_for(dtype) * std::max<double>(1.0, static_cast<double>(c.rows));
      const AffineGrads composed = run_affine_backward(cpu_backend(), in, weight, /*base_default=*/true);
      expect_close(composed.dx, expected.dx, tolerance_for(dtype), "composed dx " + shape);
      expect_close(composed.dweight, expected.dweight, tolerance, "composed dweight " + shape);
      expect_close(composed.dbias, expected.dbias, tolerance, "composed dbias " + shape);
      AffineGrads first_run;
      for (const bool portable : {false, true}) {
        cpu::set_fused_nn_portable(portable);
        for (const int threads : {1, 2}) {
          set_num_threads(threads);
          const std::string what = str(shape, " threads ", threads, portable ? " portable" : " dispatched");
          const AffineGrads actual = run_affine_backward(cpu_backend(), in, weight);
          expect_close(actual.dx, expected.dx, tolerance_for(dtype), "dx " + what);
          expect_close(actual.dweight, expected.dweight, tolerance_for(dtype), "dweight " + what);
          expect_close(actual.dbias, expected.dbias, tolerance_for(dtype), "dbias " + what);
          if (threads == 1) first_run = actual;
          if (threads == 2) {
            EXPECT_EQ(actual.dx, first_run.dx) << what;
            EXPECT_EQ(actual.dweight, first_run.dweight) << what;
            EXPECT_EQ(actual.dbias, first_run.dbias) << what;
          }
        }
      }
    }
  }
}

TEST(FusedNnCpuKernels, HandleExtremeLogits) {
  const FusedKernelSettings restore;
  const double inf = std::numeric_limits<double>::infinity();
  // Huge logits, -inf entries, and logits so far below the maximum that exp underflows.
  const NDArray x = NDArray::from_vector(
      std::vector<double>{1e30, 0.0, -1e30, 5.0, -inf, 5.0, -200.0, 0.0, -1000.0, 1.0, 2.0, 3.0}, {3, 4}, cpu_device());
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    KernelInputs in;
    in.x = x.astype(dtype);
    for (const bool portable : {false, true}) {
      cpu::set_fused_nn_portable(portable);
      for (const Kernel kernel : {Kernel::Softmax, Kernel::LogSoftmax}) {
        const std::vector<double> expected = host(run_kernel(ref_backend(), kernel, in));
        const std::vector<double> actual = host(run_kernel(cpu_backend(), kernel, in));
        for (std::size_t i = 0; i < expected.size(); ++i) {
          if (std::isinf(expected[i])) {
            EXPECT_EQ(actual[i], expected[i]) << kernel_name(kernel) << " element " << i;
          } else {
            EXPECT_NEAR(actual[i], expected[i], tolerance_for(dtype) * (1 + std::abs(expected[i])))
                << kernel_name(kernel) << " " << dtype_name(dtype) << " element " << i;
          }
        }
      }
    }
  }
}

TEST(FusedNnBaseDefaults, MatchRefOnTheCpuAndRefBackends) {
  std::uint64_t seed = 500;
  for (const Case& c : std::vector<Case>{{0, 0}, {0, 5}, {3, 0}, {1, 1}, {7, 9}, {65, 64}, {3, 1000}}) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const KernelInputs in = make_inputs({c.rows, c.cols}, dtype, seed++);
      for (const Kernel kernel : kAllKernels) {
        const std::vector<double> expected = host(run_kernel(ref_backend(), kernel, in));
        for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
          const std::string what = str(kernel_name(kernel), " default on ", backend->name(), " ", dtype_name(dtype),
                                       " (", c.rows, ", ", c.cols, ")");
          expect_close(host(run_kernel(*backend, kernel, in, /*base_default=*/true)), expected, tolerance_for(dtype),
                       what);
        }
      }
    }
  }
}

TEST(FusedNnKernels, AcceptZeroDimensionalArraysAndRejectBadOperands) {
  for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
    const NDArray x = NDArray::full({}, Scalar(3.0), DType::Float64, cpu_device());
    NDArray y = NDArray::empty({}, DType::Float64, cpu_device());
    backend->softmax(y.view(), x.view(), false);
    EXPECT_EQ(y.item().to<double>(), 1.0);
    backend->composed_softmax(y.view(), x.view(), true);
    EXPECT_EQ(y.item().to<double>(), 0.0);

    const NDArray m = NDArray::ones({2, 3}, DType::Float64, cpu_device());
    NDArray out = NDArray::empty({3, 2}, DType::Float64, cpu_device());
    testing::expect_error<RuntimeError>([&] { backend->softmax(out.view(), m.swapaxes(0, 1).view(), false); },
                                        "contiguous");
    NDArray wrong = NDArray::empty({2, 3}, DType::Float32, cpu_device());
    testing::expect_error<RuntimeError>([&] { backend->layer_norm(wrong.view(), m.view(), kEps); }, "dtype");
    const NDArray ints = NDArray::ones({2, 3}, DType::Int64, cpu_device());
    NDArray int_out = NDArray::empty({2, 3}, DType::Int64, cpu_device());
    testing::expect_error<RuntimeError>([&] { backend->softmax(int_out.view(), ints.view(), false); }, "float32");
  }
}

// ---- ops ----------------------------------------------------------------------------------------

class FusedNnOpsTest : public ::testing::TestWithParam<Device> {};

// Softmax along `axis` of a contiguous float64 copy, by composed array functions.
NDArray composed_softmax(const NDArray& x, std::int64_t axis, bool log) {
  const NDArray shifted = x.compact() - max(x, {axis}, true);
  const NDArray log_sum = needle::log(sum(exp(shifted), {axis}, true));
  return log ? shifted - log_sum : exp(shifted - log_sum);
}

TEST_P(FusedNnOpsTest, SoftmaxOnAnyAxisAndLayoutMatchesTheComposedFormula) {
  const NDArray base = random_array({4, 3, 5}, GetParam(), 21, -3.0, 3.0);
  const std::vector<NDArray> layouts = {
      base, base.permute({2, 0, 1}),                                    // non-contiguous
      base.flip_view({1}),                                              // negative strides
      random_array({4, 1, 5}, GetParam(), 22).broadcast_to({4, 3, 5}),  // zero strides
  };
  for (std::size_t l = 0; l < layouts.size(); ++l) {
    for (std::int64_t axis : {0, 1, 2, -1}) {
      for (const bool log : {false, true}) {
        SCOPED_TRACE(str("layout ", l, " axis ", axis, log ? " log" : ""));
        const NDArray& x = layouts[l];
        const Tensor out = log ? ops::logsoftmax(Tensor(x), axis) : ops::softmax(Tensor(x), axis);
        EXPECT_EQ(out.shape(), x.shape());
        const std::int64_t normalized = axis < 0 ? axis + 3 : axis;
        expect_close(host(out.value()), host(composed_softmax(x, normalized, log)), 1e-12, "op");
      }
    }
  }
}

TEST_P(FusedNnOpsTest, SoftmaxGradientsMatchFiniteDifferencesOnEveryAxis) {
  const NDArray x = random_array({3, 4, 5}, GetParam(), 31, -2.0, 2.0);
  const NDArray transposed = random_array({5, 4}, GetParam(), 32, -2.0, 2.0).swapaxes(0, 1);
  for (std::int64_t axis : {0, 1, 2}) {
    SCOPED_TRACE(axis);
    expect_gradients_match([axis](const V& t) { return ops::softmax(t[0], axis); }, {x});
    expect_gradients_match([axis](const V& t) { return ops::logsoftmax(t[0], axis); }, {x});
    expect_second_gradients_match([axis](const V& t) { return ops::softmax(t[0], axis); }, {x}, 1e-5, 1e-5);
    expect_second_gradients_match([axis](const V& t) { return ops::logsoftmax(t[0], axis); }, {x}, 1e-5, 1e-5);
  }
  expect_second_gradients_match([](const V& t) { return ops::softmax(t[0], 1); }, {transposed}, 1e-5, 1e-5);
}

// The backward ops' gradients in the output gradient g: with f(x, w) = softmax(x) * w the first gradient
// in x is SoftmaxGrad(w * ..., y), so its derivative in w goes through g.
TEST_P(FusedNnOpsTest, SoftmaxBackwardOpsDifferentiateInBothInputs) {
  const NDArray x = random_array({3, 6}, GetParam(), 41, -2.0, 2.0);
  const NDArray w = random_array({3, 6}, GetParam(), 42, -1.0, 1.0);
  for (const bool log : {false, true}) {
    SCOPED_TRACE(log ? "logsoftmax" : "softmax");
    const auto f = [log](const V& t) {
      const Tensor y = log ? ops::logsoftmax(t[0], 1) : ops::softmax(t[0], 1);
      return ops::multiply(ops::multiply(y, y), t[1]);
    };
    expect_gradients_match(f, {x, w});
    expect_second_gradients_match(f, {x, w}, 1e-5, 1e-5);
  }
}

TEST_P(FusedNnOpsTest, LayerNormGradientsAndSecondGradientsMatchFiniteDifferences) {
  const NDArray x = random_array({2, 3, 7}, GetParam(), 51, -2.0, 2.0);
  const NDArray w = random_array({7}, GetParam(), 52);
  const NDArray b = random_array({7}, GetParam(), 53);
  const NDArray transposed = random_array({7, 4}, GetParam(), 54, -2.0, 2.0).swapaxes(0, 1);
  const auto affine = [](const V& t) { return ops::layer_norm(t[0], t[1], t[2], 1e-3); };
  const auto plain = [](const V& t) { return ops::layer_norm(t[0], Tensor(), Tensor(), 1e-3); };
  expect_gradients_match(affine, {x, w, b});
  expect_gradients_match(plain, {transposed});
  expect_second_gradients_match(affine, {x, w, b}, 1e-5, 1e-5);
  expect_second_gradients_match(plain, {transposed}, 1e-5, 1e-5);
  // A squared output makes the second derivative depend on the output gradient too.
  const auto squared = [](const V& t) {
    const Tensor y = ops::layer_norm(t[0], t[1], Tensor(), 1e-3);
    return ops::multiply(y, y);
  };
  expect_second_gradients_match(squared, {x, w}, 1e-5, 1e-5);
}

TEST_P(FusedNnOpsTest, CrossEntropyGathersTheLabelsLogProbability) {
  const double inf = std::numeric_limits<double>::infinity();
  // -inf logits away from the labels stay out of the loss; a NaN would appear with a product mask.
  const NDArray logits = NDArray::from_vector(std::vector<double>{1.0, -inf, 2.0, 0.5, 0.0, -inf}, {2, 3}, GetParam());
  const Tensor labels(NDArray::from_vector(std::vector<std::int64_t>{2, 0}, {2}, GetParam()));
  const double expected =
      -((2.0 - std::log(std::exp(1.0) + std::exp(2.0))) + (0.5 - std::log(std::exp(0.5) + std::exp(0.0)))) / 2.0;
  Tensor x(logits, true);
  const Tensor loss = ops::cross_entropy(x, labels);
  EXPECT_NEAR(loss.value().item().to<double>(), expected, 1e-12);
  loss.backward();
  const std::vector<double> grad = host(x.grad().value());
  for (const double v : grad) EXPECT_TRUE(std::isfinite(v));
  // d/dlogits = (softmax - onehot) / N; the -inf entries get probability 0.
  const double p0 = std::exp(1.0) / (std::exp(1.0) + std::exp(2.0));
  const double p1 = std::exp(0.5) / (std::exp(0.5) + 1.0);
  expect_close(grad, {p0 / 2, 0.0, (1 - p0 - 1) / 2, (p1 - 1) / 2, (1 - p1) / 2, 0.0}, 1e-12, "gradient");

  const NDArray z = random_array({4, 6}, GetParam(), 61, -2.0, 2.0);
  const Tensor y(NDArray::from_vector(std::vector<std::int32_t>{5, 0, 3, 3}, {4}, GetParam()));
  expect_gradients_match([&](const V& t) { return ops::cross_entropy(t[0], y); }, {z});
  expect_second_gradients_match([&](const V& t) { return ops::cross_entropy(t[0], y); }, {z}, 1e-5, 1e-5);
}

TEST_P(FusedNnOpsTest, EmptyShapesWork) {
  for (const Shape& shape : std::vector<Shape>{{0, 4}, {3, 0}, {0, 0}}) {
    SCOPED_TRACE(shape_str(shape));
    Tensor x(NDArray::zeros(shape, DType::Float64, GetParam()), true);
    const Tensor total = ops::summation(ops::softmax(x, -1)) + ops::summation(ops::logsoftmax(x, 0)) +
                         ops::summation(ops::layer_norm(x, Tensor(), Tensor()));
    total.backward();
    EXPECT_EQ(x.grad().shape(), shape);
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, FusedNnOpsTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
