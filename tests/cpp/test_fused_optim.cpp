// The fused optimizer updates (Backend::adam_update, Backend::sgd_update): the cpu kernels and the Backend
// base class's composed defaults against the ref kernels, ref against the formulas written out in double
// precision, and the array-level checks of needle::adam_update and needle::sgd_update.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
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
  // Both builds of the cpu loop: the baseline one and, on a CPU with AVX2, the AVX2 one (which has to give the
  // same bits).
  for (const bool portable : {false, true}) {
    cpu::set_optimizer_portable(portable);
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      for (const std::int64_t n : {0, 1, 7, 8, 65, 32768, 100003}) {
        for (const bool decoupled : {false, true}) {
          for (const double weight_decay : {0.0, 0.05}) {
            for (const int threads : {1, 2}) {
              SCOPED_TRACE(::testing::Message()
                           << dtype_name(dtype) << " n=" << n << " decoupled=" << decoupled << " wd=" << weight_decay
                           << " threads=" << threads << (portable ? " baseline build" : ""));
              const int saved = get_num_threads();
              set_num_threads(threads);
              const AdamStep step = make_step(decoupled, weight_decay);
              const AdamArrays ref = AdamArrays::random(n, dtype, 7);
              const AdamArrays cpu = ref.copy();
              const AdamArrays composed = ref.copy();
              ref.run(ref_backend(), step);
              cpu.run(cpu_backend(), step);
              // The base class's composition, called past the cpu backend's override.
              cpu_backend().composed_adam_update(composed.param.view(), composed.grad.view(), composed.exp_avg.view(),
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
  cpu::set_optimizer_portable(false);
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

// The three arrays of one SGD update; the momentum buffer is absent without momentum.
struct SgdArrays {
  NDArray param, grad, buffer;
  bool buffered = false;

  // On a first step the buffer holds NaN: the kernel must overwrite it without reading it.
  static SgdArrays random(std::int64_t n, DType dtype, const SgdStep& step, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    const auto draw = [&]() {
      std::vector<double> values(static_cast<std::size_t>(n));
      for (double& v : values) v = normal(rng);
      return NDArray::from_vector(values, {n}, cpu_device()).astype(dtype);
    };
    SgdArrays arrays{draw(), draw(), NDArray(), step.momentum != 0.0};
    if (arrays.buffered) {
      arrays.buffer =
          step.first ? NDArray::full({n}, std::numeric_limits<double>::quiet_NaN(), dtype, cpu_device()) : draw();
    }
    return arrays;
  }
  [[nodiscard]] SgdArrays copy() const { return {param.copy(), grad.copy(), buffer.copy(), buffered}; }
  [[nodiscard]] StridedView buffer_view() const { return buffered ? buffer.view() : StridedView{}; }
  void run(Backend& backend, const SgdStep& step) const {
    backend.sgd_update(param.view(), grad.view(), buffer_view(), step);
  }
};

SgdStep make_sgd_step(double momentum, double weight_decay, bool first) {
  SgdStep step;
  step.lr = 0.05;
  step.momentum = momentum;
  step.weight_decay = weight_decay;
  step.first = first;
  return step;
}

std::vector<double> values_of(const NDArray& a) { return a.astype(DType::Float64).to_vector<double>(); }

TEST(FusedOptim, SgdRefFollowsTheFormula) {
  for (const double momentum : {0.0, 0.9}) {
    for (const double weight_decay : {0.0, 0.1}) {
      for (const bool first : {false, true}) {
        if (momentum == 0.0 && first) continue;  // without a buffer there is no first step
        SCOPED_TRACE(::testing::Message() << "momentum=" << momentum << " wd=" << weight_decay << " first=" << first);
        const SgdStep step = make_sgd_step(momentum, weight_decay, first);
        const SgdArrays arrays = SgdArrays::random(9, DType::Float64, step, 3);
        const SgdArrays before = arrays.copy();
        arrays.run(ref_backend(), step);
        const std::vector<double> p0 = values_of(before.param);
        const std::vector<double> g0 = values_of(before.grad);
        const std::vector<double> u0 = values_of(before.buffer);
        const std::vector<double> p1 = values_of(arrays.param);
        const std::vector<double> u1 = values_of(arrays.buffer);
        for (std::size_t i = 0; i < p0.size(); ++i) {
          const double g = g0[i] + weight_decay * p0[i];
          double delta = g;
          if (momentum != 0.0) {
            delta = first ? (1.0 - momentum) * g : momentum * u0[i] + (1.0 - momentum) * g;
            EXPECT_NEAR(u1[i], delta, 1e-14);
          }
          EXPECT_NEAR(p1[i], p0[i] - step.lr * delta, 1e-14);
        }
      }
    }
  }
}

TEST(FusedOptim, SgdCpuAndDefaultMatchRef) {
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const std::int64_t n : {0, 1, 7, 8, 9, 17, 65, 1000, 100003}) {
      for (const double momentum : {0.0, 0.9}) {
        for (const double weight_decay : {0.0, 0.05}) {
          for (const bool first : {false, true}) {
            if (momentum == 0.0 && first) continue;
            SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " n=" << n << " momentum=" << momentum
                                              << " wd=" << weight_decay << " first=" << first);
            const SgdStep step = make_sgd_step(momentum, weight_decay, first);
            const SgdArrays ref = SgdArrays::random(n, dtype, step, 11);
            const SgdArrays cpu1 = ref.copy();
            const SgdArrays cpu2 = ref.copy();
            const SgdArrays composed = ref.copy();
            ref.run(ref_backend(), step);
            const int saved = get_num_threads();
            set_num_threads(1);
            cpu1.run(cpu_backend(), step);
            set_num_threads(2);
            cpu2.run(cpu_backend(), step);
            set_num_threads(saved);
            // The base class's composition, called past the cpu backend's override.
            cpu_backend().composed_sgd_update(composed.param.view(), composed.grad.view(), composed.buffer_view(),
                                              step);
            // cpu runs ref's per-element code, on any number of threads: identical.
            EXPECT_EQ(values_of(ref.param), values_of(cpu1.param));
            EXPECT_EQ(values_of(ref.buffer), values_of(cpu1.buffer));
            EXPECT_EQ(values_of(cpu1.param), values_of(cpu2.param));
            EXPECT_EQ(values_of(cpu1.buffer), values_of(cpu2.buffer));
            // The composition rounds in the same order, one primitive at a time.
            const double rtol = dtype == DType::Float32 ? 1e-6 : 1e-14;
            expect_close(ref.param, composed.param, rtol, "param");
            if (ref.buffered) expect_close(ref.buffer, composed.buffer, rtol, "momentum_buffer");
          }
        }
      }
    }
  }
}

TEST(FusedOptim, SgdBackendNeedsABufferForMomentum) {
  const NDArray param = NDArray::zeros({4}, DType::Float32, cpu_device());
  const SgdStep step = make_sgd_step(0.9, 0.0, false);
  for (Backend* backend : {&ref_backend(), &cpu_backend()}) {
    EXPECT_THROW(backend->sgd_update(param.view(), param.view(), StridedView{}, step), RuntimeError);
  }
  EXPECT_THROW(cpu_backend().composed_sgd_update(param.view(), param.view(), StridedView{}, step), RuntimeError);
}

TEST(FusedOptim, SgdArrayFunctionChecksItsOperands) {
  NDArray param = NDArray::zeros({2, 3}, DType::Float32, cpu_device());
  NDArray u = NDArray::zeros({2, 3}, DType::Float32, cpu_device());
  const SgdStep step = make_sgd_step(0.9, 0.0, false);
  NDArray wrong_shape = NDArray::zeros({3, 2}, DType::Float32, cpu_device());
  EXPECT_THROW(sgd_update(param, wrong_shape, &u, step), ValueError);
  EXPECT_THROW(sgd_update(param, param, &wrong_shape, step), ValueError);
  NDArray wrong_dtype = NDArray::zeros({2, 3}, DType::Float64, cpu_device());
  EXPECT_THROW(sgd_update(param, param, &wrong_dtype, step), TypeError);
  NDArray transposed = NDArray::zeros({3, 2}, DType::Float32, cpu_device()).swapaxes(0, 1);
  EXPECT_THROW(sgd_update(transposed, param, &u, step), ValueError);
  EXPECT_THROW(sgd_update(param, param, &transposed, step), ValueError);
  NDArray on_ref = NDArray::zeros({2, 3}, DType::Float32, ref_device());
  EXPECT_THROW(sgd_update(param, on_ref, &u, step), RuntimeError);
  NDArray integers = NDArray::zeros({2, 3}, DType::Int32, cpu_device());
  EXPECT_THROW(sgd_update(integers, integers, nullptr, make_sgd_step(0.0, 0.0, false)), TypeError);
  EXPECT_THROW(sgd_update(param, param, nullptr, step), ValueError);  // momentum without a buffer
  // A transposed float64 gradient is fine: it is read through a compact float32 copy.
  NDArray grad = NDArray::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2}, cpu_device()).swapaxes(0, 1);
  sgd_update(param, grad, &u, make_sgd_step(0.5, 0.0, true));
  const std::vector<float> moved = param.to_vector<float>();
  const std::vector<float> expected = {-0.025F, -0.075F, -0.125F, -0.05F, -0.1F, -0.15F};
  for (std::size_t i = 0; i < moved.size(); ++i) EXPECT_FLOAT_EQ(moved[i], expected[i]) << i;
}

// A weight stored in one memory order and seen through a permuted view (needle.torch's Conv2d weight: OIHW
// over HWIO memory) is updated in place, with its state laid out alike, exactly as its contiguous twin.
TEST(FusedOptim, ArraysDenseInOneSharedOrderAreUpdatedInPlace) {
  const std::vector<std::int64_t> to_view = {3, 2, 0, 1};  // (kH, kW, I, O) memory seen as (O, I, kH, kW)
  const auto random_memory = [](std::uint64_t seed, bool positive) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> values(3 * 3 * 4 * 5);
    for (double& v : values) v = positive ? std::abs(normal(rng)) : normal(rng);
    return NDArray::from_vector(values, {3, 3, 4, 5}, cpu_device()).astype(DType::Float32);
  };
  const auto permuted = [&](const NDArray& memory) { return memory.permute(to_view); };
  const auto contiguous = [&](const NDArray& memory) { return memory.permute(to_view).copy(); };
  // The gradient arrives in the view's layout too, or as a contiguous array of the view's shape.
  for (const bool grad_contiguous : {false, true}) {
    NDArray p_mem = random_memory(1, false), m_mem = random_memory(2, false), v_mem = random_memory(3, true);
    const NDArray g_mem = random_memory(4, false);
    NDArray p = permuted(p_mem), m = permuted(m_mem), v = permuted(v_mem);
    NDArray p2 = contiguous(p_mem), m2 = contiguous(m_mem), v2 = contiguous(v_mem);
    const NDArray g = grad_contiguous ? contiguous(g_mem) : permuted(g_mem);
    const AdamStep step = make_step(true, 0.01);
    adam_update(p, g, m, v, step);
    adam_update(p2, contiguous(g_mem), m2, v2, step);
    EXPECT_EQ(values_of(p.copy()), values_of(p2));
    EXPECT_EQ(values_of(m.copy()), values_of(m2));
    EXPECT_EQ(values_of(v.copy()), values_of(v2));
    EXPECT_EQ(values_of(permuted(p_mem).copy()), values_of(p2));  // written in place, in p_mem itself

    NDArray q_mem = random_memory(5, false), u_mem = random_memory(6, false);
    NDArray q = permuted(q_mem), u = permuted(u_mem), q2 = contiguous(q_mem), u2 = contiguous(u_mem);
    const SgdStep sgd = make_sgd_step(0.9, 0.01, false);
    sgd_update(q, g, &u, sgd);
    sgd_update(q2, contiguous(g_mem), &u2, sgd);
    EXPECT_EQ(values_of(q.copy()), values_of(q2));
    EXPECT_EQ(values_of(u.copy()), values_of(u2));
  }
  // Not dense (every other row), or state in another order than the parameter: refused, nothing written.
  NDArray rows = NDArray::zeros({4, 3}, DType::Float32, cpu_device()).index({IndexItem::range(0, 4, 2)});
  NDArray buffer = NDArray::zeros({2, 3}, DType::Float32, cpu_device());
  EXPECT_THROW(sgd_update(rows, buffer, &buffer, make_sgd_step(0.9, 0.0, false)), ValueError);
  NDArray p = permuted(random_memory(7, false));
  const std::vector<double> before = values_of(p.copy());
  NDArray state = contiguous(random_memory(8, true));
  EXPECT_THROW(adam_update(p, state, state, state, make_step(false, 0.0)), ValueError);
  EXPECT_EQ(values_of(p.copy()), before);
}

}  // namespace
}  // namespace needle
