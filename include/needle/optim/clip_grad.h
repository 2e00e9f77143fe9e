// Gradient clipping by global norm.
#pragma once

#include <vector>

#include "needle/autograd/tensor.h"

namespace needle::optim {

// The 2-norm of all gradients together (parameters without one are skipped), computed in float64.
// When it exceeds max_norm, every gradient is scaled by max_norm / (norm + 1e-6), PyTorch's
// clip_grad_norm_ (which scales exactly when that factor is below 1). The scaled gradients replace the
// old ones (new tensors, outside any graph). Returns the norm before clipping. ValueError when max_norm
// is negative.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace needle::optim
