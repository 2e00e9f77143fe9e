// SGD with Needle's momentum (an exponential moving average of the gradient) and L2 weight decay.
#include <string>
#include <utility>

#include "needle/core/array_ops.h"
#include "needle/core/fused_ops.h"
#include "needle/optim/optimizer.h"

namespace needle::optim {

SGD::SGD(std::vector<Tensor> params, double lr, double momentum, double weight_decay)
    : Optimizer(std::move(params), lr, "SGD") {
  set_momentum(momentum);
  set_weight_decay(weight_decay);
}

void SGD::set_momentum(double momentum) {
  NEEDLE_CHECK(momentum >= 0.0 && momentum < 1.0, ValueError, "SGD: invalid momentum ", momentum,
               " (must be in [0, 1))");
  momentum_ = momentum;
}

void SGD::set_weight_decay(double weight_decay) {
  NEEDLE_CHECK(weight_decay >= 0.0, ValueError, "SGD: invalid weight_decay ", weight_decay, " (must be >= 0)");
  weight_decay_ = weight_decay;
}

void SGD::step() {
  const std::vector<Tensor>& ps = params();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    Tensor p = ps[i];
    const Tensor grad = p.grad();
    if (!grad.defined()) continue;
    SgdStep hyper;
    hyper.lr = lr();
    hyper.momentum = momentum_;
    hyper.weight_decay = weight_decay_;
    // The update runs in place, in one pass (needle::sgd_update); a parameter that is a strided view (rare)
    // is updated in a compact copy that then replaces it.
    NDArray value = p.value();
    const bool in_place = value.is_compact();
    if (!in_place) value = value.compact();
    NDArray* buffer = nullptr;
    if (momentum_ != 0.0) {
      auto found = velocity_.find(i);
      if (found == velocity_.end()) {
        // u starts at 0, so the first update writes (1 - momentum) * g without reading the buffer.
        found = velocity_.emplace(i, NDArray::empty(value.shape(), value.dtype(), value.device())).first;
        hyper.first = true;
      } else if (!found->second.is_compact()) {
        found->second = found->second.compact();  // a loaded buffer may be any view
      }
      buffer = &found->second;
    }
    sgd_update(value, grad.value(), buffer, hyper);
    if (!in_place) p.set_value(value);
  }
}

OptimizerState SGD::state_dict() const {
  OptimizerState state = base_state();
  for (const auto& [index, buffer] : velocity_) {
    // A copy: step() updates the buffers in place, and a saved state must not change with later steps.
    state.emplace("state." + std::to_string(index) + ".momentum_buffer", buffer.copy());
  }
  return state;
}

void SGD::load_state_dict(const OptimizerState& state) {
  CheckedState checked = check_state(state, {"momentum_buffer"}, {});
  set_lr(checked.lr);
  velocity_ = std::move(checked.buffers["momentum_buffer"]);
}

}  // namespace needle::optim
