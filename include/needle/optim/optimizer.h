// Optimizers: they update parameters in place from their accumulated gradients.
//
// Every update is array arithmetic (core/array_ops.h) on the parameters' values, computed in each
// parameter's dtype, outside the autograd graph: the new value replaces the old one through
// Tensor::set_value (Needle's `param.data = ...`), so a graph that still refers to the old value keeps it.
// Parameters without a gradient (never reached by backward, or reset) are skipped, as in PyTorch.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "needle/autograd/tensor.h"

namespace needle::optim {

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

  [[nodiscard]] double momentum() const { return momentum_; }
  [[nodiscard]] double weight_decay() const { return weight_decay_; }

 private:
  double momentum_;
  double weight_decay_;
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

  [[nodiscard]] std::int64_t steps() const { return t_; }

 protected:
  // AdamW decays the parameter itself instead of adding weight_decay * p to the gradient.
  Adam(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay,
       bool decoupled, const char* name);

 private:
  double beta1_;
  double beta2_;
  double eps_;
  double weight_decay_;
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
