// Learning-rate schedules in closed form, so any step's value is computed without replaying the others.
#include "needle/optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <utility>

namespace needle::optim {

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer), base_lr_(optimizer.lr()) {}

void LRScheduler::step() {
  ++last_epoch_;
  apply();
}

OptimizerState LRScheduler::state_dict() const {
  return {{"last_epoch", state_scalar(last_epoch_)}, {"base_lr", state_scalar(base_lr_)}};
}

void LRScheduler::load_state_dict(const OptimizerState& state) {
  const std::string owner = "LRScheduler.load_state_dict";
  for (const auto& entry : state) {
    NEEDLE_CHECK(entry.first == "last_epoch" || entry.first == "base_lr", ValueError, owner, ": unexpected key '",
                 entry.first, "'");
  }
  const auto epoch = read_state_scalar(state, "last_epoch", /*integral=*/true, owner).to<std::int64_t>();
  const auto base_lr = read_state_scalar(state, "base_lr", /*integral=*/false, owner).to<double>();
  NEEDLE_CHECK(epoch >= 0, ValueError, owner, ": invalid last_epoch ", epoch, " (must be >= 0)");
  NEEDLE_CHECK(base_lr >= 0.0, ValueError, owner, ": invalid base_lr ", base_lr, " (must be >= 0)");
  last_epoch_ = epoch;
  base_lr_ = base_lr;
  apply();
}

void LRScheduler::apply() const { optimizer_.set_lr(lr_at(last_epoch_)); }

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  NEEDLE_CHECK(step_size > 0, ValueError, "StepLR: step_size must be positive, got ", step_size);
  NEEDLE_CHECK(gamma >= 0.0, ValueError, "StepLR: gamma must be >= 0, got ", gamma);
  apply();
}

double StepLR::lr_at(std::int64_t epoch) const {
  const std::int64_t decays = epoch / step_size_;  // whole periods completed: integer division on purpose
  return base_lr() * std::pow(gamma_, static_cast<double>(decays));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min)
    : LRScheduler(optimizer), t_max_(T_max), eta_min_(eta_min) {
  NEEDLE_CHECK(T_max > 0, ValueError, "CosineAnnealingLR: T_max must be positive, got ", T_max);
  NEEDLE_CHECK(eta_min >= 0.0, ValueError, "CosineAnnealingLR: eta_min must be >= 0, got ", eta_min);
  apply();
}

double CosineAnnealingLR::lr_at(std::int64_t epoch) const {
  const double phase = std::numbers::pi * static_cast<double>(epoch) / static_cast<double>(t_max_);
  return eta_min_ + (base_lr() - eta_min_) * (1.0 + std::cos(phase)) / 2.0;
}

LinearWarmup::LinearWarmup(Optimizer& optimizer, std::int64_t warmup_steps, double start_factor,
                           std::shared_ptr<const LRScheduler> then)
    : LRScheduler(optimizer), warmup_steps_(warmup_steps), start_factor_(start_factor), then_(std::move(then)) {
  NEEDLE_CHECK(warmup_steps >= 0, ValueError, "LinearWarmup: warmup_steps must be >= 0, got ", warmup_steps);
  NEEDLE_CHECK(start_factor > 0.0 && start_factor <= 1.0, ValueError,
               "LinearWarmup: start_factor must be in (0, 1], got ", start_factor);
  NEEDLE_CHECK(then_ == nullptr || &then_->optimizer() == &optimizer, ValueError,
               "LinearWarmup: the schedule after the warm-up drives a different optimizer");
  apply();
}

double LinearWarmup::lr_at(std::int64_t epoch) const {
  if (epoch < warmup_steps_) {
    const double progress = static_cast<double>(epoch) / static_cast<double>(warmup_steps_);
    return base_lr() * (start_factor_ + (1.0 - start_factor_) * progress);
  }
  return then_ ? then_->lr_at(epoch - warmup_steps_) : base_lr();
}

}  // namespace needle::optim
