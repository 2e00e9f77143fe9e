// The fused LSTM as ops: one cell step (lstm_cell) and a whole layer's recurrence (lstm_sequence); and the
// Elman RNN's recurrence (rnn_sequence) the same way, from primitive kernels.
//
// An op yields one array, so each packs its outputs into one flat array ([h | c]; [h_0..h_T-1 | c_0..c_T-1])
// whose halves are returned as views. The sequence ops exist because a per-step graph cannot use a hoisted
// input projection well: slicing the (T, B, 4H) projection per step makes every slice's gradient a full
// zero-filled (T, B, 4H) array, summed T times. As one op, the layer keeps per step only h @ W_hh and the
// fused cell, forward and backward, and its weight gradient is one product over the sequence.
//
// The gradients run the backend's fused backward kernel (the *GradOp ops) when no graph of the gradient is
// being recorded, the ordinary backward() case; under create_graph they are written with differentiable ops
// instead, so gradients of gradients work without a hand-written second derivative.
#include <string>
#include <tuple>
#include <utility>

#include "needle/autograd/grad_mode.h"
#include "needle/core/fused_ops.h"
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::make;

namespace {

// A block of `shape` starting at element `start` of a contiguous array read as flat, as an NDArray view.
NDArray array_block(const NDArray& contiguous, std::int64_t start, const Shape& shape) {
  const NDArray flat = contiguous.ndim() == 1 ? contiguous : contiguous.reshape({contiguous.size()});
  return flat.index({IndexItem::range(start, start + numel(shape))}).reshape(shape);
}

// The same block of a Tensor, through differentiable ops.
Tensor block(const Tensor& flat, std::int64_t start, std::int64_t rows, std::int64_t cols) {
  return reshape(getitem(flat, {IndexItem::range(start, start + rows * cols)}), {rows, cols});
}

// The vector-Jacobian product of one cell (backend.h's lstm_cell_backward formulas) written with
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

// Which optional inputs an LSTM op was given; inputs are ordered gates, [gates2], [c_prev].
struct LstmInputs {
  bool has_gates2 = false;
  bool has_c_prev = false;
};

// (h, c) of one step, packed as the flat array [h | c] of 2 * B * H elements.
class LstmCellOp final : public SingleOutputOp {
 public:
  explicit LstmCellOp(LstmInputs inputs) : inputs_(inputs) {}
  std::string name() const override { return "lstm_cell"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray& gates = in[0];
    const std::int64_t batch = gates.shape()[0];
    const std::int64_t hidden = gates.shape()[1] / 4;
    NDArray out = NDArray::empty({2 * batch * hidden}, gates.dtype(), gates.device());
    const NDArray* gates2 = inputs_.has_gates2 ? &in[1] : nullptr;
    const NDArray* c_prev = inputs_.has_c_prev ? &in[inputs_.has_gates2 ? 2 : 1] : nullptr;
    needle::lstm_cell(array_block(out, 0, {batch, hidden}), array_block(out, batch * hidden, {batch, hidden}), gates,
                      gates2, c_prev);
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override;

 private:
  LstmInputs inputs_;
};

// The vector-Jacobian product of LstmCellOp by the fused kernel: inputs g (the packed [dh | dc]), gates,
// [gates2], [c_prev]; the result is packed too, as [dgates | dc_prev] (dc_prev only with a c_prev).
class LstmCellGradOp final : public SingleOutputOp {
 public:
  explicit LstmCellGradOp(LstmInputs inputs) : inputs_(inputs) {}
  std::string name() const override { return "lstm_cell_backward"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray& gates = in[1];
    const std::int64_t batch = gates.shape()[0];
    const std::int64_t hidden = gates.shape()[1] / 4;
    const std::int64_t n = batch * hidden;
    NDArray out = NDArray::empty({(inputs_.has_c_prev ? 5 : 4) * n}, gates.dtype(), gates.device());
    if (out.size() == 0) return out;
    const NDArray g = in[0].astype(gates.dtype()).compact();
    const NDArray* gates2 = inputs_.has_gates2 ? &in[2] : nullptr;
    const NDArray* c_prev = inputs_.has_c_prev ? &in[inputs_.has_gates2 ? 3 : 2] : nullptr;
    const NDArray dc_prev = inputs_.has_c_prev ? array_block(out, 4 * n, {batch, hidden}) : NDArray();
    needle::lstm_cell_backward(array_block(out, 0, {batch, 4 * hidden}), c_prev != nullptr ? &dc_prev : nullptr,
                               array_block(g, 0, {batch, hidden}), array_block(g, n, {batch, hidden}), gates, gates2,
                               c_prev);
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& /*h*/, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    // LstmCellOp::gradient builds this op only while grad mode is off, so no graph ever holds it.
    throw RuntimeError("lstm_cell_backward: not differentiable; differentiate lstm_cell with create_graph instead");
  }

 private:
  LstmInputs inputs_;
};

std::vector<Tensor> LstmCellOp::gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const {
  const std::vector<Tensor>& in = node.inputs();
  const Tensor& gates = in[0];
  const std::int64_t batch = gates.shape()[0];
  const std::int64_t hidden = gates.shape()[1] / 4;
  const std::int64_t n = batch * hidden;
  const Tensor c_prev = inputs_.has_c_prev ? in[inputs_.has_gates2 ? 2 : 1] : Tensor();
  Tensor dgates;
  Tensor dc_prev;
  if (!grad_enabled()) {
    // Plain backward(): one fused kernel, and the results are views of its packed output.
    std::vector<Tensor> operands{g};
    operands.insert(operands.end(), in.begin(), in.end());
    const Tensor result = make<LstmCellGradOp>(std::move(operands), inputs_);
    dgates = block(result, 0, batch, 4 * hidden);
    if (inputs_.has_c_prev) dc_prev = block(result, 4 * n, batch, hidden);
  } else {
    // create_graph: the same formulas from differentiable ops, so this gradient has gradients.
    const Tensor z = inputs_.has_gates2 ? gates + in[1] : gates;
    std::tie(dgates, dc_prev) =
        composed_cell_backward(z, c_prev, block(g, 0, batch, hidden), block(g, n, batch, hidden));
  }
  std::vector<Tensor> grads{dgates};
  if (inputs_.has_gates2) grads.push_back(dgates);
  if (inputs_.has_c_prev) grads.push_back(dc_prev);
  return grads;
}

// ---- a whole sequence ---------------------------------------------------------------------------

// Which optional initial states an LSTM sequence op was given; inputs are ordered xproj, w_hh, [h0], [c0].
struct LstmStates {
  bool has_h0 = false;
  bool has_c0 = false;

  [[nodiscard]] std::size_t c0_index() const { return has_h0 ? 3 : 2; }
  // The backward's packed result [dgates (T, B, 4H) | dh0 | dc0], dh0 and dc0 present only with their state.
  [[nodiscard]] std::int64_t dh0_offset(std::int64_t steps, std::int64_t n) const { return 4 * steps * n; }
  [[nodiscard]] std::int64_t dc0_offset(std::int64_t steps, std::int64_t n) const {
    return dh0_offset(steps, n) + (has_h0 ? n : 0);
  }
  [[nodiscard]] std::int64_t packed_size(std::int64_t steps, std::int64_t n) const {
    return dc0_offset(steps, n) + (has_c0 ? n : 0);
  }
};

// The sizes of a sequence: xproj (T, B, 4H).
struct SequenceSizes {
  std::int64_t steps;
  std::int64_t batch;
  std::int64_t hidden;
  [[nodiscard]] std::int64_t n() const { return batch * hidden; }  // one step's h or c
};

SequenceSizes sequence_sizes(const Shape& xproj) { return {xproj[0], xproj[1], xproj[2] / 4}; }

// Every step of one LSTM layer, the input projection xproj (T, B, 4H) given (x @ W_ih + biases for the
// whole sequence, one big product): per step only h @ W_hh and the fused cell run, with no graph nodes in
// between. The output is the flat array [h_0 .. h_{T-1} | c_0 .. c_{T-1}], each half a contiguous (T, B, H).
class LstmSequenceOp final : public SingleOutputOp {
 public:
  explicit LstmSequenceOp(LstmStates states) : states_(states) {}
  std::string name() const override { return "lstm_sequence"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray xproj = in[0].compact();
    const NDArray& w_hh = in[1];
    const SequenceSizes size = sequence_sizes(xproj.shape());
    const std::int64_t n = size.n();
    NDArray out = NDArray::empty({2 * size.steps * n}, xproj.dtype(), xproj.device());
    if (n == 0) return out;
    const Shape state{size.batch, size.hidden};
    for (std::int64_t t = 0; t < size.steps; ++t) {
      const NDArray h_prev = t > 0 ? array_block(out, (t - 1) * n, state) : states_.has_h0 ? in[2] : NDArray();
      const NDArray c_prev = t > 0            ? array_block(out, (size.steps + t - 1) * n, state)
                             : states_.has_c0 ? in[states_.c0_index()]
                                              : NDArray();
      const bool has_h = t > 0 || states_.has_h0;
      const bool has_c = t > 0 || states_.has_c0;
      const NDArray recurrent = has_h ? matmul(h_prev, w_hh) : NDArray();
      needle::lstm_cell(array_block(out, t * n, state), array_block(out, (size.steps + t) * n, state),
                        xproj.index({IndexItem::at(t)}), has_h ? &recurrent : nullptr, has_c ? &c_prev : nullptr);
    }
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override;

 private:
  LstmStates states_;
};

// Back-propagation through time by the fused kernel: inputs g (the output's gradient, packed like it),
// xproj, w_hh, [h0], [c0] and the forward output y. The result is packed as [dxproj (T, B, 4H) | dh0 |
// dc0]; dW_hh is one product of the whole sequence, formed by LstmSequenceOp::gradient. The recurrent
// pre-activations h_{t-1} @ W_hh are recomputed as one product for all steps.
class LstmSequenceGradOp final : public SingleOutputOp {
 public:
  explicit LstmSequenceGradOp(LstmStates states) : states_(states) {}
  std::string name() const override { return "lstm_sequence_backward"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray xproj = in[1].compact();
    const NDArray& w_hh = in[2];
    const NDArray& y = in.back();
    const NDArray g = in[0].astype(xproj.dtype()).compact();
    const SequenceSizes size = sequence_sizes(xproj.shape());
    const std::int64_t steps = size.steps;
    const std::int64_t n = size.n();
    // Every element is written: all dgates rows, and dh0 / dc0 exactly when that state was given.
    NDArray out = NDArray::empty({states_.packed_size(steps, n)}, xproj.dtype(), xproj.device());
    if (n == 0) return out;
    const Shape state{size.batch, size.hidden};
    const NDArray h0 = states_.has_h0 ? in[3] : NDArray();
    const NDArray c0 = states_.has_c0 ? in[states_.c0_index() + 1] : NDArray();
    // h_{t-1} @ W_hh for steps 1..T-1 in one product.
    const NDArray recurrent =
        steps > 1 ? matmul(array_block(y, 0, {(steps - 1) * size.batch, size.hidden}), w_hh) : NDArray();
    const NDArray recurrent0 = states_.has_h0 ? matmul(h0, w_hh) : NDArray();
    const NDArray w_hh_t = w_hh.swapaxes(0, 1);
    NDArray dh_next;  // the gradient h_t receives from step t + 1
    NDArray dc_next;
    for (std::int64_t t = steps - 1; t >= 0; --t) {
      NDArray dh = array_block(g, t * n, state);
      if (t < steps - 1) dh = add(dh, dh_next);
      NDArray dc = array_block(g, (steps + t) * n, state);
      if (t < steps - 1) dc = add(dc, dc_next);
      const bool has_h = t > 0 || states_.has_h0;
      const bool has_c = t > 0 || states_.has_c0;
      const NDArray c_prev = t > 0 ? array_block(y, (steps + t - 1) * n, state) : c0;
      // Step 0 writes dc_prev straight into dc0's place, which exists only with a c0.
      const NDArray dc_prev = t > 0            ? NDArray::empty(state, xproj.dtype(), xproj.device())
                              : states_.has_c0 ? array_block(out, states_.dc0_offset(steps, n), state)
                                               : NDArray();
      const NDArray recurrent_t =
          t > 0 ? array_block(recurrent, (t - 1) * 4 * n, {size.batch, 4 * size.hidden}) : recurrent0;
      const NDArray dgates = array_block(out, t * 4 * n, {size.batch, 4 * size.hidden});
      needle::lstm_cell_backward(dgates, has_c ? &dc_prev : nullptr, dh, dc, xproj.index({IndexItem::at(t)}),
                                 has_h ? &recurrent_t : nullptr, has_c ? &c_prev : nullptr);
      dc_next = dc_prev;
      if (t > 0) {
        dh_next = matmul(dgates, w_hh_t);
      } else if (states_.has_h0) {
        const NDArray dh0 = matmul(dgates, w_hh_t);
        array_block(out, states_.dh0_offset(steps, n), state).assign(dh0);
      }
    }
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& /*h*/, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    // LstmSequenceOp::gradient builds this op only while grad mode is off, so no graph ever holds it.
    throw RuntimeError(
        "lstm_sequence_backward: not differentiable; differentiate lstm_sequence with create_graph instead");
  }

 private:
  LstmStates states_;
};

std::vector<Tensor> LstmSequenceOp::gradient(const Tensor& g, const Tensor& node,
                                             const NeedsGrad& /*needs_grad*/) const {
  const std::vector<Tensor>& in = node.inputs();
  const Tensor& xproj = in[0];
  const Tensor& w_hh = in[1];
  const Tensor h0 = states_.has_h0 ? in[2] : Tensor();
  const Tensor c0 = states_.has_c0 ? in[states_.c0_index()] : Tensor();
  const SequenceSizes size = sequence_sizes(xproj.shape());
  const std::int64_t steps = size.steps;
  const std::int64_t rows = steps * size.batch;
  const std::int64_t n = size.n();
  const std::int64_t hidden = size.hidden;
  std::vector<Tensor> grads;
  if (!grad_enabled()) {
    // Plain backward(): the fused loop, then dW_hh = sum_t h_{t-1}^T dgates_t as (at most) two products.
    std::vector<Tensor> operands{g};
    operands.insert(operands.end(), in.begin(), in.end());
    operands.push_back(node);
    const Tensor packed = make<LstmSequenceGradOp>(std::move(operands), states_);
    const Tensor dgates = block(packed, 0, rows, 4 * hidden);
    Tensor dw_hh = detail::constant(NDArray::zeros({hidden, 4 * hidden}, xproj.dtype(), xproj.device()));
    if (steps > 1) {
      const Tensor h_prev = block(node, 0, rows - size.batch, hidden);
      dw_hh = matmul(transpose(h_prev), getitem(dgates, {IndexItem::range(size.batch, rows), IndexItem::range()}));
    }
    if (h0.defined()) {
      dw_hh = dw_hh + matmul(transpose(h0), getitem(dgates, {IndexItem::range(0, size.batch), IndexItem::range()}));
    }
    grads = {reshape(dgates, xproj.shape()), dw_hh};
    if (h0.defined()) grads.push_back(block(packed, states_.dh0_offset(steps, n), size.batch, hidden));
    if (c0.defined()) grads.push_back(block(packed, states_.dc0_offset(steps, n), size.batch, hidden));
    return grads;
  }
  // create_graph: the same recursion from differentiable ops (the output's values enter through `node`).
  const Tensor hs = reshape(getitem(node, {IndexItem::range(0, steps * n)}), {steps, size.batch, hidden});
  const Tensor cs = reshape(getitem(node, {IndexItem::range(steps * n, 2 * steps * n)}), {steps, size.batch, hidden});
  const Tensor gh = reshape(getitem(g, {IndexItem::range(0, steps * n)}), {steps, size.batch, hidden});
  const Tensor gc = reshape(getitem(g, {IndexItem::range(steps * n, 2 * steps * n)}), {steps, size.batch, hidden});
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
  return grads;
}

// Every step of one Elman RNN layer, h_t = act(xproj_t + h_{t-1} @ W_hh) with act tanh or relu, the input
// projection xproj (T, B, H) given for the whole sequence (x @ W_ih + biases, one product) as for
// LstmSequenceOp. The output is every step's h, (T, B, H).
class RnnSequenceOp final : public SingleOutputOp {
 public:
  RnnSequenceOp(bool has_h0, bool relu) : has_h0_(has_h0), relu_(relu) {}
  std::string name() const override { return "rnn_sequence"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray xproj = in[0].compact();
    const NDArray& w_hh = in[1];
    const std::int64_t steps = xproj.shape()[0];
    NDArray out = NDArray::empty(xproj.shape(), xproj.dtype(), xproj.device());
    if (out.size() == 0) return out;
    const UnaryOp activation = relu_ ? UnaryOp::Relu : UnaryOp::Tanh;
    for (std::int64_t t = 0; t < steps; ++t) {
      const NDArray x_t = xproj.index({IndexItem::at(t)});
      const NDArray z =
          t > 0 || has_h0_ ? add(x_t, matmul(t > 0 ? out.index({IndexItem::at(t - 1)}) : in[2], w_hh)) : x_t;
      out.assign({IndexItem::at(t)}, needle::unary(activation, z));
    }
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override;

 private:
  bool has_h0_;
  bool relu_;
};

// The derivative of the activation read from its output h: 1 - h^2 (tanh) or [h > 0] (relu).
NDArray activation_slope(const NDArray& h, bool relu) {
  return relu ? binary(BinaryOp::Gt, h, Scalar(0.0)).astype(h.dtype()) : Scalar(1.0) - h * h;
}
Tensor activation_slope(const Tensor& h, bool relu) {
  // relu's slope is a constant of h's sign; no gradient flows through it.
  return relu ? detail::constant(activation_slope(h.value(), true)) : Scalar(1.0) - h * h;
}

// Back-propagation through time for RnnSequenceOp: inputs g (T, B, H), w_hh, [h0] and the forward output
// hs. The result is packed as [dxproj (T, B, H) | dh0 (B, H)]; dW_hh is formed by RnnSequenceOp::gradient.
class RnnSequenceGradOp final : public SingleOutputOp {
 public:
  RnnSequenceGradOp(bool has_h0, bool relu) : has_h0_(has_h0), relu_(relu) {}
  std::string name() const override { return "rnn_sequence_backward"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const NDArray& hs = in.back();
    const NDArray g = in[0].astype(hs.dtype());
    const NDArray w_hh_t = in[1].swapaxes(0, 1);
    const std::int64_t steps = hs.shape()[0];
    const Shape state{hs.shape()[1], hs.shape()[2]};
    const std::int64_t n = numel(state);
    // Every element is written: all dxproj steps, and dh0 exactly when h0 was given.
    NDArray out = NDArray::empty({(steps + (has_h0_ ? 1 : 0)) * n}, hs.dtype(), hs.device());
    if (n == 0) return out;
    NDArray dh_next;
    for (std::int64_t t = steps - 1; t >= 0; --t) {
      const NDArray g_t = g.index({IndexItem::at(t)});
      const NDArray dh = t < steps - 1 ? add(g_t, dh_next) : g_t;
      const NDArray dz = mul(dh, activation_slope(hs.index({IndexItem::at(t)}), relu_));
      array_block(out, t * n, state).assign(dz);
      if (t > 0) {
        dh_next = matmul(dz, w_hh_t);
      } else if (has_h0_) {
        array_block(out, steps * n, state).assign(matmul(dz, w_hh_t));
      }
    }
    return out;
  }
  std::vector<Tensor> gradient(const Tensor& /*h*/, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    // RnnSequenceOp::gradient builds this op only while grad mode is off, so no graph ever holds it.
    throw RuntimeError(
        "rnn_sequence_backward: not differentiable; differentiate rnn_sequence with create_graph instead");
  }

 private:
  bool has_h0_;
  bool relu_;
};

std::vector<Tensor> RnnSequenceOp::gradient(const Tensor& g, const Tensor& node,
                                            const NeedsGrad& /*needs_grad*/) const {
  const std::vector<Tensor>& in = node.inputs();
  const Tensor& xproj = in[0];
  const Tensor& w_hh = in[1];
  const Tensor h0 = has_h0_ ? in[2] : Tensor();
  const std::int64_t steps = xproj.shape()[0];
  const std::int64_t batch = xproj.shape()[1];
  const std::int64_t hidden = xproj.shape()[2];
  const std::int64_t rows = steps * batch;
  std::vector<Tensor> grads;
  if (!grad_enabled()) {
    // Plain backward(): the loop of RnnSequenceGradOp, then dW_hh = sum_t h_{t-1}^T dz_t as two products.
    std::vector<Tensor> operands{g, w_hh};
    if (has_h0_) operands.push_back(h0);
    operands.push_back(node);
    const Tensor packed = make<RnnSequenceGradOp>(std::move(operands), has_h0_, relu_);
    const Tensor dz = block(packed, 0, rows, hidden);
    Tensor dw_hh = detail::constant(NDArray::zeros({hidden, hidden}, xproj.dtype(), xproj.device()));
    if (steps > 1) {
      const Tensor h_prev = reshape(getitem(node, {IndexItem::range(0, steps - 1)}), {rows - batch, hidden});
      dw_hh = matmul(transpose(h_prev), getitem(dz, {IndexItem::range(batch, rows), IndexItem::range()}));
    }
    if (h0.defined()) {
      dw_hh = dw_hh + matmul(transpose(h0), getitem(dz, {IndexItem::range(0, batch), IndexItem::range()}));
    }
    grads = {reshape(dz, xproj.shape()), dw_hh};
    if (h0.defined()) grads.push_back(block(packed, rows * hidden, batch, hidden));
    return grads;
  }
  // create_graph: the same recursion from differentiable ops (the output's values enter through `node`).
  const auto at = [](const Tensor& a, std::int64_t t) { return getitem(a, {IndexItem::at(t)}); };
  std::vector<Tensor> dzs(static_cast<std::size_t>(steps));
  Tensor dw_hh = detail::constant(NDArray::zeros({hidden, hidden}, xproj.dtype(), xproj.device()));
  Tensor dh_next;
  for (std::int64_t t = steps - 1; t >= 0; --t) {
    const Tensor dh = dh_next.defined() ? at(g, t) + dh_next : at(g, t);
    const Tensor dz = dh * activation_slope(at(node, t), relu_);
    const Tensor h_prev = t > 0 ? at(node, t - 1) : h0;
    if (h_prev.defined()) {
      dw_hh = dw_hh + matmul(transpose(h_prev), dz);
      dh_next = matmul(dz, transpose(w_hh));
    }
    dzs[static_cast<std::size_t>(t)] = dz;
  }
  grads = {stack(dzs, 0), dw_hh};
  if (h0.defined()) grads.push_back(dh_next);
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
  for (const Tensor& t : inputs) {
    NEEDLE_CHECK(t.dtype() == gates.dtype(), TypeError, "lstm_cell: every operand must have the dtype of gates (",
                 dtype_name(gates.dtype()), "), got ", dtype_name(t.dtype()));
  }
  detail::check_same_device("lstm_cell", inputs);
  const Tensor packed = make<LstmCellOp>(std::move(inputs), which);
  return {block(packed, 0, batch, hidden), block(packed, batch * hidden, batch, hidden)};
}

}  // namespace needle::ops

namespace needle::ops {

std::pair<Tensor, Tensor> lstm_sequence(const Tensor& xproj, const Tensor& w_hh, const Tensor& h0, const Tensor& c0) {
  NEEDLE_CHECK(xproj.ndim() == 3 && xproj.shape()[2] % 4 == 0, ValueError,
               "lstm_sequence: xproj must have shape (seq_len, batch, 4 * hidden), got ", shape_str(xproj.shape()));
  detail::check_floating("lstm_sequence", xproj);
  const std::int64_t steps = xproj.shape()[0];
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
  for (const Tensor& t : inputs) {
    NEEDLE_CHECK(t.dtype() == xproj.dtype(), TypeError, "lstm_sequence: every operand must have the dtype of xproj (",
                 dtype_name(xproj.dtype()), "), got ", dtype_name(t.dtype()));
  }
  detail::check_same_device("lstm_sequence", inputs);
  const Tensor packed = make<LstmSequenceOp>(std::move(inputs), LstmStates{h0.defined(), c0.defined()});
  const std::int64_t n = steps * batch * hidden;
  const auto half = [&](std::int64_t start) {
    return reshape(getitem(packed, {IndexItem::range(start, start + n)}), {steps, batch, hidden});
  };
  return {half(0), half(n)};
}

}  // namespace needle::ops

namespace needle::ops {

Tensor rnn_sequence(const Tensor& xproj, const Tensor& w_hh, const Tensor& h0, const std::string& nonlinearity) {
  NEEDLE_CHECK(xproj.ndim() == 3, ValueError, "rnn_sequence: xproj must have shape (seq_len, batch, hidden), got ",
               shape_str(xproj.shape()));
  detail::check_floating("rnn_sequence", xproj);
  NEEDLE_CHECK(nonlinearity == "tanh" || nonlinearity == "relu", ValueError,
               "rnn_sequence: nonlinearity must be 'tanh' or 'relu', got '", nonlinearity, "'");
  const std::int64_t batch = xproj.shape()[1];
  const std::int64_t hidden = xproj.shape()[2];
  NEEDLE_CHECK(w_hh.ndim() == 2 && w_hh.shape()[0] == hidden && w_hh.shape()[1] == hidden, ValueError,
               "rnn_sequence: w_hh must have shape (", hidden, ", ", hidden, ") for xproj of shape ",
               shape_str(xproj.shape()), ", got ", shape_str(w_hh.shape()));
  std::vector<Tensor> inputs{xproj, w_hh};
  if (h0.defined()) {
    NEEDLE_CHECK(h0.ndim() == 2 && h0.shape()[0] == batch && h0.shape()[1] == hidden, ValueError,
                 "rnn_sequence: h0 must have shape (", batch, ", ", hidden, ") for xproj of shape ",
                 shape_str(xproj.shape()), ", got ", shape_str(h0.shape()));
    inputs.push_back(h0);
  }
  for (const Tensor& t : inputs) {
    NEEDLE_CHECK(t.dtype() == xproj.dtype(), TypeError, "rnn_sequence: every operand must have the dtype of xproj (",
                 dtype_name(xproj.dtype()), "), got ", dtype_name(t.dtype()));
  }
  detail::check_same_device("rnn_sequence", inputs);
  return make<RnnSequenceOp>(std::move(inputs), h0.defined(), nonlinearity == "relu");
}

}  // namespace needle::ops
