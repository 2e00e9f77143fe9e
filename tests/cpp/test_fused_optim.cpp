// The fused optimizer update (Backend::adam_update): the cpu kernel and the Backend base class's composed
// default against the ref kernel, ref against the formula written out in double precision, and the
// array-level checks of needle::adam_update.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "needle/backend/backend.h"
#include "needle/core/threads.h"

namespace needle {
namespace {

Backend& ref_backend() { return builtin_backend_for(ref_device()); }
Backend& cpu_backend() { return builtin_backend_for(cpu_device()); }

// The four arrays of one update, on the host (both test backends are host devices).
struct AdamArrays {
  NDArray param, grad, exp_avg, exp_avg_sq;

  static AdamArrays random(std::int64_t n, DType dtype, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    const auto draw = [&](bool positive) {
      std::vector<double> values(static_cast<std::size_t>(n));
      for (double& v : values) v = positive ? std::abs(normal(rng)) : normal(rng);
      return NDArray::from_vector(values, {n}, cpu_device()).astype(dtype);
    };
    return {draw(false), draw(false), draw(false), draw(true)};
  }
  [[nodiscard]] AdamArrays copy() const { return {param.copy(), grad.copy(), exp_avg.copy(), exp_avg_sq.copy()}; }
  void run(Backend& backend, const AdamStep& step) const {
    backend.adam_update(param.view(), grad.view(), exp_avg.view(), exp_avg_sq.view(), step);
  }
};

AdamStep make_step(bool decoupled, double weight_decay) {
  AdamStep step;
  step.lr = 0.01;
  step.beta1 = 0.9;
  step.beta2 = 0.999;
  step.eps = 1e-8;
  step.weight_decay = weight_decay;
  step.correction1 = 1.0 - std::pow(0.9, 3.0);
  step.correction2 = 1.0 - std::pow(0.999, 3.0);
  step.decoupled = decoupled;
  return step;
}

void expect_close(const NDArray& expected, const NDArray& actual, double rtol, const char* what) {
  const std::vector<double> e = expected.astype(DType::Float64).to_vector<double>();
  const std::vector<double> a = actual.astype(DType::Float64).to_vector<double>();
  ASSERT_EQ(e.size(), a.size()) << what;
  for (std::size_t i = 0; i < e.size(); ++i) {
    ASSERT_NEAR(e[i], a[i], rtol * (1.0 + std::abs(e[i]))) << what << " element " << i;
  }
}

TEST(FusedOptim, RefFollowsTheFormula) {
  for (const bool decoupled : {false, true}) {
    const AdamStep step = make_step(decoupled, 0.1);
    const AdamArrays arrays = AdamArrays::random(9, DType::Float64, 1);
    const AdamArrays before = arrays.copy();
    arrays.run(ref_backend(), step);
    const std::vector<double> p0 = before.param.to_vector<double>();
    const std::vector<double> g0 = before.grad.to_vector<double>();
    const std::vector<double> m0 = before.exp_avg.to_vector<double>();
    const std::vector<double> v0 = before.exp_avg_sq.to_vector<double>();
    const std::vector<double> p1 = arrays.param.to_vector<double>();
    const std::vector<double> m1 = arrays.exp_avg.to_vector<double>();
    const std::vector<double> v1 = arrays.exp_avg_sq.to_vector<double>();
    for (std::size_t i = 0; i < p0.size(); ++i) {
      double p = p0[i];
      double g = g0[i];
      if (decoupled) {
        p *= 1.0 - step.lr * step.weight_decay;
      } else {
        g += step.weight_decay * p;
      }
      const double m = 0.9 * m0[i] + 0.1 * g;
      const double v = 0.999 * v0[i] + 0.001 * g * g;
      p -= step.lr * (m / step.correction1) / (std::sqrt(v / step.correction2) + step.eps);
      EXPECT_NEAR(m1[i], m, 1e-14) << "decoupled " << decoupled;
      EXPECT_NEAR(v1[i], v, 1e-14) << "decoupled " << decoupled;
      EXPECT_NEAR(p1[i], p, 1e-14) << "decoupled " << decoupled;
    }
  }
}

TEST(FusedOptim, CpuAndDefaultMatchRef) {
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const std::int64_t n : {0, 1, 7, 8, 65, 32768, 100003}) {
      for (const bool decoupled : {false, true}) {
        for (const double weight_decay : {0.0, 0.05}) {
          for (const int threads : {1, 2}) {
            SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " n=" << n << " decoupled=" << decoupled
                                              << " wd=" << weight_decay << " threads=" << threads);
            const int saved = get_num_threads();
            set_num_threads(threads);
            const AdamStep step = make_step(decoupled, weight_decay);
            const AdamArrays ref = AdamArrays::random(n, dtype, 7);
            const AdamArrays cpu = ref.copy();
            const AdamArrays composed = ref.copy();
            ref.run(ref_backend(), step);
            cpu.run(cpu_backend(), step);
            // The base class's composition, called past the cpu backend's override.
            cpu_backend().Backend::adam_update(composed.param.view(), composed.grad.view(), composed.exp_avg.view(),
                                               composed.exp_avg_sq.view(), step);
            set_num_threads(saved);
            // cpu runs ref's per-element code: identical. The composition rounds between its steps.
            const auto values = [](const NDArray& a) { return a.astype(DType::Float64).to_vector<double>(); };
            EXPECT_EQ(values(ref.param), values(cpu.param));
            EXPECT_EQ(values(ref.exp_avg), values(cpu.exp_avg));
            EXPECT_EQ(values(ref.exp_avg_sq), values(cpu.exp_avg_sq));
            const double rtol = dtype == DType::Float32 ? 1e-6 : 1e-14;
            expect_close(ref.param, composed.param, rtol, "param");
            expect_close(ref.exp_avg, composed.exp_avg, rtol, "exp_avg");
            expect_close(ref.exp_avg_sq, composed.exp_avg_sq, rtol, "exp_avg_sq");
          }
        }
      }
    }
  }
}

TEST(FusedOptim, ArrayFunctionChecksItsOperands) {
  NDArray param = NDArray::zeros({2, 3}, DType::Float32, cpu_device());
  NDArray m = NDArray::zeros({2, 3}, DType::Float32, cpu_device());
  NDArray v = NDArray::zeros({2, 3}, DType::Float32, cpu_device());
  const AdamStep step = make_step(false, 0.0);
  NDArray wrong_shape = NDArray::zeros({3, 2}, DType::Float32, cpu_device());
  EXPECT_THROW(adam_update(param, wrong_shape, m, v, step), ValueError);
  NDArray wrong_dtype = NDArray::zeros({2, 3}, DType::Float64, cpu_device());
  EXPECT_THROW(adam_update(param, param, wrong_dtype, v, step), TypeError);
  NDArray transposed = NDArray::zeros({3, 2}, DType::Float32, cpu_device()).swapaxes(0, 1);
  EXPECT_THROW(adam_update(transposed, param, m, v, step), ValueError);
  NDArray on_ref = NDArray::zeros({2, 3}, DType::Float32, ref_device());
  EXPECT_THROW(adam_update(param, on_ref, m, v, step), RuntimeError);
  NDArray integers = NDArray::zeros({2, 3}, DType::Int32, cpu_device());
  EXPECT_THROW(adam_update(integers, integers, integers, integers, step), TypeError);
  // A transposed gradient is fine: it is read through a compact copy.
  NDArray grad = NDArray::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2}, cpu_device())
                     .astype(DType::Float32)
                     .swapaxes(0, 1);
  adam_update(param, grad, m, v, step);
  const std::vector<float> moved = param.to_vector<float>();
  for (const float x : moved) EXPECT_LT(x, 0.0F);  // each parameter moves against its (positive) gradient
}

}  // namespace
}  // namespace needle
