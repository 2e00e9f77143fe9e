// The fused LSTM as ops: one cell step (lstm_cell) and a whole layer's recurrence (lstm_sequence).
//
// The LSTM ops have two outputs each (h and c; every step's h and every step's c). The sequence ops exist
// because a per-step graph cannot use a hoisted input projection well: slicing the (T, B, 4H) projection per step makes
// every slice's gradient a full zero-filled (T, B, 4H) array, summed T times. As one op, the layer keeps per step only
// h @ W_hh and the fused cell, forward and backward, and its weight gradient is one product over the sequence.
//
// The gradients run the fused backward kernels on arrays when no graph of the gradient is being recorded,
// the ordinary backward() case; under create_graph they are written with differentiable ops
// instead, so gradients of gradients work without a hand-written second derivative.
#include <string>
#include <tuple>
#include <utility>

#include "needle/autograd/grad_mode.h"
#include "needle/core/fused_ops.h"
#include "ops/op_helpers.h"

namespace needle::ops {

namespace {

// The vector-Jacobian product of one cell (kernels.def's lstm_cell_backward formulas) written with
// differentiable ops, for gradients that must themselves have gradients: z (B, 4H) pre-activations, c_prev
// (B, H) or undefined, dh and dc the gradients of h and c. Returns (dz, dc_prev), dc_prev undefined when
// c_prev is.
std::pair<Tensor, Tensor> composed_cell_backward(const Tensor& z, const Tensor& c_prev, const Tensor& dh,
                                                 const Tensor& dc) {
  const std::int64_t batch = z.shape()[0];
  const std::int64_t hidden = z.shape()[1] / 4;
  const auto pre = [&](std::int64_t k) {
    return getitem(z, {IndexItem::range(), IndexItem::range(k * hidden, (k + 1) * hidden)});
  };
  const Tensor i = sigmoid(pre(0));
  const Tensor f = sigmoid(pre(1));
  const Tensor cell = tanh(pre(2));
  const Tensor o = sigmoid(pre(3));
  const Tensor tc = tanh(c_prev.defined() ? f * c_prev + i * cell : i * cell);
  const Tensor dct = dc + dh * o * (Scalar(1.0) - tc * tc);
  const Tensor dz_f = c_prev.defined() ? dct * c_prev * f * (Scalar(1.0) - f)
                                       : detail::constant(NDArray::zeros({batch, hidden}, z.dtype(), z.device()));
  const Tensor dz = concat({dct * cell * i * (Scalar(1.0) - i), dz_f, dct * i * (Scalar(1.0) - cell * cell),
                            dh * tc * o * (Scalar(1.0) - o)},
                           1);
  return {dz, c_prev.defined() ? dct * f : Tensor()};
}

// Which optional inputs an LSTM cell was given; inputs are ordered gates, [gates2], [c_prev].
struct LstmInputs {
  bool has_gates2 = false;
  bool has_c_prev = false;
};

// A gradient the engine left undefined (no gradient reached that output) as the zeros it stands for.
NDArray grad_or_zeros(const Tensor& grad, const NDArray& like) {
  return grad.defined() ? grad.value().astype(like.dtype()) : NDArray::zeros(like.shape(), like.dtype(), like.device());
}
Tensor grad_or_zeros(const Tensor& grad, const Tensor& like) {
  return grad.defined() ? grad : detail::constant(NDArray::zeros(like.shape(), like.dtype(), like.device()));
}

// One LSTM step by the fused cell kernel: two outputs, h and c (B, H).
class LstmCellOp final : public Op {
 public:
  explicit LstmCellOp(LstmInputs inputs) : inputs_(inputs) {}
  std::string name() const override { return "lstm_cell"; }
  std::size_t num_outputs() const override { return 2; }
  std::vector<NDArray> compute_outputs(const std::vector<NDArray>& in) const override {
    const NDArray& gates = in[0];
    const Shape state{gates.shape()[0], gates.shape()[1] / 4};
    NDArray h = NDArray::empty(state, gates.dtype(), gates.device());
    NDArray c = NDArray::empty(state, gates.dtype(), gates.device());
    needle::lstm_cell(h, c, gates, inputs_.has_gates2 ? &in[1] : nullptr,
                      inputs_.has_c_prev ? &in[inputs_.has_gates2 ? 2 : 1] : nullptr);
    return {h, c};
  }
  std::vector<Tensor> gradient_outputs(const std::vector<Tensor>& out_grads, const std::vector<Tensor>& outputs,
                                       const std::vector<Tensor>& in, const NeedsGrad& needs_grad) const override {
    const Tensor& gates = in[0];
    const Tensor c_prev = inputs_.has_c_prev ? in[inputs_.has_gates2 ? 2 : 1] : Tensor();
    Tensor dgates;
    Tensor dc_prev;
    if (!grad_enabled()) {
      // Plain backward(): one fused kernel; nothing is recorded, so its results are constants.
      const NDArray& z = gates.value();
      NDArray dz = NDArray::empty(z.shape(), z.dtype(), z.device());
      NDArray dc = c_prev.defined() ? NDArray::empty(c_prev.shape(), z.dtype(), z.device()) : NDArray();
      const NDArray z2 = inputs_.has_gates2 ? in[1].value() : NDArray();
      const NDArray cp = c_prev.defined() ? c_prev.value() : NDArray();
      // The kernel reads rows with unit column stride; an incoming gradient may be a broadcast (of sum()).
      needle::lstm_cell_backward(dz, c_prev.defined() ? &dc : nullptr,
                                 grad_or_zeros(out_grads[0], outputs[0].value()).compact(),
                                 grad_or_zeros(out_grads[1], outputs[1].value()).compact(), z,
                                 inputs_.has_gates2 ? &z2 : nullptr, c_prev.defined() ? &cp : nullptr);
      dgates = detail::constant(dz);
      if (c_prev.defined()) dc_prev = detail::constant(dc);
    } else {
      // create_graph: the same formulas from differentiable ops, so this gradient has gradients.
      const Tensor z = inputs_.has_gates2 ? gates + in[1] : gates;
      std::tie(dgates, dc_prev) = composed_cell_backward(z, c_prev, grad_or_zeros(out_grads[0], outputs[0]),
                                                         grad_or_zeros(out_grads[1], outputs[1]));
    }
    std::vector<Tensor> grads{dgates};
    if (inputs_.has_gates2) grads.push_back(dgates);
    if (inputs_.has_c_prev) grads.push_back(dc_prev);
    for (std::size_t i = 0; i < grads.size(); ++i) {
      if (!needs_grad[i]) grads[i] = Tensor();
    }
    return grads;
  }

 private:
  LstmInputs inputs_;
};

// ---- a whole sequence ---------------------------------------------------------------------------

// Which optional initial states an LSTM sequence op was given; inputs are ordered xproj, w_hh, [h0], [c0].
struct LstmStates {
  bool has_h0 = false;
  bool has_c0 = false;

  [[nodiscard]] std::size_t c0_index() const { return has_h0 ? 3 : 2; }
};

// The sizes of a sequence: xproj (T, B, 4H).
struct SequenceSizes {
  std::int64_t steps;
  std::int64_t batch;
  std::int64_t hidden;
};

SequenceSizes sequence_sizes(const Shape& xproj) { return {xproj[0], xproj[1], xproj[2] / 4}; }

NDArray step(const NDArray& sequence, std::int64_t t) { return sequence.index({IndexItem::at(t)}); }

// Back-propagation through time for LstmSequenceOp by the fused cell kernel, on arrays: the gradients gh, gc
// (T, B, H) of the outputs hs, cs, the inputs xproj (T, B, 4H), w_hh (H, 4H), h0 and c0 (each (B, H) or
// absent). Returns dxproj (T, B, 4H) and dh0, dc0 (empty where absent); dW_hh is formed from dxproj by the
// op. The recurrent pre-activations h_{t-1} @ W_hh are recomputed as one product for all steps.
struct LstmSequenceGrads {
  NDArray dxproj;
  NDArray dh0;
  NDArray dc0;
};
LstmSequenceGrads lstm_sequence_backward(const NDArray& gh, const NDArray& gc, const NDArray& xproj,
                                         const NDArray& w_hh, const NDArray* h0, const NDArray* c0, const NDArray& hs,
                                         const NDArray& cs) {
  const SequenceSizes size = sequence_sizes(xproj.shape());
  const std::int64_t steps = size.steps;
  const Shape state{size.batch, size.hidden};
  LstmSequenceGrads r{NDArray::empty(xproj.shape(), xproj.dtype(), xproj.device()), NDArray(), NDArray()};
  if (c0 != nullptr) r.dc0 = NDArray::empty(state, xproj.dtype(), xproj.device());
  if (r.dxproj.size() == 0) {
    if (h0 != nullptr) r.dh0 = NDArray::zeros(state, xproj.dtype(), xproj.device());
    if (c0 != nullptr) r.dc0 = NDArray::zeros(state, xproj.dtype(), xproj.device());
    return r;
  }
  // h_{t-1} @ W_hh for steps 1..T-1 in one product.
  const NDArray recurrent = steps > 1 ? matmul(hs.index({IndexItem::range(0, steps - 1)}), w_hh) : NDArray();
  const NDArray recurrent0 = h0 != nullptr ? matmul(*h0, w_hh) : NDArray();
  // W_hh^T made contiguous once: every step's dgates @ W_hh^T then reads its rows in place (the few-rows
  // path of the cpu GEMM), where the transposed view would be packed again at each of the steps.
  const NDArray w_hh_t = w_hh.swapaxes(0, 1).compact();
  NDArray dh_next;  // the gradient h_t receives from step t + 1
  NDArray dc_next;
  for (std::int64_t t = steps - 1; t >= 0; --t) {
    const NDArray dh = t < steps - 1 ? add(step(gh, t), dh_next) : step(gh, t);
    const NDArray dc = t < steps - 1 ? add(step(gc, t), dc_next) : step(gc, t);
    const bool has_h = t > 0 || h0 != nullptr;
    const bool has_c = t > 0 || c0 != nullptr;
    const NDArray c_prev = t > 0 ? step(cs, t - 1) : c0 != nullptr ? *c0 : NDArray();
    // Step 0 writes dc_prev straight into dc0, which exists only with a c0.
    const NDArray dc_prev = t > 0 ? NDArray::empty(state, xproj.dtype(), xproj.device()) : r.dc0;
    const NDArray recurrent_t = t > 0 ? step(recurrent, t - 1) : recurrent0;
    const NDArray dgates = step(r.dxproj, t);
    needle::lstm_cell_backward(dgates, has_c ? &dc_prev : nullptr, dh, dc, step(xproj, t),
                               has_h ? &recurrent_t : nullptr, has_c ? &c_prev : nullptr);
    dc_next = dc_prev;
    if (t > 0) {
      dh_next = matmul(dgates, w_hh_t);
    } else if (h0 != nullptr) {
      r.dh0 = matmul(dgates, w_hh_t);
    }
  }
  return r;
}

// Every step of one LSTM layer, the input projection xproj (T, B, 4H) given (x @ W_ih + biases for the
// whole sequence, one big product): per step only h @ W_hh and the fused cell run, with no graph nodes in
// between. Two outputs: every step's h and every step's c, each (T, B, H).
class LstmSequenceOp final : public Op {
 public:
  explicit LstmSequenceOp(LstmStates states) : states_(states) {}
  std::string name() const override { return "lstm_sequence"; }
  std::size_t num_outputs() const override { return 2; }
  std::vector<NDArray> compute_outputs(const std::vector<NDArray>& in) const override {
    const NDArray xproj = in[0].compact();
    const NDArray& w_hh = in[1];
    const SequenceSizes size = sequence_sizes(xproj.shape());
    const Shape sequence{size.steps, size.batch, size.hidden};
    NDArray hs = NDArray::empty(sequence, xproj.dtype(), xproj.device());
    NDArray cs = NDArray::empty(sequence, xproj.dtype(), xproj.device());
    if (hs.size() == 0) return {hs, cs};
    for (std::int64_t t = 0; t < size.steps; ++t) {
      const NDArray h_prev = t > 0 ? step(hs, t - 1) : states_.has_h0 ? in[2] : NDArray();
      const NDArray c_prev = t > 0 ? step(cs, t - 1) : states_.has_c0 ? in[states_.c0_index()] : NDArray();
      const bool has_h = t > 0 || states_.has_h0;
      const bool has_c = t > 0 || states_.has_c0;
      const NDArray recurrent = has_h ? matmul(h_prev, w_hh) : NDArray();
      needle::lstm_cell(step(hs, t), step(cs, t), step(xproj, t), has_h ? &recurrent : nullptr,
                        has_c ? &c_prev : nullptr);
    }
    return {hs, cs};
  }
  std::vector<Tensor> gradient_outputs(const std::vector<Tensor>& out_grads, const std::vector<Tensor>& outputs,
                                       const std::vector<Tensor>& inputs, const NeedsGrad& needs_grad) const override;

 private:
  LstmStates states_;
};

std::vector<Tensor> LstmSequenceOp::gradient_outputs(const std::vector<Tensor>& out_grads,
                                                     const std::vector<Tensor>& outputs, const std::vector<Tensor>& in,
                                                     const NeedsGrad& needs_grad) const {
  const Tensor& xproj = in[0];
  const Tensor& w_hh = in[1];
  const Tensor h0 = states_.has_h0 ? in[2] : Tensor();
  const Tensor c0 = states_.has_c0 ? in[states_.c0_index()] : Tensor();
  const SequenceSizes size = sequence_sizes(xproj.shape());
  const std::int64_t steps = size.steps;
  const std::int64_t hidden = size.hidden;
  const Tensor& hs = outputs[0];
  const Tensor& cs = outputs[1];
  std::vector<Tensor> grads;
  if (!grad_enabled()) {
    // Plain backward(): the fused loop, then dW_hh = sum_t h_{t-1}^T dgates_t as (at most) two products.
    const NDArray h0_value = h0.defined() ? h0.value() : NDArray();
    const NDArray c0_value = c0.defined() ? c0.value() : NDArray();
    const LstmSequenceGrads r = lstm_sequence_backward(
        grad_or_zeros(out_grads[0], hs.value()).compact(), grad_or_zeros(out_grads[1], cs.value()).compact(),
        xproj.value().compact(), w_hh.value(), h0.defined() ? &h0_value : nullptr, c0.defined() ? &c0_value : nullptr,
        hs.value(), cs.value());
    const std::int64_t rows = steps * size.batch;
    const NDArray dgates = r.dxproj.reshape({rows, 4 * hidden});
    NDArray dw_hh = NDArray::zeros({hidden, 4 * hidden}, xproj.dtype(), xproj.device());
    if (needs_grad[1]) {
      if (steps > 1) {
        const NDArray h_prev = hs.value().index({IndexItem::range(0, steps - 1)}).reshape({rows - size.batch, hidden});
        dw_hh = matmul(h_prev.swapaxes(0, 1), dgates.index({IndexItem::range(size.batch, rows)}));
      }
      if (h0.defined()) {
        dw_hh = add(dw_hh, matmul(h0.value().swapaxes(0, 1), dgates.index({IndexItem::range(0, size.batch)})));
      }
    }
    grads = {detail::constant(r.dxproj), detail::constant(dw_hh)};
    if (h0.defined()) grads.push_back(detail::constant(r.dh0));
    if (c0.defined()) grads.push_back(detail::constant(r.dc0));
  } else {
    // create_graph: the same recursion from differentiable ops (the outputs' values enter through hs, cs).
    const Tensor gh = grad_or_zeros(out_grads[0], hs);
    const Tensor gc = grad_or_zeros(out_grads[1], cs);
    const auto at = [](const Tensor& a, std::int64_t t) { return getitem(a, {IndexItem::at(t)}); };
    std::vector<Tensor> dgates(static_cast<std::size_t>(steps));
    Tensor dw_hh = detail::constant(NDArray::zeros({hidden, 4 * hidden}, xproj.dtype(), xproj.device()));
    Tensor dh_next;
    Tensor dc_next;
    for (std::int64_t t = steps - 1; t >= 0; --t) {
      const Tensor h_prev = t > 0 ? at(hs, t - 1) : h0;
      const Tensor c_prev = t > 0 ? at(cs, t - 1) : c0;
      const Tensor z = h_prev.defined() ? at(xproj, t) + matmul(h_prev, w_hh) : at(xproj, t);
      const Tensor dh = dh_next.defined() ? at(gh, t) + dh_next : at(gh, t);
      const Tensor dc = dc_next.defined() ? at(gc, t) + dc_next : at(gc, t);
      auto [dz, dc_prev] = composed_cell_backward(z, c_prev, dh, dc);
      if (h_prev.defined()) {
        dw_hh = dw_hh + matmul(transpose(h_prev), dz);
        dh_next = matmul(dz, transpose(w_hh));
      }
      dc_next = dc_prev;
      dgates[static_cast<std::size_t>(t)] = dz;
    }
    grads = {stack(dgates, 0), dw_hh};
    if (h0.defined()) grads.push_back(dh_next);
    if (c0.defined()) grads.push_back(dc_next);
  }
  for (std::size_t i = 0; i < grads.size(); ++i) {
    if (!needs_grad[i]) grads[i] = Tensor();
  }
  return grads;
}

}  // namespace

std::pair<Tensor, Tensor> lstm_cell(const Tensor& gates, const Tensor& c_prev, const Tensor& gates2) {
  NEEDLE_CHECK(gates.ndim() == 2 && gates.shape()[1] % 4 == 0, ValueError,
               "lstm_cell: gates must have shape (batch, 4 * hidden), got ", shape_str(gates.shape()));
  detail::check_floating("lstm_cell", gates);
  const std::int64_t batch = gates.shape()[0];
  const std::int64_t hidden = gates.shape()[1] / 4;
  std::vector<Tensor> inputs{gates};
  const LstmInputs which{gates2.defined(), c_prev.defined()};
  if (gates2.defined()) {
    NEEDLE_CHECK(gates2.shape() == gates.shape(), ValueError, "lstm_cell: gates2 must have the shape of gates ",
                 shape_str(gates.shape()), ", got ", shape_str(gates2.shape()));
    inputs.push_back(gates2);
  }
  if (c_prev.defined()) {
    NEEDLE_CHECK(c_prev.ndim() == 2 && c_prev.shape()[0] == batch && c_prev.shape()[1] == hidden, ValueError,
                 "lstm_cell: c_prev must have shape (", batch, ", ", hidden, ") for gates of shape ",
                 shape_str(gates.shape()), ", got ", shape_str(c_prev.shape()));
    inputs.push_back(c_prev);
  }
  inputs = detail::promoted(std::move(inputs));  // mixed float32/float64 promote, as elsewhere
  detail::check_same_device("lstm_cell", inputs);
  const std::vector<Tensor> outputs = Tensor::from_op_outputs(std::make_shared<const LstmCellOp>(which), inputs);
  return {outputs[0], outputs[1]};
}

}  // namespace needle::ops

namespace needle::ops {

std::pair<Tensor, Tensor> lstm_sequence(const Tensor& xproj, const Tensor& w_hh, const Tensor& h0, const Tensor& c0) {
  NEEDLE_CHECK(xproj.ndim() == 3 && xproj.shape()[2] % 4 == 0, ValueError,
               "lstm_sequence: xproj must have shape (seq_len, batch, 4 * hidden), got ", shape_str(xproj.shape()));
  detail::check_floating("lstm_sequence", xproj);
  const std::int64_t batch = xproj.shape()[1];
  const std::int64_t hidden = xproj.shape()[2] / 4;
  NEEDLE_CHECK(w_hh.ndim() == 2 && w_hh.shape()[0] == hidden && w_hh.shape()[1] == 4 * hidden, ValueError,
               "lstm_sequence: w_hh must have shape (", hidden, ", ", 4 * hidden, ") for xproj of shape ",
               shape_str(xproj.shape()), ", got ", shape_str(w_hh.shape()));
  std::vector<Tensor> inputs{xproj, w_hh};
  for (const auto& [state, name] : {std::pair<const Tensor&, const char*>{h0, "h0"}, {c0, "c0"}}) {
    if (!state.defined()) continue;
    NEEDLE_CHECK(state.ndim() == 2 && state.shape()[0] == batch && state.shape()[1] == hidden, ValueError,
                 "lstm_sequence: ", name, " must have shape (", batch, ", ", hidden, ") for xproj of shape ",
                 shape_str(xproj.shape()), ", got ", shape_str(state.shape()));
    inputs.push_back(state);
  }
  inputs = detail::promoted(std::move(inputs));  // mixed float32/float64 promote, as elsewhere
  detail::check_same_device("lstm_sequence", inputs);
  const std::vector<Tensor> outputs =
      Tensor::from_op_outputs(std::make_shared<const LstmSequenceOp>(LstmStates{h0.defined(), c0.defined()}), inputs);
  return {outputs[0], outputs[1]};
}

}  // namespace needle::ops
