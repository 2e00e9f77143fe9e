// Adam (Needle's, with bias correction and L2 weight decay) and AdamW (PyTorch's decoupled decay).
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "needle/core/array_ops.h"
#include "needle/core/fused_ops.h"
#include "needle/optim/optimizer.h"

namespace needle::optim {

Adam::Adam(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay)
    : Adam(std::move(params), lr, beta1, beta2, eps, weight_decay, /*decoupled=*/false, "Adam") {}

Adam::Adam(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay,
           bool decoupled, const char* name)
    : Optimizer(std::move(params), lr, name), decoupled_(decoupled) {
  set_beta1(beta1);
  set_beta2(beta2);
  set_eps(eps);
  set_weight_decay(weight_decay);
}

void Adam::set_beta1(double beta1) {
  NEEDLE_CHECK(beta1 >= 0.0 && beta1 < 1.0, ValueError, name(), ": invalid beta1 ", beta1, " (must be in [0, 1))");
  beta1_ = beta1;
}

void Adam::set_beta2(double beta2) {
  NEEDLE_CHECK(beta2 >= 0.0 && beta2 < 1.0, ValueError, name(), ": invalid beta2 ", beta2, " (must be in [0, 1))");
  beta2_ = beta2;
}

void Adam::set_eps(double eps) {
  NEEDLE_CHECK(eps >= 0.0, ValueError, name(), ": invalid eps ", eps, " (must be >= 0)");
  eps_ = eps;
}

void Adam::set_weight_decay(double weight_decay) {
  NEEDLE_CHECK(weight_decay >= 0.0, ValueError, name(), ": invalid weight_decay ", weight_decay, " (must be >= 0)");
  weight_decay_ = weight_decay;
}

void Adam::step() {
  // One counter for the whole optimizer, as in Needle: a parameter that first gets a gradient late is
  // corrected with the global t (PyTorch keeps one per parameter; they agree when all train together).
  ++t_;
  AdamStep hyper;
  hyper.lr = lr();
  hyper.beta1 = beta1_;
  hyper.beta2 = beta2_;
  hyper.eps = eps_;
  hyper.weight_decay = weight_decay_;
  hyper.correction1 = 1.0 - std::pow(beta1_, static_cast<double>(t_));
  hyper.correction2 = 1.0 - std::pow(beta2_, static_cast<double>(t_));
  hyper.decoupled = decoupled_;
  const std::vector<Tensor>& ps = params();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    Tensor p = ps[i];
    const Tensor grad = p.grad();
    if (!grad.defined()) continue;
    // The update runs in place, in one pass (needle::adam_update); a parameter that is a strided view (rare)
    // is updated in a compact copy that then replaces it.
    NDArray value = p.value();
    const bool in_place = value.is_compact();
    if (!in_place) value = value.compact();
    // Both moments start at 0, as in the paper; a loaded moment may be any view, so it is made compact.
    const auto moment = [&](std::map<std::size_t, NDArray>& moments) -> NDArray& {
      auto found = moments.find(i);
      if (found == moments.end()) {
        found = moments.emplace(i, NDArray::zeros(value.shape(), value.dtype(), value.device())).first;
      } else if (!found->second.is_compact()) {
        found->second = found->second.compact();
      }
      return found->second;
    };
    NDArray& m = moment(m_);
    NDArray& v = moment(v_);
    adam_update(value, grad.value(), m, v, hyper);
    if (!in_place) p.set_value(value);
  }
}

OptimizerState Adam::state_dict() const {
  OptimizerState state = base_state();
  state.emplace("step", state_scalar(t_));
  // Copies: step() updates the moments in place, and a saved state must not change with later steps.
  for (const auto& [index, moment] : m_) state.emplace("state." + std::to_string(index) + ".exp_avg", moment.copy());
  for (const auto& [index, moment] : v_) {
    state.emplace("state." + std::to_string(index) + ".exp_avg_sq", moment.copy());
  }
  return state;
}

void Adam::load_state_dict(const OptimizerState& state) {
  const std::string owner = std::string(name()) + ".load_state_dict";
  CheckedState checked = check_state(state, {"exp_avg", "exp_avg_sq"}, {"step"});
  const auto steps = read_state_scalar(checked.scalars, "step", /*integral=*/true, owner).to<std::int64_t>();
  NEEDLE_CHECK(steps >= 0, ValueError, owner, ": invalid step count ", steps, " (must be >= 0)");
  std::map<std::size_t, NDArray>& m = checked.buffers["exp_avg"];
  std::map<std::size_t, NDArray>& v = checked.buffers["exp_avg_sq"];
  // step() updates both moments together: one without the other is a damaged state.
  for (const auto& entry : m) {
    NEEDLE_CHECK(v.count(entry.first) != 0, ValueError, owner, ": key 'state.", entry.first,
                 ".exp_avg' without 'state.", entry.first, ".exp_avg_sq'");
  }
  for (const auto& entry : v) {
    NEEDLE_CHECK(m.count(entry.first) != 0, ValueError, owner, ": key 'state.", entry.first,
                 ".exp_avg_sq' without 'state.", entry.first, ".exp_avg'");
  }
  NEEDLE_CHECK(steps > 0 || m.empty(), ValueError, owner, ": moments saved before the first step");
  set_lr(checked.lr);
  t_ = steps;
  m_ = std::move(m);
  v_ = std::move(v);
}

AdamW::AdamW(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay)
    : Adam(std::move(params), lr, beta1, beta2, eps, weight_decay, /*decoupled=*/true, "AdamW") {}

}  // namespace needle::optim
