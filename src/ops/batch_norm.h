// Training-mode batch normalization by the backend's fused kernel, shared by ops::batch_norm and the
// BatchNorm layers, which both need the batch statistics the kernel computes anyway (to update their
// running statistics) and so must not compute them a second time.
#pragma once

#include "needle/autograd/tensor.h"
#include "needle/core/ndarray.h"

namespace needle::ops::detail {

// (x - mean) / sqrt(var + eps) * weight + bias with mean and the biased var taken per channel (axis 1) over
// every other axis of x (N, C, ...); weight and bias (C,) are each optional. Writes the batch mean and
// biased variance, shape (C,) in x's dtype, to `batch_mean` and `batch_var`. Arguments are checked by the
// callers, except that each channel must have more than one value.
Tensor batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, NDArray& batch_mean,
                        NDArray& batch_var);

}  // namespace needle::ops::detail
