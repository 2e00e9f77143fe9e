// The Backend base class's optimizer updates (Adam, SGD), composed from the primitive kernels on the flat
// views of the arrays and a few temporaries from allocate(), so that a device without its own fused update
// (CUDA today) still runs the optimizers.
#include <cstdint>

#include "backend/scratch.h"
#include "needle/backend/backend.h"

namespace needle {

using kernels::BroadcastConstants;
using kernels::Scratch;

// Composed: the formula of kernels.def one primitive at a time, in the order kernels::adam_element uses, on
// the flat n-element views of the four arrays and three temporaries.
void Backend::adam_update_kernel(const kernels::RowLayout& layout, const StridedView& param, const StridedView& grad,
                                 const StridedView& exp_avg, const StridedView& exp_avg_sq, const AdamStep& step) {
  const std::int64_t n = layout.size();
  if (n == 0) return;
  const DType dtype = layout.dtype;
  const auto flat = [&](void* data) { return StridedView{data, dtype, {n}, {1}}; };
  // The constants, in the order of the enum below, each read as an n-element array.
  const BroadcastConstants constants(
      *this, dtype, n,
      {1.0 - step.lr * step.weight_decay, step.weight_decay, step.beta1, 1.0 - step.beta1, step.beta2, 1.0 - step.beta2,
       step.correction1, step.correction2, step.eps, step.lr});
  const auto constant = [&](std::int64_t i) { return constants.at(i); };
  enum : std::int64_t {
    kDecay,
    kWeightDecay,
    kBeta1,
    kOneMinusBeta1,
    kBeta2,
    kOneMinusBeta2,
    kCorrection1,
    kCorrection2,
    kEps,
    kLr
  };
  const StridedView p = flat(param.data);
  const StridedView m = flat(exp_avg.data);
  const StridedView v = flat(exp_avg_sq.data);
  Scratch g_scratch(*this, n, dtype);
  Scratch t_scratch(*this, n, dtype);
  Scratch u_scratch(*this, n, dtype);
  const StridedView g = flat(g_scratch.data());
  const StridedView t = flat(t_scratch.data());
  const StridedView u = flat(u_scratch.data());
  if (step.decoupled) {
    binary(BinaryOp::Mul, p, p, constant(kDecay));
    copy(g, flat(grad.data));
  } else {
    binary(BinaryOp::Mul, t, constant(kWeightDecay), p);
    binary(BinaryOp::Add, g, flat(grad.data), t);
  }
  binary(BinaryOp::Mul, m, constant(kBeta1), m);
  binary(BinaryOp::Mul, t, constant(kOneMinusBeta1), g);
  binary(BinaryOp::Add, m, m, t);
  binary(BinaryOp::Mul, v, constant(kBeta2), v);
  binary(BinaryOp::Mul, t, g, g);
  binary(BinaryOp::Mul, t, constant(kOneMinusBeta2), t);
  binary(BinaryOp::Add, v, v, t);
  binary(BinaryOp::Div, t, v, constant(kCorrection2));
  unary(UnaryOp::Sqrt, t, t);
  binary(BinaryOp::Add, t, t, constant(kEps));
  binary(BinaryOp::Div, u, m, constant(kCorrection1));
  binary(BinaryOp::Div, u, u, t);
  binary(BinaryOp::Mul, u, constant(kLr), u);
  binary(BinaryOp::Sub, p, p, u);
}

// Composed: the formula of kernels.def one primitive at a time, in the order kernels::sgd_momentum_element
// uses, on the flat n-element views of the arrays and two temporaries.
void Backend::sgd_update_kernel(const kernels::RowLayout& layout, const StridedView& param, const StridedView& grad,
                                const StridedView& momentum_buffer, const SgdStep& step) {
  const std::int64_t n = layout.size();
  if (n == 0) return;
  const DType dtype = param.dtype;
  const auto flat = [&](void* data) { return StridedView{data, dtype, {n}, {1}}; };
  // The constants, in the order of the enum, each read as an n-element array.
  enum : std::int64_t { kWeightDecay, kMomentum, kOneMinusMomentum, kLr };
  const BroadcastConstants constants(*this, dtype, n, {step.weight_decay, step.momentum, 1.0 - step.momentum, step.lr});
  const auto constant = [&](std::int64_t i) { return constants.at(i); };
  const StridedView p = flat(param.data);
  Scratch g_scratch(*this, n, dtype);
  Scratch t_scratch(*this, n, dtype);
  const StridedView t = flat(t_scratch.data());
  StridedView g = flat(grad.data);
  if (step.weight_decay != 0.0) {
    binary(BinaryOp::Mul, t, p, constant(kWeightDecay));
    binary(BinaryOp::Add, flat(g_scratch.data()), g, t);
    g = flat(g_scratch.data());
  }
  StridedView delta = g;  // what lr scales: the momentum buffer, or the gradient without one
  if (momentum_buffer.data != nullptr) {
    const StridedView u = flat(momentum_buffer.data);
    if (step.first) {
      binary(BinaryOp::Mul, u, g, constant(kOneMinusMomentum));
    } else {
      binary(BinaryOp::Mul, u, u, constant(kMomentum));
      binary(BinaryOp::Mul, t, g, constant(kOneMinusMomentum));
      binary(BinaryOp::Add, u, u, t);
    }
    delta = u;
  }
  binary(BinaryOp::Mul, t, delta, constant(kLr));
  binary(BinaryOp::Sub, p, p, t);
}

}  // namespace needle
