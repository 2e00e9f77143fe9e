// Learning-rate schedulers: each sets its optimizer's learning rate from a closed-form function of the
// number of step() calls, PyTorch's convention: call scheduler.step() after optimizer.step(), once per
// epoch (or per iteration, as the schedule is meant). The base learning rate is the optimizer's at the
// scheduler's construction.
#pragma once

#include <cstdint>
#include <memory>

#include "needle/optim/optimizer.h"

namespace needle::optim {

class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;
  LRScheduler(LRScheduler&&) = delete;
  LRScheduler& operator=(LRScheduler&&) = delete;

  // Advances the schedule by one and sets the optimizer's learning rate.
  void step();
  // The learning rate of the current step (what the optimizer uses now).
  [[nodiscard]] double get_lr() const { return lr_at(last_epoch_); }
  // The learning rate `epoch` steps after construction.
  [[nodiscard]] virtual double lr_at(std::int64_t epoch) const = 0;
  [[nodiscard]] std::int64_t last_epoch() const { return last_epoch_; }
  [[nodiscard]] double base_lr() const { return base_lr_; }
  [[nodiscard]] Optimizer& optimizer() const { return optimizer_; }

  // "last_epoch" (int64) and "base_lr" (float64) as 0-d arrays: the schedule's parameters are the
  // constructor's, so these two decide every later learning rate.
  [[nodiscard]] OptimizerState state_dict() const;
  // Restores a state_dict() and sets the optimizer's learning rate to the restored step's. ValueError,
  // changing nothing, for a missing, unknown or malformed entry.
  void load_state_dict(const OptimizerState& state);

 protected:
  // Writes lr_at(last_epoch) into the optimizer. Derived constructors call it once, because the
  // schedule's first value (a warm-up's start) applies before the first step.
  void apply() const;

 private:
  Optimizer& optimizer_;
  double base_lr_;
  std::int64_t last_epoch_ = 0;
};

// base_lr * gamma^(epoch / step_size) (integer division): decays by gamma every step_size steps.
class StepLR final : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);
  [[nodiscard]] double lr_at(std::int64_t epoch) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

// eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 (PyTorch's closed form, without
// restarts): base_lr at 0, eta_min at T_max, and periodic beyond it as PyTorch's schedule is.
class CosineAnnealingLR final : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min = 0.0);  // NOLINT(*-identifier-naming)
  [[nodiscard]] double lr_at(std::int64_t epoch) const override;

 private:
  std::int64_t t_max_;
  double eta_min_;
};

// Linear warm-up (PyTorch's LinearLR to a factor of 1): base_lr * (start_factor + (1 - start_factor) *
// epoch / warmup_steps) for epoch < warmup_steps. Afterwards the learning rate is base_lr, or, when
// `then` is given, then->lr_at(epoch - warmup_steps): the warm-up composes with any schedule, which
// starts counting when the warm-up ends. `then` must drive the same optimizer.
class LinearWarmup final : public LRScheduler {
 public:
  LinearWarmup(Optimizer& optimizer, std::int64_t warmup_steps, double start_factor = 1.0 / 3.0,
               std::shared_ptr<const LRScheduler> then = nullptr);
  [[nodiscard]] double lr_at(std::int64_t epoch) const override;

 private:
  std::int64_t warmup_steps_;
  double start_factor_;
  std::shared_ptr<const LRScheduler> then_;
};

}  // namespace needle::optim
