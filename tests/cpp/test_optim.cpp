// Optimizers and gradient clipping: each against updates computed by hand (three steps on a small
// tensor with fixed gradients), dtypes kept, parameters without gradients skipped, argument errors.
#include <gtest/gtest.h>
#include <needle/needle.h>
#include <needle/optim/clip_grad.h>
#include <needle/optim/optimizer.h>

#include <cmath>
#include <vector>

#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_error;
using testing::values_of;

// The gradients fed to every optimizer, one per step (set directly, so no autograd is involved).
const std::vector<std::vector<double>> kGrads = {{0.5, -1.0}, {1.0, 2.0}, {-0.5, 0.25}};

class OptimTest : public ::testing::TestWithParam<Device> {
 protected:
  [[nodiscard]] Tensor param(const std::vector<double>& values, DType dtype = DType::Float64) const {
    return Tensor(NDArray::from_vector(values, {static_cast<std::int64_t>(values.size())}, GetParam()).astype(dtype),
                  true);
  }
  [[nodiscard]] Tensor grad(const std::vector<double>& values, DType dtype = DType::Float64) const {
    return Tensor(NDArray::from_vector(values, {static_cast<std::int64_t>(values.size())}, GetParam()).astype(dtype));
  }

  // Runs three steps of `opt` on p = [1, -2] with kGrads and compares p after each with `expected`.
  void expect_steps(optim::Optimizer& opt, Tensor p, const std::vector<std::vector<double>>& expected) const {
    for (std::size_t step = 0; step < expected.size(); ++step) {
      SCOPED_TRACE(str("step ", step + 1));
      p.set_grad(grad(kGrads[step]));
      opt.step();
      const std::vector<double> got = values_of(p);
      ASSERT_EQ(got.size(), expected[step].size());
      for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[step][i], 1e-12);
    }
  }
};

TEST_P(OptimTest, PlainSGDSubtractsLrTimesGrad) {
  const Tensor p = param({1, -2});
  optim::SGD opt({p}, 0.1);
  // p - 0.1 * g, step by step: [0.95, -1.9], [0.85, -2.1], [0.9, -2.125].
  expect_steps(opt, p, {{0.95, -1.9}, {0.85, -2.1}, {0.9, -2.125}});
}

TEST_P(OptimTest, SGDMomentumIsNeedlesMovingAverageWithWeightDecay) {
  const Tensor p = param({1, -2});
  optim::SGD opt({p}, 0.1, 0.9, 0.01);
  // Step 1: g = [0.5 + 0.01, -1 - 0.02] = [0.51, -1.02]; u = 0.1 g = [0.051, -0.102];
  //         p = [1 - 0.0051, -2 + 0.0102] = [0.9949, -1.9898].
  // Step 2: g = [1 + 0.009949, 2 - 0.019898] = [1.009949, 1.980102]; u = 0.9 u + 0.1 g
  //         = [0.1468949, 0.1062102]; p = [0.9949 - 0.01468949, -1.9898 - 0.01062102].
  // Step 3: g = [-0.5 + 0.0098021051, 0.25 - 0.0200042102]; u = 0.9 u + 0.1 g; p -= 0.1 u.
  expect_steps(opt, p, {{0.9949, -1.9898}, {0.98021051, -2.00042102}, {0.971891947949, -2.012279895898}});
}

TEST_P(OptimTest, AdamWithBiasCorrection) {
  const Tensor p = param({1, -2});
  optim::Adam opt({p}, 0.1);
  // Step 1: the corrected moments are g and g^2, so p moves by lr * g / (|g| + eps) ~ lr * sign(g).
  expect_steps(opt, p,
               {{0.900000002, -1.900000001},
                {0.8034818006385094, -1.9366103534720749},
                {0.7614728708755779, -1.9718369581894204}});
  EXPECT_EQ(opt.steps(), 3);
}

TEST_P(OptimTest, AdamWeightDecayIsAddedToTheGradient) {
  const Tensor p = param({1, -2});
  optim::Adam opt({p}, 0.1, 0.9, 0.999, 1e-8, 0.1);
  expect_steps(opt, p,
               {{0.9000000016666666, -1.9000000008333333},
                {0.8025029703202308, -1.9250178784643248},
                {0.751527658480396, -1.94604186133783}});
}

TEST_P(OptimTest, AdamWDecaysTheParameterItself) {
  const Tensor p = param({1, -2});
  optim::AdamW opt({p}, 0.1, 0.9, 0.999, 1e-8, 0.1);
  // Step 1: p * (1 - 0.01) = [0.99, -1.98], then the Adam step of ~0.1: [0.89, -1.88].
  expect_steps(opt, p,
               {{0.890000002, -1.880000001},
                {0.7845818006185094, -1.897810353462075},
                {0.7347270528493928, -1.9140588546447996}});
}

TEST_P(OptimTest, UpdatesStayInTheParameterDtypeAndSkipMissingGradients) {
  const Tensor a = param({1, 2}, DType::Float32);
  const Tensor b = param({3, 4}, DType::Float32);
  optim::Adam opt({a, b}, 0.5);
  // d/da sum(a * a) = 2a; b is not part of the loss, so it gets no gradient and is left alone.
  ops::summation(ops::multiply(a, a)).backward();
  opt.step();
  EXPECT_EQ(a.dtype(), DType::Float32);
  EXPECT_TRUE(a.is_leaf());
  EXPECT_FALSE(b.grad().defined());
  const std::vector<double> got = values_of(a);
  EXPECT_NEAR(got[0], 0.5, 1e-6);
  EXPECT_NEAR(got[1], 1.5, 1e-6);
  EXPECT_EQ(values_of(b), (std::vector<double>{3, 4}));
  opt.reset_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST_P(OptimTest, LearningRateCanBeChanged) {
  Tensor p = param({1});
  optim::SGD opt({p}, 0.1);
  opt.set_lr(0.5);
  EXPECT_EQ(opt.lr(), 0.5);
  p.set_grad(grad({2}));
  opt.step();
  EXPECT_EQ(values_of(p), (std::vector<double>{0}));
  expect_error<ValueError>([&] { opt.set_lr(-1); }, "SGD: invalid learning rate -1");
}

TEST_P(OptimTest, RejectsBadArguments) {
  Tensor p = param({1});
  expect_error<ValueError>([&] { optim::SGD({p}, -0.1); }, "SGD: invalid learning rate");
  expect_error<ValueError>([&] { optim::SGD({p}, 0.1, 1.0); }, "SGD: invalid momentum 1");
  expect_error<ValueError>([&] { optim::SGD({p}, 0.1, 0.0, -1.0); }, "SGD: invalid weight_decay");
  expect_error<ValueError>([&] { optim::Adam({p}, 0.1, 1.5); }, "Adam: invalid beta1 1.5");
  expect_error<ValueError>([&] { optim::AdamW({p}, 0.1, 0.9, -0.1); }, "AdamW: invalid beta2");
  expect_error<ValueError>([&] { optim::Adam({p}, 0.1, 0.9, 0.999, -1.0); }, "Adam: invalid eps");
  expect_error<ValueError>([&] { optim::Adam({Tensor()}); }, "Adam: parameter 0 is an undefined tensor");
  const Tensor ints(NDArray::from_vector(std::vector<std::int64_t>{1}, {1}, GetParam()));
  expect_error<TypeError>([&] { optim::SGD({p, ints}); }, "SGD: parameter 1 has dtype int64");
}

TEST_P(OptimTest, ClipGradNormScalesEveryGradientTogether) {
  Tensor a = param({3, 0});
  Tensor b = param({0, 4}, DType::Float32);
  const Tensor c = param({7});  // no gradient: ignored
  a.set_grad(grad({3, 0}));
  b.set_grad(grad({0, 4}, DType::Float32));
  // The global norm is sqrt(9 + 16) = 5; scaled by 1 / (5 + 1e-6).
  EXPECT_NEAR(optim::clip_grad_norm({a, b, c}, 1.0), 5.0, 1e-12);
  const double scale = 1.0 / (5.0 + 1e-6);
  EXPECT_NEAR(values_of(a.grad())[0], 3 * scale, 1e-12);
  EXPECT_NEAR(values_of(b.grad())[1], 4 * scale, 1e-6);
  EXPECT_EQ(b.grad().dtype(), DType::Float32);
  EXPECT_FALSE(c.grad().defined());
  // Under the limit nothing changes, but the norm is still reported.
  EXPECT_NEAR(optim::clip_grad_norm({a, b}, 10.0), 5.0 * scale, 1e-6);
  EXPECT_NEAR(values_of(a.grad())[0], 3 * scale, 1e-12);
  expect_error<ValueError>([&] { optim::clip_grad_norm({a}, -1.0); }, "clip_grad_norm: max_norm must be >= 0");
}

INSTANTIATE_TEST_SUITE_P(Devices, OptimTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
