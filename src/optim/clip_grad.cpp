// Global-norm gradient clipping.
#include "needle/optim/clip_grad.h"

#include <cmath>

#include "needle/core/array_ops.h"

namespace needle::optim {

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NEEDLE_CHECK(max_norm >= 0.0, ValueError, "clip_grad_norm: max_norm must be >= 0, got ", max_norm);
  double total = 0.0;
  for (const Tensor& p : params) {
    const Tensor grad = p.defined() ? p.grad() : Tensor();
    if (!grad.defined()) continue;
    // float64 so the squares of many float32 gradients neither overflow nor lose precision.
    const NDArray g = grad.value().astype(DType::Float64);
    total += needle::sum(g * g).item().to<double>();
  }
  const double norm = std::sqrt(total);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    for (const Tensor& p : params) {
      const Tensor grad = p.defined() ? p.grad() : Tensor();
      if (!grad.defined()) continue;
      Tensor(p).set_grad(Tensor(grad.value() * coef));
    }
  }
  return norm;
}

}  // namespace needle::optim
