// Learning-rate schedulers: each against values computed by hand, applied to the optimizer at every
// step; the warm-up alone and composed with a cosine schedule; argument errors.
#include <gtest/gtest.h>
#include <needle/needle.h>
#include <needle/optim/lr_scheduler.h>
#include <needle/optim/optimizer.h>

#include <cmath>
#include <memory>
#include <numbers>
#include <vector>

#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_error;

Tensor some_param() { return Tensor(NDArray::ones({2}, DType::Float32), true); }

// Steps `scheduler` and checks both get_lr() and the optimizer's learning rate against `expected`
// (expected[0] is the value right after construction).
void expect_schedule(optim::LRScheduler& scheduler, const optim::Optimizer& opt, const std::vector<double>& expected) {
  for (std::size_t epoch = 0; epoch < expected.size(); ++epoch) {
    SCOPED_TRACE(str("epoch ", epoch));
    if (epoch > 0) scheduler.step();
    EXPECT_EQ(scheduler.last_epoch(), static_cast<std::int64_t>(epoch));
    EXPECT_NEAR(scheduler.get_lr(), expected[epoch], 1e-15);
    EXPECT_NEAR(opt.lr(), expected[epoch], 1e-15);
  }
}

TEST(SchedulerTest, StepLRDecaysEveryStepSize) {
  optim::SGD opt({some_param()}, 0.1);
  optim::StepLR scheduler(opt, 2, 0.5);
  expect_schedule(scheduler, opt, {0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125});
}

TEST(SchedulerTest, CosineAnnealingFollowsHalfACosine) {
  optim::Adam opt({some_param()}, 1.0);
  optim::CosineAnnealingLR scheduler(opt, 4, 0.2);
  // 0.2 + 0.8 * (1 + cos(pi * e / 4)) / 2 for e = 0..4: 1, 0.2 + 0.4 (1 + sqrt(2)/2), 0.6,
  // 0.2 + 0.4 (1 - sqrt(2)/2), 0.2; then it rises again as PyTorch's schedule does.
  const double h = std::numbers::sqrt2 / 2;
  expect_schedule(scheduler, opt, {1.0, 0.2 + 0.4 * (1 + h), 0.6, 0.2 + 0.4 * (1 - h), 0.2, 0.2 + 0.4 * (1 - h)});
}

TEST(SchedulerTest, LinearWarmupRisesToTheBaseRate) {
  optim::SGD opt({some_param()}, 0.8);
  optim::LinearWarmup scheduler(opt, 4, 0.25);
  // 0.8 * (0.25 + 0.75 * e / 4): 0.2, 0.35, 0.5, 0.65, then 0.8 for good.
  expect_schedule(scheduler, opt, {0.2, 0.35, 0.5, 0.65, 0.8, 0.8});
}

TEST(SchedulerTest, WarmupComposesWithCosine) {
  optim::SGD opt({some_param()}, 1.0);
  auto cosine = std::make_shared<optim::CosineAnnealingLR>(opt, 2);
  optim::LinearWarmup scheduler(opt, 2, 0.5, cosine);
  // Warm-up 0.5, 0.75; then the cosine from its start: 1, 0.5, 0.
  expect_schedule(scheduler, opt, {0.5, 0.75, 1.0, 0.5, 0.0});
}

TEST(SchedulerTest, SchedulersDriveTheOptimizersUpdate) {
  Tensor p(NDArray::from_vector(std::vector<double>{0}, {1}), true);
  optim::SGD opt({p}, 1.0);
  optim::StepLR scheduler(opt, 1, 0.5);
  for (int i = 0; i < 3; ++i) {
    p.set_grad(Tensor(NDArray::from_vector(std::vector<double>{1}, {1})));
    opt.step();
    scheduler.step();
  }
  // Steps of 1, 0.5 and 0.25.
  EXPECT_EQ(p.value().to_vector<double>(), (std::vector<double>{-1.75}));
}

TEST(SchedulerTest, StateDictResumesTheSchedule) {
  optim::SGD opt({some_param()}, 0.4);
  optim::CosineAnnealingLR scheduler(opt, 8);
  for (int i = 0; i < 3; ++i) scheduler.step();
  const optim::OptimizerState state = scheduler.state_dict();

  optim::SGD fresh_opt({some_param()}, 0.4);
  optim::CosineAnnealingLR resumed(fresh_opt, 8);
  resumed.load_state_dict(state);
  EXPECT_EQ(resumed.last_epoch(), 3);
  EXPECT_EQ(fresh_opt.lr(), opt.lr());  // the restored step's rate is applied at once
  scheduler.step();
  resumed.step();
  EXPECT_EQ(fresh_opt.lr(), opt.lr());

  optim::OptimizerState extra = state;
  extra.emplace("T_max", optim::state_scalar(std::int64_t{8}));
  expect_error<ValueError>([&] { resumed.load_state_dict(extra); }, "unexpected key 'T_max'");
  optim::OptimizerState missing = state;
  missing.erase("base_lr");
  expect_error<ValueError>([&] { resumed.load_state_dict(missing); }, "missing key 'base_lr'");
  EXPECT_EQ(resumed.last_epoch(), 4);
}

TEST(SchedulerTest, RejectsBadArguments) {
  optim::SGD opt({some_param()}, 0.1);
  optim::SGD other({some_param()}, 0.1);
  expect_error<ValueError>([&] { optim::StepLR(opt, 0); }, "StepLR: step_size must be positive, got 0");
  expect_error<ValueError>([&] { optim::CosineAnnealingLR(opt, -3); }, "CosineAnnealingLR: T_max must be positive");
  expect_error<ValueError>([&] { optim::LinearWarmup(opt, 3, 0.0); }, "LinearWarmup: start_factor must be in (0, 1]");
  auto foreign = std::make_shared<optim::StepLR>(other, 1);
  expect_error<ValueError>([&] { optim::LinearWarmup(opt, 3, 0.5, foreign); }, "different optimizer");
}

}  // namespace
}  // namespace needle
