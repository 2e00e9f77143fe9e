// The Backend base class's LSTM cell kernels, composed from the primitive kernels (binary, unary, copy,
// fill) on memory from allocate(), so that a device without its own (CUDA today) still runs the LSTM ops.
#include <cstdint>

#include "backend/scratch.h"
#include "needle/backend/backend.h"

namespace needle {

using kernels::Scratch;

namespace {

// Block k (0..3 = i, f, g, o) of a (B, 4H) operand as a (B, H) view with the operand's row stride.
StridedView gate_block(const StridedView& v, const kernels::LstmLayout& layout, std::int64_t k) {
  return {static_cast<char*>(v.data) + k * layout.hidden * static_cast<std::int64_t>(itemsize(layout.dtype)),
          layout.dtype,
          {layout.batch, layout.hidden},
          {v.strides[0], 1}};
}

// Writes the activated gates sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o) of z = gates (+ gates2)
// into `act`, a contiguous (B, 4H) view.
void lstm_activations(Backend& backend, const kernels::LstmLayout& layout, const StridedView& act,
                      const StridedView& gates, const StridedView& gates2) {
  if (kernels::present(gates2)) {
    backend.binary(BinaryOp::Add, act, gates, gates2);
  } else {
    backend.copy(act, gates);
  }
  for (std::int64_t k = 0; k < 4; ++k) {
    const StridedView block = gate_block(act, layout, k);
    backend.unary(k == 2 ? UnaryOp::Tanh : UnaryOp::Sigmoid, block, block);
  }
}

}  // namespace

// Composed: activations into a temporary, then c = f * c_prev + i * g and h = o * tanh(c).
void Backend::lstm_cell_kernel(const kernels::LstmLayout& layout, const StridedView& h, const StridedView& c,
                               const StridedView& gates, const StridedView& gates2, const StridedView& c_prev) {
  const std::int64_t n = layout.batch * layout.hidden;
  if (n == 0) return;
  const DType dtype = layout.dtype;
  Scratch act_data(*this, 4 * n, dtype);
  Scratch temp_data(*this, n, dtype);
  const StridedView act{act_data.data(), dtype, {layout.batch, 4 * layout.hidden}, {4 * layout.hidden, 1}};
  const StridedView temp{temp_data.data(), dtype, {layout.batch, layout.hidden}, {layout.hidden, 1}};
  lstm_activations(*this, layout, act, gates, gates2);
  binary(BinaryOp::Mul, c, gate_block(act, layout, 0), gate_block(act, layout, 2));
  if (kernels::present(c_prev)) {
    binary(BinaryOp::Mul, temp, gate_block(act, layout, 1), c_prev);
    binary(BinaryOp::Add, c, c, temp);
  }
  unary(UnaryOp::Tanh, temp, c);
  binary(BinaryOp::Mul, h, gate_block(act, layout, 3), temp);
}

// Composed: activations and tanh(c) recomputed into temporaries, then each line of backend.h's formula.
void Backend::lstm_cell_backward_kernel(const kernels::LstmLayout& layout, const StridedView& dgates,
                                        const StridedView& dc_prev, const StridedView& dh, const StridedView& dc,
                                        const StridedView& gates, const StridedView& gates2,
                                        const StridedView& c_prev) {
  const std::int64_t n = layout.batch * layout.hidden;
  if (n == 0) return;
  const DType dtype = layout.dtype;
  const Shape shape{layout.batch, layout.hidden};
  const Strides compact{layout.hidden, 1};
  Scratch act_data(*this, 4 * n, dtype);
  Scratch tc_data(*this, n, dtype);
  Scratch dct_data(*this, n, dtype);
  Scratch temp_data(*this, n, dtype);
  Scratch one_data(*this, 1, dtype);
  const StridedView act{act_data.data(), dtype, {layout.batch, 4 * layout.hidden}, {4 * layout.hidden, 1}};
  const StridedView tc{tc_data.data(), dtype, shape, compact};
  const StridedView dct{dct_data.data(), dtype, shape, compact};
  const StridedView temp{temp_data.data(), dtype, shape, compact};
  const StridedView one{one_data.data(), dtype, shape, {0, 0}};
  fill({one_data.data(), dtype, {1}, {1}}, Scalar(1.0));
  lstm_activations(*this, layout, act, gates, gates2);
  const StridedView i = gate_block(act, layout, 0);
  const StridedView f = gate_block(act, layout, 1);
  const StridedView g = gate_block(act, layout, 2);
  const StridedView o = gate_block(act, layout, 3);

  // tc = tanh(f * c_prev + i * g)
  binary(BinaryOp::Mul, tc, i, g);
  if (kernels::present(c_prev)) {
    binary(BinaryOp::Mul, temp, f, c_prev);
    binary(BinaryOp::Add, tc, tc, temp);
  }
  unary(UnaryOp::Tanh, tc, tc);
  // dz_o = dh * tc * o * (1 - o)
  binary(BinaryOp::Sub, temp, one, o);
  binary(BinaryOp::Mul, temp, temp, o);
  binary(BinaryOp::Mul, temp, temp, tc);
  binary(BinaryOp::Mul, gate_block(dgates, layout, 3), temp, dh);
  // dc' = dc + dh * o * (1 - tc^2)
  binary(BinaryOp::Mul, dct, tc, tc);
  binary(BinaryOp::Sub, dct, one, dct);
  binary(BinaryOp::Mul, dct, dct, o);
  binary(BinaryOp::Mul, dct, dct, dh);
  binary(BinaryOp::Add, dct, dct, dc);
  // dz_i = dc' * g * i * (1 - i)
  binary(BinaryOp::Sub, temp, one, i);
  binary(BinaryOp::Mul, temp, temp, i);
  binary(BinaryOp::Mul, temp, temp, g);
  binary(BinaryOp::Mul, gate_block(dgates, layout, 0), temp, dct);
  // dz_g = dc' * i * (1 - g^2)
  binary(BinaryOp::Mul, temp, g, g);
  binary(BinaryOp::Sub, temp, one, temp);
  binary(BinaryOp::Mul, temp, temp, i);
  binary(BinaryOp::Mul, gate_block(dgates, layout, 2), temp, dct);
  // dz_f = dc' * c_prev * f * (1 - f) and dc_prev = dc' * f; with no c_prev, f had no effect.
  if (kernels::present(c_prev)) {
    binary(BinaryOp::Sub, temp, one, f);
    binary(BinaryOp::Mul, temp, temp, f);
    binary(BinaryOp::Mul, temp, temp, c_prev);
    binary(BinaryOp::Mul, gate_block(dgates, layout, 1), temp, dct);
    binary(BinaryOp::Mul, dc_prev, dct, f);
  } else {
    fill(gate_block(dgates, layout, 1), Scalar(0.0));
  }
}

}  // namespace needle
