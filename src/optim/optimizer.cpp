// The optimizer base: parameter checks, gradient reset and the learning rate.
#include "needle/optim/optimizer.h"

#include <utility>

namespace needle::optim {

Optimizer::Optimizer(std::vector<Tensor> params, double lr, const char* name)
    : params_(std::move(params)), lr_(lr), name_(name) {
  NEEDLE_CHECK(lr >= 0.0, ValueError, name_, ": invalid learning rate ", lr, " (must be >= 0)");
  for (std::size_t i = 0; i < params_.size(); ++i) {
    NEEDLE_CHECK(params_[i].defined(), ValueError, name_, ": parameter ", i, " is an undefined tensor");
    NEEDLE_CHECK(is_floating(params_[i].dtype()), TypeError, name_, ": parameter ", i, " has dtype ",
                 dtype_name(params_[i].dtype()), "; only floating-point tensors can be optimized");
  }
}

void Optimizer::reset_grad() {
  for (Tensor& p : params_) p.reset_grad();
}

void Optimizer::set_lr(double lr) {
  NEEDLE_CHECK(lr >= 0.0, ValueError, name_, ": invalid learning rate ", lr, " (must be >= 0)");
  lr_ = lr;
}

}  // namespace needle::optim
