// SGD with Needle's momentum (an exponential moving average of the gradient) and L2 weight decay.
#include <string>
#include <utility>

#include "needle/core/array_ops.h"
#include "needle/optim/optimizer.h"

namespace needle::optim {

SGD::SGD(std::vector<Tensor> params, double lr, double momentum, double weight_decay)
    : Optimizer(std::move(params), lr, "SGD"), momentum_(momentum), weight_decay_(weight_decay) {
  NEEDLE_CHECK(momentum >= 0.0 && momentum < 1.0, ValueError, "SGD: invalid momentum ", momentum,
               " (must be in [0, 1))");
  NEEDLE_CHECK(weight_decay >= 0.0, ValueError, "SGD: invalid weight_decay ", weight_decay, " (must be >= 0)");
}

void SGD::step() {
  const std::vector<Tensor>& ps = params();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    Tensor p = ps[i];
    const Tensor grad = p.grad();
    if (!grad.defined()) continue;
    const NDArray& value = p.value();
    // Scalars are weak operands, so every product stays in the parameter's dtype.
    NDArray g = grad.value().astype(value.dtype());
    if (weight_decay_ != 0.0) g = g + value * weight_decay_;
    if (momentum_ != 0.0) {
      auto found = velocity_.find(i);
      // u starts at 0, so the first update is (1 - momentum) * g.
      NDArray u = found == velocity_.end() ? g * (1.0 - momentum_) : found->second * momentum_ + g * (1.0 - momentum_);
      g = u;
      velocity_.insert_or_assign(i, std::move(u));
    }
    p.set_value(value - g * lr());
  }
}

OptimizerState SGD::state_dict() const {
  OptimizerState state = base_state();
  for (const auto& [index, buffer] : velocity_) {
    state.emplace("state." + std::to_string(index) + ".momentum_buffer", buffer);
  }
  return state;
}

void SGD::load_state_dict(const OptimizerState& state) {
  CheckedState checked = check_state(state, {"momentum_buffer"}, {});
  set_lr(checked.lr);
  velocity_ = std::move(checked.buffers["momentum_buffer"]);
}

}  // namespace needle::optim
