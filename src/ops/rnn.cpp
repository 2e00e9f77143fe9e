// The Elman RNN's recurrence (rnn_sequence) as one op, from primitive kernels, for the reason the LSTM's
// recurrence is one op (lstm.cpp): a per-step graph would make every step's slice of the hoisted input
// projection return a zero-filled gradient of the whole sequence.
//
// The gradient runs on arrays when no graph of the gradient is being recorded, the ordinary backward() case;
// under create_graph it is written with differentiable ops instead, so gradients of gradients work without a
// hand-written second derivative.
#include <string>
#include <utility>

#include "needle/autograd/grad_mode.h"
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::make;

namespace {

// Every step of one Elman RNN layer, h_t = act(xproj_t + h_{t-1} @ W_hh) with act tanh or relu, the input
// projection xproj (T, B, H) given for the whole sequence (x @ W_ih + biases, one product) as for
// LstmSequenceOp (lstm.cpp). The output is every step's h, (T, B, H).
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

// Back-propagation through time for RnnSequenceOp, on arrays: the gradient g (T, B, H) of the output hs,
// w_hh and whether there is an h0. Returns dxproj (T, B, H) and dh0 (B, H; empty without an h0); dW_hh is
// formed from dxproj by the op.
std::pair<NDArray, NDArray> rnn_sequence_backward(const NDArray& g, const NDArray& w_hh, bool has_h0, const NDArray& hs,
                                                  bool relu) {
  const NDArray w_hh_t = w_hh.swapaxes(0, 1);
  const std::int64_t steps = hs.shape()[0];
  NDArray dxproj = NDArray::empty(hs.shape(), hs.dtype(), hs.device());
  NDArray dh0;
  if (hs.size() == 0) {
    if (has_h0) dh0 = NDArray::zeros({hs.shape()[1], hs.shape()[2]}, hs.dtype(), hs.device());
    return {dxproj, dh0};
  }
  NDArray dh_next;
  for (std::int64_t t = steps - 1; t >= 0; --t) {
    const NDArray g_t = g.index({IndexItem::at(t)});
    const NDArray dh = t < steps - 1 ? add(g_t, dh_next) : g_t;
    const NDArray dz = mul(dh, activation_slope(hs.index({IndexItem::at(t)}), relu));
    dxproj.assign({IndexItem::at(t)}, dz);
    if (t > 0) {
      dh_next = matmul(dz, w_hh_t);
    } else if (has_h0) {
      dh0 = matmul(dz, w_hh_t);
    }
  }
  return {dxproj, dh0};
}

std::vector<Tensor> RnnSequenceOp::gradient(const Tensor& g, const Tensor& node, const NeedsGrad& needs_grad) const {
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
    // Plain backward(): the loop of rnn_sequence_backward, then dW_hh = sum_t h_{t-1}^T dz_t as two products.
    const auto [dxproj, dh0] =
        rnn_sequence_backward(g.value().astype(node.dtype()), w_hh.value(), has_h0_, node.value(), relu_);
    const Tensor dz = detail::constant(dxproj.reshape({rows, hidden}));
    Tensor dw_hh = detail::constant(NDArray::zeros({hidden, hidden}, xproj.dtype(), xproj.device()));
    if (needs_grad[1] && steps > 1) {
      const Tensor h_prev = reshape(getitem(node, {IndexItem::range(0, steps - 1)}), {rows - batch, hidden});
      dw_hh = matmul(transpose(h_prev), getitem(dz, {IndexItem::range(batch, rows), IndexItem::range()}));
    }
    if (needs_grad[1] && h0.defined()) {
      dw_hh = dw_hh + matmul(transpose(h0), getitem(dz, {IndexItem::range(0, batch), IndexItem::range()}));
    }
    grads = {reshape(dz, xproj.shape()), dw_hh};
    if (h0.defined()) grads.push_back(detail::constant(dh0));
  } else {
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
  }
  for (std::size_t i = 0; i < grads.size(); ++i) {
    if (!needs_grad[i]) grads[i] = Tensor();
  }
  return grads;
}

}  // namespace

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
  inputs = detail::promoted(std::move(inputs));  // mixed float32/float64 promote, as elsewhere
  detail::check_same_device("rnn_sequence", inputs);
  return make<RnnSequenceOp>(std::move(inputs), h0.defined(), nonlinearity == "relu");
}

}  // namespace needle::ops
