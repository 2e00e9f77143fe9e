// Optimizers: they update parameters in place from their accumulated gradients.
//
// Every update is array arithmetic (core/array_ops.h) on the parameters' values, computed in each
// parameter's dtype, outside the autograd graph: the new value replaces the old one through
// Tensor::set_value (Needle's `param.data = ...`), so a graph that still refers to the old value keeps it.
// Parameters without a gradient (never reached by backward, or reset) are skipped, as in PyTorch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "needle/autograd/tensor.h"

namespace needle::optim {

// An optimizer's (or scheduler's) state as flat named arrays, so that it fits a safetensors file next to
// a model's state dict. Scalars are 0-d arrays. Per-parameter entries are "state.<index>.<field>", the
// index being the parameter's position in params().
using OptimizerState = std::map<std::string, NDArray>;

// A 0-d array holding `value`: how state dicts store scalars (float64 and int64 keep them exact).
[[nodiscard]] NDArray state_scalar(double value);
[[nodiscard]] NDArray state_scalar(std::int64_t value);
// The value of state[key], a 0-d or one-element array, integral when `integral` (a step count) and
// floating otherwise. ValueError starting with `owner` ("Adam.load_state_dict") when it is missing or
// not such an array.
[[nodiscard]] Scalar read_state_scalar(const OptimizerState& state, const std::string& key, bool integral,
                                       const std::string& owner);

class Optimizer {
 public:
  // Throws ValueError for an undefined parameter or a negative learning rate, TypeError for a
  // parameter that is not floating point. `name` ("SGD", ...) starts every error message.
  Optimizer(std::vector<Tensor> params, double lr, const char* name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  Optimizer(Optimizer&&) = delete;
  Optimizer& operator=(Optimizer&&) = delete;

  // One update of every parameter that has a gradient.
  virtual void step() = 0;
  // Drops every parameter's gradient (Needle's reset_grad; PyTorch's zero_grad(set_to_none=True)).
  void reset_grad();
  void zero_grad() { reset_grad(); }

  [[nodiscard]] double lr() const { return lr_; }
  // Schedulers set the learning rate through this; ValueError when negative.
  void set_lr(double lr);
  [[nodiscard]] const std::vector<Tensor>& params() const { return params_; }
  [[nodiscard]] const char* name() const { return name_; }

  // Everything a resumed run needs to continue exactly where this one stopped: the learning rate
  // ("lr", float64), the number of parameters ("param_count", int64) and the subclass's buffers. The
  // arrays are the optimizer's own (never written in place), so the map stays valid after more steps.
  [[nodiscard]] virtual OptimizerState state_dict() const;
  // Restores a state_dict() of an optimizer of the same kind over parameters of the same count, shapes
  // and dtypes. Everything is validated first: a ValueError (unknown, missing or malformed key, wrong
  // shape or dtype) leaves the optimizer exactly as it was. The arrays are copied onto the parameters'
  // devices.
  virtual void load_state_dict(const OptimizerState& state);

 protected:
  // A validated state: the common scalars, and the per-parameter arrays by field, then by parameter
  // index, already copied to the parameter's device.
  struct CheckedState {
    double lr = 0.0;
    std::map<std::string, std::map<std::size_t, NDArray>> buffers;
    std::map<std::string, NDArray> scalars;
  };
  // Checks `state` against this optimizer: "lr" and "param_count" as state_dict() writes them, every
  // name in `scalar_keys` present as a 0-d or one-element array, and every other key of the form
  // "state.<index>.<field>" with a field from `buffer_fields` and the shape and dtype of that parameter.
  [[nodiscard]] CheckedState check_state(const OptimizerState& state, const std::vector<std::string>& buffer_fields,
                                         const std::vector<std::string>& scalar_keys) const;
  // The common entries of state_dict().
  [[nodiscard]] OptimizerState base_state() const;

 private:
  std::vector<Tensor> params_;
  double lr_;
  const char* name_;
};

// Needle's SGD (hw2): with g = grad + weight_decay * p,
//   u <- momentum * u + (1 - momentum) * g,   p <- p - lr * u,   u starting at 0.
// This is an exponential moving average of the gradient, not PyTorch's `u <- momentum * u + g`: the
// (1 - momentum) factor keeps the step size independent of momentum, and courses written for Needle
// expect exactly these values. With momentum 0 both agree (p <- p - lr * g).
class SGD final : public Optimizer {
 public:
  // ValueError unless 0 <= momentum < 1 and weight_decay >= 0.
  explicit SGD(std::vector<Tensor> params, double lr = 0.01, double momentum = 0.0, double weight_decay = 0.0);
  void step() override;
  // Adds the momentum buffers, "state.<i>.momentum_buffer", of the parameters updated so far.
  [[nodiscard]] OptimizerState state_dict() const override;
  void load_state_dict(const OptimizerState& state) override;

  // The hyper-parameters, also settable between steps (ValueError outside the ranges above).
  [[nodiscard]] double momentum() const { return momentum_; }
  void set_momentum(double momentum);
  [[nodiscard]] double weight_decay() const { return weight_decay_; }
  void set_weight_decay(double weight_decay);

 private:
  double momentum_ = 0.0;
  double weight_decay_ = 0.0;
  std::map<std::size_t, NDArray> velocity_;  // by parameter index, created at the first update
};

// Needle's Adam (hw2) with bias correction; weight decay is L2 regularization added to the gradient:
//   g = grad + weight_decay * p,  m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
//   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// t counts calls to step() (one shared counter, as in Needle).
class Adam : public Optimizer {
 public:
  // ValueError unless 0 <= beta < 1, eps >= 0 and weight_decay >= 0.
  explicit Adam(std::vector<Tensor> params, double lr = 0.01, double beta1 = 0.9, double beta2 = 0.999,
                double eps = 1e-8, double weight_decay = 0.0);
  void step() override;
  // Adds the step count "step" (int64) and the moments "state.<i>.exp_avg" and "state.<i>.exp_avg_sq" of
  // the parameters updated so far.
  [[nodiscard]] OptimizerState state_dict() const override;
  void load_state_dict(const OptimizerState& state) override;

  [[nodiscard]] std::int64_t steps() const { return t_; }
  // The hyper-parameters, also settable between steps (ValueError outside the ranges above).
  [[nodiscard]] double beta1() const { return beta1_; }
  void set_beta1(double beta1);
  [[nodiscard]] double beta2() const { return beta2_; }
  void set_beta2(double beta2);
  [[nodiscard]] double eps() const { return eps_; }
  void set_eps(double eps);
  [[nodiscard]] double weight_decay() const { return weight_decay_; }
  void set_weight_decay(double weight_decay);

 protected:
  // AdamW decays the parameter itself instead of adding weight_decay * p to the gradient.
  Adam(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay,
       bool decoupled, const char* name);

 private:
  double beta1_ = 0.0;
  double beta2_ = 0.0;
  double eps_ = 0.0;
  double weight_decay_ = 0.0;
  bool decoupled_;
  std::int64_t t_ = 0;
  std::map<std::size_t, NDArray> m_;
  std::map<std::size_t, NDArray> v_;
};

// PyTorch's AdamW: decoupled weight decay, p <- p - lr * weight_decay * p, then the Adam update with
// the raw gradient. The default learning rate is Adam's here (0.01, Needle's) so switching between the
// two changes only the decay; weight_decay defaults to PyTorch's 0.01.
class AdamW final : public Adam {
 public:
  explicit AdamW(std::vector<Tensor> params, double lr = 0.01, double beta1 = 0.9, double beta2 = 0.999,
                 double eps = 1e-8, double weight_decay = 0.01);
};

}  // namespace needle::optim
