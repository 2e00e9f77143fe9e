// The fused LSTM cell kernels and the recurrent ops: the ref kernels against the formulas composed from array
// functions, the cpu kernels (1 and 2 threads) and the Backend base-class defaults against the ref kernels on
// many shapes (batch sizes 0, 1, 7, 20, 33; hidden sizes 1 to 200, odd tails included; with and without the
// second summand and the previous state; row-strided and broadcast operands), bad operands; lstm_cell,
// lstm_sequence and rnn_sequence against step-by-step formulas, their gradients and second gradients against
// finite differences; and the LSTM and RNN layers against their cells composed from ops.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "fused_test_util.h"
#include "gradcheck.h"
#include "needle/backend/backend.h"
#include "needle/core/threads.h"
#include "needle/debug/check_against_ref.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::cpu_backend;
using testing::expect_close;
using testing::host;
using testing::ref_backend;

using testing::expect_gradients_match;
using testing::expect_second_gradients_match;
using testing::random_array;
using V = std::vector<Tensor>;

double tolerance_for(DType dtype) { return dtype == DType::Float32 ? 2e-6 : 1e-13; }

// One cell's operands; gates2 and c_prev are optional (has_*), and gates2 may be a broadcast bias row.
struct CellInputs {
  std::int64_t batch = 0;
  std::int64_t hidden = 0;
  DType dtype = DType::Float32;
  NDArray gates, gates2, c_prev, dh, dc;
  bool has_gates2 = false;
  bool has_c_prev = false;
};

CellInputs make_cell(std::int64_t batch, std::int64_t hidden, DType dtype, bool has_gates2, bool has_c_prev,
                     std::uint64_t seed, bool strided = false) {
  CellInputs in;
  in.batch = batch;
  in.hidden = hidden;
  in.dtype = dtype;
  in.has_gates2 = has_gates2;
  in.has_c_prev = has_c_prev;
  const auto draw = [&](const Shape& shape, double scale) {
    return (random_array(shape, cpu_device(), seed++) * Scalar(scale)).astype(dtype);
  };
  // Pre-activations up to +-6 reach the saturated ends of sigmoid and tanh.
  in.gates = draw({batch, 4 * hidden}, 6.0);
  if (strided) {
    // A row stride wider than the row: the left part of a wider array.
    in.gates = draw({batch, 4 * hidden + 3}, 6.0).index({IndexItem::range(), IndexItem::range(0, 4 * hidden)});
  }
  in.gates2 = draw({batch, 4 * hidden}, 2.0);
  if (strided) in.gates2 = draw({1, 4 * hidden}, 2.0).broadcast_to({batch, 4 * hidden});
  in.c_prev = draw({batch, hidden}, 3.0);
  in.dh = draw({batch, hidden}, 1.0);
  in.dc = draw({batch, hidden}, 1.0);
  return in;
}

StridedView optional(const NDArray& a, bool present) { return present ? a.view() : StridedView{}; }

// Runs lstm_cell on `backend` (its base-class default when `base_default`) and returns (h, c) in float64.
std::pair<std::vector<double>, std::vector<double>> run_forward(Backend& backend, const CellInputs& in,
                                                                bool base_default = false) {
  NDArray h = NDArray::empty({in.batch, in.hidden}, in.dtype, cpu_device());
  NDArray c = NDArray::empty({in.batch, in.hidden}, in.dtype, cpu_device());
  const StridedView g2 = optional(in.gates2, in.has_gates2);
  const StridedView cp = optional(in.c_prev, in.has_c_prev);
  if (base_default) {
    backend.composed_lstm_cell(h.view(), c.view(), in.gates.view(), g2, cp);
  } else {
    backend.lstm_cell(h.view(), c.view(), in.gates.view(), g2, cp);
  }
  return {host(h), host(c)};
}

// Runs lstm_cell_backward and returns (dgates, dc_prev) in float64 (dc_prev empty without c_prev).
std::pair<std::vector<double>, std::vector<double>> run_backward(Backend& backend, const CellInputs& in,
                                                                 bool base_default = false) {
  NDArray dgates = NDArray::empty({in.batch, 4 * in.hidden}, in.dtype, cpu_device());
  NDArray dc_prev = NDArray::empty({in.batch, in.hidden}, in.dtype, cpu_device());
  const StridedView dcp = optional(dc_prev, in.has_c_prev);
  const StridedView g2 = optional(in.gates2, in.has_gates2);
  const StridedView cp = optional(in.c_prev, in.has_c_prev);
  if (base_default) {
    backend.composed_lstm_cell_backward(dgates.view(), dcp, in.dh.view(), in.dc.view(), in.gates.view(), g2, cp);
  } else {
    backend.lstm_cell_backward(dgates.view(), dcp, in.dh.view(), in.dc.view(), in.gates.view(), g2, cp);
  }
  return {host(dgates), in.has_c_prev ? host(dc_prev) : std::vector<double>{}};
}

// The cell's formulas (kernels.def) composed from array functions in float64.
struct Composed {
  NDArray h, c, dgates, dc_prev;
};

Composed composed(const CellInputs& in) {
  const auto f64 = [](const NDArray& a) { return a.astype(DType::Float64); };
  const NDArray z = in.has_gates2 ? f64(in.gates) + f64(in.gates2) : f64(in.gates);
  const auto block = [&](std::int64_t k) {
    return z.index({IndexItem::range(), IndexItem::range(k * in.hidden, (k + 1) * in.hidden)});
  };
  const NDArray i = sigmoid(block(0));
  const NDArray f = sigmoid(block(1));
  const NDArray g = tanh(block(2));
  const NDArray o = sigmoid(block(3));
  const NDArray cp = in.has_c_prev ? f64(in.c_prev) : NDArray::zeros({in.batch, in.hidden}, DType::Float64);
  Composed out;
  out.c = f * cp + i * g;
  const NDArray tc = tanh(out.c);
  out.h = o * tc;
  const NDArray dh = f64(in.dh);
  const NDArray dct = f64(in.dc) + dh * o * (Scalar(1.0) - tc * tc);
  out.dgates = concat({dct * g * i * (Scalar(1.0) - i), dct * cp * f * (Scalar(1.0) - f),
                       dct * i * (Scalar(1.0) - g * g), dh * tc * o * (Scalar(1.0) - o)},
                      1);
  out.dc_prev = dct * f;
  return out;
}

struct Case {
  std::int64_t batch;
  std::int64_t hidden;
};

std::vector<Case> kernel_cases() {
  std::vector<Case> cases;
  for (const std::int64_t batch : {0, 1, 7, 20, 33}) {
    for (const std::int64_t hidden : {1, 7, 8, 9, 17, 65, 200}) cases.push_back({batch, hidden});
  }
  return cases;
}

// Every combination of the optional operands, with the strided/broadcast layout on the last.
struct Variant {
  bool gates2;
  bool c_prev;
  bool strided;
};
constexpr Variant kVariants[] = {
    {false, false, false}, {false, true, false}, {true, false, false}, {true, true, false}, {true, true, true}};

std::string describe(const CellInputs& in, const Variant& v) {
  return str(dtype_name(in.dtype), " B=", in.batch, " H=", in.hidden, v.gates2 ? " +gates2" : "",
             v.c_prev ? " +c_prev" : "", v.strided ? " strided" : "");
}

TEST(FusedLstmRefKernels, MatchTheFormulasComposedFromArrayFunctions) {
  std::uint64_t seed = 10;
  for (const Case& c : std::vector<Case>{{1, 1}, {3, 5}, {7, 9}, {20, 17}}) {
    for (const Variant& v : kVariants) {
      for (const DType dtype : {DType::Float32, DType::Float64}) {
        const CellInputs in = make_cell(c.batch, c.hidden, dtype, v.gates2, v.c_prev, seed++, v.strided);
        const std::string what = describe(in, v);
        const Composed expected = composed(in);
        // The ref kernel computes in double and rounds once; the composed formula above also uses the
        // rounded operands, so the only difference is the final rounding to the operand dtype.
        const auto [h, cell] = run_forward(ref_backend(), in);
        expect_close(h, host(expected.h), tolerance_for(dtype), what + " h");
        expect_close(cell, host(expected.c), tolerance_for(dtype), what + " c");
        const auto [dgates, dc_prev] = run_backward(ref_backend(), in);
        expect_close(dgates, host(expected.dgates), tolerance_for(dtype), what + " dgates");
        if (v.c_prev) expect_close(dc_prev, host(expected.dc_prev), tolerance_for(dtype), what + " dc_prev");
      }
    }
  }
}

TEST(FusedLstmRefKernels, SaturateWithoutNaN) {
  // Huge pre-activations: sigmoid and tanh at +-1 and 0, and no inf / inf anywhere.
  CellInputs in = make_cell(2, 3, DType::Float64, false, true, 1);
  in.gates =
      NDArray::from_vector(std::vector<double>{1e4,  -1e4, 800,  -800, 1e4,  1e4, -1e4, 1e4,  -1e4, 1e4,  1e4, 1e4,
                                               -1e4, 1e4,  -800, 800,  -1e4, 1e4, 1e4,  -1e4, 1e4,  -1e4, 1e4, 1e4},
                           {2, 12}, cpu_device());
  for (Backend* backend : {&ref_backend(), &cpu_backend()}) {
    const auto [h, c] = run_forward(*backend, in);
    const auto [dgates, dc_prev] = run_backward(*backend, in);
    for (const double x : h) EXPECT_TRUE(std::isfinite(x)) << backend->name();
    for (const double x : c) EXPECT_TRUE(std::isfinite(x)) << backend->name();
    for (const double x : dgates) EXPECT_TRUE(std::isfinite(x)) << backend->name();
    for (const double x : dc_prev) EXPECT_TRUE(std::isfinite(x)) << backend->name();
  }
}

TEST(FusedLstmCpuKernels, MatchRefOnEveryShapeDtypeAndThreadCount) {
  const int restore_threads = get_num_threads();
  std::uint64_t seed = 100;
  for (const Case& c : kernel_cases()) {
    for (const Variant& v : kVariants) {
      for (const DType dtype : {DType::Float32, DType::Float64}) {
        const CellInputs in = make_cell(c.batch, c.hidden, dtype, v.gates2, v.c_prev, seed++, v.strided);
        const std::string what = describe(in, v);
        const auto expected_forward = run_forward(ref_backend(), in);
        const auto expected_backward = run_backward(ref_backend(), in);
        std::vector<double> first_h;
        std::vector<double> first_dgates;
        for (const int threads : {1, 2}) {
          set_num_threads(threads);
          const std::string run = what + str(" threads ", threads);
          const auto [h, cell] = run_forward(cpu_backend(), in);
          const auto [dgates, dc_prev] = run_backward(cpu_backend(), in);
          expect_close(h, expected_forward.first, tolerance_for(dtype), run + " h");
          expect_close(cell, expected_forward.second, tolerance_for(dtype), run + " c");
          expect_close(dgates, expected_backward.first, tolerance_for(dtype), run + " dgates");
          expect_close(dc_prev, expected_backward.second, tolerance_for(dtype), run + " dc_prev");
          // Rows never depend on how they are split over threads.
          if (threads == 1) {
            first_h = h;
            first_dgates = dgates;
          } else {
            EXPECT_EQ(h, first_h) << run;
            EXPECT_EQ(dgates, first_dgates) << run;
          }
        }
      }
    }
  }
  set_num_threads(restore_threads);
}

TEST(FusedLstmCpuKernels, SplitBigBatchesOverThreadsDeterministically) {
  // 300 rows of 4 * 65 gates pass the parallel grain, so 2 threads really split the rows.
  const int restore_threads = get_num_threads();
  const CellInputs in = make_cell(300, 65, DType::Float32, true, true, 7);
  set_num_threads(1);
  const auto one = run_forward(cpu_backend(), in);
  const auto one_back = run_backward(cpu_backend(), in);
  set_num_threads(2);
  EXPECT_EQ(run_forward(cpu_backend(), in), one);
  EXPECT_EQ(run_backward(cpu_backend(), in), one_back);
  set_num_threads(restore_threads);
  expect_close(one.first, run_forward(ref_backend(), in).first, tolerance_for(DType::Float32), "h");
}

TEST(FusedLstmBaseDefaults, MatchRefOnTheCpuAndRefBackends) {
  std::uint64_t seed = 500;
  for (const Case& c : std::vector<Case>{{0, 3}, {1, 1}, {7, 9}, {20, 65}, {33, 8}}) {
    for (const Variant& v : kVariants) {
      for (const DType dtype : {DType::Float32, DType::Float64}) {
        const CellInputs in = make_cell(c.batch, c.hidden, dtype, v.gates2, v.c_prev, seed++, v.strided);
        const auto expected_forward = run_forward(ref_backend(), in);
        const auto expected_backward = run_backward(ref_backend(), in);
        for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
          const std::string what = describe(in, v) + " default on " + std::string(backend->name());
          const auto [h, cell] = run_forward(*backend, in, /*base_default=*/true);
          const auto [dgates, dc_prev] = run_backward(*backend, in, /*base_default=*/true);
          // The defaults run the primitive kernels (cpu: vectorised float32 sigmoid / tanh), a few ulp apart.
          const double tol = dtype == DType::Float32 ? 2e-6 : 1e-12;
          expect_close(h, expected_forward.first, tol, what + " h");
          expect_close(cell, expected_forward.second, tol, what + " c");
          expect_close(dgates, expected_backward.first, tol, what + " dgates");
          expect_close(dc_prev, expected_backward.second, tol, what + " dc_prev");
        }
      }
    }
  }
}

TEST(FusedLstmKernels, RejectBadOperands) {
  const NDArray gates = NDArray::ones({2, 8}, DType::Float64, cpu_device());
  NDArray h = NDArray::empty({2, 2}, DType::Float64, cpu_device());
  NDArray c = NDArray::empty({2, 2}, DType::Float64, cpu_device());
  NDArray wrong_shape = NDArray::empty({2, 3}, DType::Float64, cpu_device());
  NDArray wrong_dtype = NDArray::empty({2, 2}, DType::Float32, cpu_device());
  const NDArray column_strided = NDArray::ones({8, 2}, DType::Float64, cpu_device()).swapaxes(0, 1);
  const NDArray ints = NDArray::ones({2, 8}, DType::Int64, cpu_device());
  NDArray int_h = NDArray::empty({2, 2}, DType::Int64, cpu_device());
  NDArray int_c = NDArray::empty({2, 2}, DType::Int64, cpu_device());
  NDArray dgates = NDArray::empty({2, 8}, DType::Float64, cpu_device());
  for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
    for (const bool base : {false, true}) {
      Backend& b = *backend;
      const auto forward = [&](const StridedView& hv, const StridedView& cv, const StridedView& gv,
                               const StridedView& cp) {
        if (base) {
          b.composed_lstm_cell(hv, cv, gv, StridedView{}, cp);
        } else {
          b.lstm_cell(hv, cv, gv, StridedView{}, cp);
        }
      };
      testing::expect_error<RuntimeError>([&] { forward(h.view(), wrong_shape.view(), gates.view(), {}); },
                                          "lstm_cell: c must have shape (2, 2)");
      testing::expect_error<RuntimeError>([&] { forward(h.view(), c.view(), gates.view(), wrong_dtype.view()); },
                                          "dtype");
      testing::expect_error<RuntimeError>([&] { forward(h.view(), c.view(), column_strided.view(), {}); },
                                          "unit column stride");
      testing::expect_error<RuntimeError>([&] { forward(int_h.view(), int_c.view(), ints.view(), {}); }, "float32");
      const NDArray broadcast_out = NDArray::empty({1, 2}, DType::Float64, cpu_device()).broadcast_to({2, 2});
      testing::expect_error<RuntimeError>([&] { forward(broadcast_out.view(), c.view(), gates.view(), {}); },
                                          "must not repeat one row");
      // dc_prev without c_prev.
      testing::expect_error<RuntimeError>(
          [&] {
            if (base) {
              b.composed_lstm_cell_backward(dgates.view(), c.view(), h.view(), h.view(), gates.view(), {}, {});
            } else {
              b.lstm_cell_backward(dgates.view(), c.view(), h.view(), h.view(), gates.view(), {}, {});
            }
          },
          "dc_prev must be given exactly when c_prev is");
    }
  }
}

// ---- the op -------------------------------------------------------------------------------------

class FusedLstmOpsTest : public ::testing::TestWithParam<Device> {};

TEST_P(FusedLstmOpsTest, ForwardMatchesTheComposedFormula) {
  const Device device = GetParam();
  CellInputs in = make_cell(5, 6, DType::Float64, true, true, 31);
  const Composed expected = composed(in);
  const auto [h, c] =
      ops::lstm_cell(Tensor(in.gates.to(device)), Tensor(in.c_prev.to(device)), Tensor(in.gates2.to(device)));
  EXPECT_EQ(h.shape(), (Shape{5, 6}));
  EXPECT_EQ(c.shape(), (Shape{5, 6}));
  expect_close(host(h.value()), host(expected.h), 1e-13, "h");
  expect_close(host(c.value()), host(expected.c), 1e-13, "c");
  // A transposed (column-strided) gates operand is compacted by the op.
  const NDArray transposed = in.gates.compact().swapaxes(0, 1).compact().swapaxes(0, 1);
  const auto [h2, c2] =
      ops::lstm_cell(Tensor(transposed.to(device)), Tensor(in.c_prev.to(device)), Tensor(in.gates2.to(device)));
  expect_close(host(h2.value()), host(expected.h), 1e-13, "h of transposed gates");
}

TEST_P(FusedLstmOpsTest, GradientsAndSecondGradientsMatchFiniteDifferences) {
  const Device device = GetParam();
  const NDArray gates = random_array({3, 8}, device, 41, -2.0, 2.0);
  const NDArray gates2 = random_array({3, 8}, device, 42, -2.0, 2.0);
  const NDArray c_prev = random_array({3, 2}, device, 43, -2.0, 2.0);
  // Both outputs in one tensor, h scaled so it and c enter the checked scalar differently.
  const auto both = [](const std::pair<Tensor, Tensor>& hc) {
    return ops::concat({hc.first * Scalar(1.5), hc.second}, 1);
  };
  const auto full = [&](const V& t) { return both(ops::lstm_cell(t[0], t[2], t[1])); };
  const auto no_state = [&](const V& t) { return both(ops::lstm_cell(t[0], Tensor())); };
  const auto state_first = [&](const V& t) { return both(ops::lstm_cell(t[1], t[0])); };
  expect_gradients_match(full, {gates, gates2, c_prev});
  expect_gradients_match(no_state, {gates});
  expect_gradients_match(state_first, {c_prev, gates});
  expect_second_gradients_match(full, {gates, gates2, c_prev}, 1e-5, 1e-5);
  expect_second_gradients_match(no_state, {gates}, 1e-5, 1e-5);
  expect_second_gradients_match(state_first, {c_prev, gates}, 1e-5, 1e-5);
  // Squared outputs make the second derivative depend on the output gradient too.
  const auto squared = [&](const V& t) {
    const Tensor y = full(t);
    return y * y;
  };
  expect_second_gradients_match(squared, {gates, gates2, c_prev}, 1e-5, 1e-5);
  // Only h used: the gradient of the unused c half is zero.
  expect_gradients_match([&](const V& t) { return ops::lstm_cell(t[0], t[1]).first; }, {gates, c_prev});
}

TEST_P(FusedLstmOpsTest, EmptyBatchesAndFloat32Work) {
  const Device device = GetParam();
  Tensor gates(NDArray::zeros({0, 8}, DType::Float64, device), true);
  Tensor c_prev(NDArray::zeros({0, 2}, DType::Float64, device), true);
  const auto [h, c] = ops::lstm_cell(gates, c_prev);
  (ops::summation(h) + ops::summation(c)).backward();
  EXPECT_EQ(gates.grad().shape(), (Shape{0, 8}));
  EXPECT_EQ(c_prev.grad().shape(), (Shape{0, 2}));

  Tensor g32(random_array({4, 12}, device, 3).astype(DType::Float32), true);
  const auto [h32, c32] = ops::lstm_cell(g32, Tensor());
  EXPECT_EQ(h32.dtype(), DType::Float32);
  ops::summation(h32 + c32).backward();
  EXPECT_EQ(g32.grad().dtype(), DType::Float32);
}

TEST_P(FusedLstmOpsTest, RejectsBadOperandsWithClearErrors) {
  const Device device = GetParam();
  const Tensor gates(NDArray::zeros({2, 8}, DType::Float32, device));
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::lstm_cell(Tensor(NDArray::zeros({2, 7}, DType::Float32, device)), Tensor());
      },
      "lstm_cell: gates must have shape (batch, 4 * hidden), got (2, 7)");
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::lstm_cell(gates, Tensor(NDArray::zeros({2, 3}, DType::Float32, device)));
      },
      "lstm_cell: c_prev must have shape (2, 2) for gates of shape (2, 8), got (2, 3)");
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::lstm_cell(gates, Tensor(), Tensor(NDArray::zeros({2, 4}, DType::Float32, device)));
      },
      "gates2 must have the shape of gates");
  // Mixed float32/float64 operands promote, as in every op.
  EXPECT_EQ(ops::lstm_cell(gates, Tensor(NDArray::zeros({2, 2}, DType::Float64, device))).first.dtype(),
            DType::Float64);
  testing::expect_error<TypeError>(
      [&] {
        (void)ops::lstm_cell(Tensor(NDArray::zeros({2, 8}, DType::Int64, device)), Tensor());
      },
      "lstm_cell");
}

// The LSTM layer before the fused cell: every step composed from getitem, sigmoid, tanh, mul and add.
std::pair<Tensor, Tensor> composed_cell(const nn::LSTMCell& cell, const Tensor& x, const Tensor& h, const Tensor& c) {
  Tensor z = ops::matmul(x, cell.W_ih());
  if (h.defined()) z = z + ops::matmul(h, cell.W_hh());
  if (cell.bias_ih().defined()) z = z + cell.bias_ih() + cell.bias_hh();
  const std::int64_t n = cell.hidden_size();
  const auto gate = [&](std::int64_t k) {
    return ops::getitem(z, {IndexItem::range(), IndexItem::range(k * n, (k + 1) * n)});
  };
  const Tensor c_next = c.defined() ? ops::sigmoid(gate(1)) * c + ops::sigmoid(gate(0)) * ops::tanh(gate(2))
                                    : ops::sigmoid(gate(0)) * ops::tanh(gate(2));
  return {ops::sigmoid(gate(3)) * ops::tanh(c_next), c_next};
}

// A parameter's gradient, or zeros where none reached it (W_hh with one step from the zero state: the
// composed cell never multiplies by it, the fused layer gives it an exact zero gradient).
std::vector<double> grad_or_zeros(const Tensor& p) {
  return p.grad().defined() ? host(p.grad().value()) : std::vector<double>(static_cast<std::size_t>(p.size()), 0.0);
}

// One 2-layer LSTM's output, final state and every gradient against the composed cell unrolled by hand.
void expect_layer_matches_composed(Device device, DType dtype, bool with_state, std::int64_t seq_len) {
  SCOPED_TRACE(str(dtype_name(dtype), with_state ? " with state " : " zero state ", seq_len, " steps"));
  manual_seed(5);
  nn::LSTM lstm(6, 5, 2, true, device, dtype);
  const NDArray x_value = (random_array({seq_len, 3, 6}, device, 71) * Scalar(2.0)).astype(dtype);
  const NDArray h0_value = random_array({2, 3, 5}, device, 72).astype(dtype);
  const NDArray c0_value = random_array({2, 3, 5}, device, 73).astype(dtype);
  const NDArray w_value = random_array({seq_len, 3, 5}, device, 74).astype(dtype);

  // Fused: the layer itself.
  Tensor x(x_value.copy(), true);
  Tensor h0(h0_value.copy(), true);
  Tensor c0(c0_value.copy(), true);
  const auto [out, state] = with_state ? lstm.forward(x, {h0, c0}) : lstm.forward(x, {Tensor(), Tensor()});
  (ops::summation(out * Tensor(w_value)) + ops::summation(state.first) + ops::summation(state.second * state.second))
      .backward();
  std::vector<std::vector<double>> fused_grads;
  for (const Tensor& p : lstm.parameters()) fused_grads.push_back(grad_or_zeros(p));
  lstm.zero_grad();

  // Composed: the same parameters unrolled by hand.
  Tensor xr(x_value.copy(), true);
  Tensor h0r(h0_value.copy(), true);
  Tensor c0r(c0_value.copy(), true);
  std::vector<Tensor> steps = ops::split(xr, 0);
  const std::vector<Tensor> hs = ops::split(h0r, 0);
  const std::vector<Tensor> cs = ops::split(c0r, 0);
  std::vector<Tensor> h_final;
  std::vector<Tensor> c_final;
  for (std::int64_t l = 0; l < 2; ++l) {
    Tensor h = with_state ? hs[static_cast<std::size_t>(l)] : Tensor();
    Tensor c = with_state ? cs[static_cast<std::size_t>(l)] : Tensor();
    for (Tensor& step : steps) {
      std::tie(h, c) = composed_cell(*lstm.cell(l), step, h, c);
      step = h;
    }
    h_final.push_back(h);
    c_final.push_back(c);
  }
  const Tensor out_r = ops::stack(steps, 0);
  const Tensor hn_r = ops::stack(h_final, 0);
  const Tensor cn_r = ops::stack(c_final, 0);
  (ops::summation(out_r * Tensor(w_value)) + ops::summation(hn_r) + ops::summation(cn_r * cn_r)).backward();

  const double tol = dtype == DType::Float32 ? 2e-5 : 1e-12;
  expect_close(host(out.value()), host(out_r.value()), tol, "output");
  expect_close(host(state.first.value()), host(hn_r.value()), tol, "h_n");
  expect_close(host(state.second.value()), host(cn_r.value()), tol, "c_n");
  expect_close(host(x.grad().value()), host(xr.grad().value()), tol, "dx");
  if (with_state) {
    expect_close(host(h0.grad().value()), host(h0r.grad().value()), tol, "dh0");
    expect_close(host(c0.grad().value()), host(c0r.grad().value()), tol, "dc0");
  }
  std::size_t k = 0;
  for (const Tensor& p : lstm.parameters()) {
    expect_close(fused_grads[k++], grad_or_zeros(p), tol, "parameter gradient");
  }
}

TEST_P(FusedLstmOpsTest, LstmLayerMatchesTheComposedCellInValueAndGradient) {
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const bool with_state : {true, false}) {
      for (const std::int64_t seq_len : {4, 1}) expect_layer_matches_composed(GetParam(), dtype, with_state, seq_len);
    }
  }
}

TEST_P(FusedLstmOpsTest, LstmLayerGradientsMatchFiniteDifferences) {
  const Device device = GetParam();
  manual_seed(9);
  nn::LSTM lstm(3, 4, 2, true, device, DType::Float64);
  const NDArray x = random_array({3, 2, 3}, device, 81);
  const NDArray h0 = random_array({2, 2, 4}, device, 82);
  const NDArray c0 = random_array({2, 2, 4}, device, 83);
  const auto f = [&](const V& t) {
    const auto [out, state] = lstm.forward(t[0], {t[1], t[2]});
    return ops::concat({ops::reshape(out, {3, 8}), ops::reshape(state.second, {2, 8})}, 0);
  };
  expect_gradients_match(f, {x, h0, c0});
  expect_second_gradients_match(f, {x, h0, c0}, 1e-5, 1e-5);
}

TEST_P(FusedLstmOpsTest, SequenceMatchesStepByStepCellsWithAndWithoutInitialState) {
  const Device device = GetParam();
  const NDArray xproj = random_array({4, 3, 8}, device, 91, -2.0, 2.0);
  const NDArray w_hh = random_array({2, 8}, device, 92);
  const NDArray h0 = random_array({3, 2}, device, 93);
  const NDArray c0 = random_array({3, 2}, device, 94);
  for (const bool with_h0 : {false, true}) {
    for (const bool with_c0 : {false, true}) {
      SCOPED_TRACE(str("h0 ", with_h0, " c0 ", with_c0));
      const Tensor h_init = with_h0 ? Tensor(h0) : Tensor();
      const Tensor c_init = with_c0 ? Tensor(c0) : Tensor();
      const auto [hs, cs] = ops::lstm_sequence(Tensor(xproj), Tensor(w_hh), h_init, c_init);
      EXPECT_EQ(hs.shape(), (Shape{4, 3, 2}));
      Tensor h = h_init;
      Tensor c = c_init;
      for (std::int64_t t = 0; t < 4; ++t) {
        const Tensor x_t(xproj.index({IndexItem::at(t)}));
        std::tie(h, c) = ops::lstm_cell(x_t, c, h.defined() ? ops::matmul(h, Tensor(w_hh)) : Tensor());
        expect_close(host(hs.value().index({IndexItem::at(t)})), host(h.value()), 1e-14, str("h step ", t));
        expect_close(host(cs.value().index({IndexItem::at(t)})), host(c.value()), 1e-14, str("c step ", t));
      }
    }
  }
}

TEST_P(FusedLstmOpsTest, SequenceGradientsAndSecondGradientsMatchFiniteDifferences) {
  const Device device = GetParam();
  const NDArray xproj = random_array({3, 2, 8}, device, 95, -2.0, 2.0);
  const NDArray w_hh = random_array({2, 8}, device, 96);
  const NDArray h0 = random_array({2, 2}, device, 97);
  const NDArray c0 = random_array({2, 2}, device, 98);
  const auto both = [](const std::pair<Tensor, Tensor>& hc) {
    return ops::concat({hc.first * Scalar(1.5), hc.second}, 2);
  };
  const auto full = [&](const V& t) { return both(ops::lstm_sequence(t[0], t[1], t[2], t[3])); };
  const auto no_state = [&](const V& t) { return both(ops::lstm_sequence(t[0], t[1])); };
  const auto c0_only = [&](const V& t) { return both(ops::lstm_sequence(t[0], t[1], Tensor(), t[2])); };
  const auto weights_first = [&](const V& t) { return both(ops::lstm_sequence(t[1], t[0], t[2], t[3])); };
  const auto h0_first = [&](const V& t) { return both(ops::lstm_sequence(t[1], t[2], t[0], t[3])); };
  const auto one_step = [&](const V& t) { return both(ops::lstm_sequence(t[0], t[1], t[2])); };
  expect_gradients_match(full, {xproj, w_hh, h0, c0});
  expect_gradients_match(no_state, {xproj, w_hh});
  expect_gradients_match(c0_only, {xproj, w_hh, c0});
  expect_gradients_match(one_step, {xproj.index({IndexItem::range(0, 1)}), w_hh, h0});
  expect_second_gradients_match(full, {xproj, w_hh, h0, c0}, 1e-5, 1e-5);
  expect_second_gradients_match(no_state, {xproj, w_hh}, 1e-5, 1e-5);
  expect_second_gradients_match(weights_first, {w_hh, xproj, h0, c0}, 1e-5, 1e-5);
  expect_second_gradients_match(h0_first, {h0, xproj, w_hh, c0}, 1e-5, 1e-5);
}

TEST_P(FusedLstmOpsTest, SequenceHandlesEmptyBatchesAndRejectsBadOperands) {
  const Device device = GetParam();
  Tensor empty_x(NDArray::zeros({3, 0, 8}, DType::Float64, device), true);
  Tensor w(NDArray::zeros({2, 8}, DType::Float64, device), true);
  const auto [hs, cs] = ops::lstm_sequence(empty_x, w);
  EXPECT_EQ(hs.shape(), (Shape{3, 0, 2}));
  (ops::summation(hs) + ops::summation(cs)).backward();
  EXPECT_EQ(empty_x.grad().shape(), (Shape{3, 0, 8}));
  EXPECT_EQ(host(w.grad().value()), std::vector<double>(16, 0.0));

  const Tensor x(NDArray::zeros({3, 2, 8}, DType::Float32, device));
  const Tensor w32(NDArray::zeros({2, 8}, DType::Float32, device));
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::lstm_sequence(Tensor(NDArray::zeros({3, 2, 6}, DType::Float32, device)), w32);
      },
      "lstm_sequence: xproj must have shape (seq_len, batch, 4 * hidden), got (3, 2, 6)");
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::lstm_sequence(x, Tensor(NDArray::zeros({8, 2}, DType::Float32, device)));
      },
      "lstm_sequence: w_hh must have shape (2, 8) for xproj of shape (3, 2, 8), got (8, 2)");
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::lstm_sequence(x, w32, Tensor(NDArray::zeros({2, 3}, DType::Float32, device)));
      },
      "lstm_sequence: h0 must have shape (2, 2)");
  // Mixed float32/float64 operands promote, as in every op.
  EXPECT_EQ(ops::lstm_sequence(x, w32, Tensor(), Tensor(NDArray::zeros({2, 2}, DType::Float64, device))).first.dtype(),
            DType::Float64);
}

// ---- the Elman RNN's sequence op ----------------------------------------------------------------

TEST_P(FusedLstmOpsTest, RnnSequenceMatchesStepByStepFormula) {
  const Device device = GetParam();
  const NDArray xproj = random_array({4, 3, 5}, device, 101, -2.0, 2.0);
  const NDArray w_hh = random_array({5, 5}, device, 102);
  const NDArray h0 = random_array({3, 5}, device, 103);
  for (const std::string nonlinearity : {"tanh", "relu"}) {
    for (const bool with_h0 : {false, true}) {
      SCOPED_TRACE(str(nonlinearity, with_h0 ? " with h0" : " zero state"));
      const Tensor hs = ops::rnn_sequence(Tensor(xproj), Tensor(w_hh), with_h0 ? Tensor(h0) : Tensor(), nonlinearity);
      EXPECT_EQ(hs.shape(), (Shape{4, 3, 5}));
      NDArray h = with_h0 ? h0 : NDArray();
      for (std::int64_t t = 0; t < 4; ++t) {
        NDArray z = xproj.index({IndexItem::at(t)});
        if (t > 0 || with_h0) z = z + matmul(h, w_hh);
        h = nonlinearity == "tanh" ? tanh(z) : binary(BinaryOp::Maximum, z, Scalar(0.0));
        expect_close(host(hs.value().index({IndexItem::at(t)})), host(h), 1e-14, str("h step ", t));
      }
    }
  }
}

TEST_P(FusedLstmOpsTest, RnnSequenceGradientsAndSecondGradientsMatchFiniteDifferences) {
  const Device device = GetParam();
  const NDArray xproj = random_array({3, 2, 4}, device, 105, -2.0, 2.0);
  const NDArray w_hh = random_array({4, 4}, device, 106);
  const NDArray h0 = random_array({2, 4}, device, 107);
  for (const std::string nonlinearity : {"tanh", "relu"}) {
    SCOPED_TRACE(nonlinearity);
    const auto full = [&](const V& t) { return ops::rnn_sequence(t[0], t[1], t[2], nonlinearity); };
    const auto no_state = [&](const V& t) { return ops::rnn_sequence(t[0], t[1], Tensor(), nonlinearity); };
    const auto weights_first = [&](const V& t) { return ops::rnn_sequence(t[1], t[0], t[2], nonlinearity); };
    const auto h0_first = [&](const V& t) { return ops::rnn_sequence(t[1], t[2], t[0], nonlinearity); };
    // Squared, so the second derivative depends on the output gradient (relu's own is zero).
    const auto squared = [&](const V& t) {
      const Tensor y = full(t);
      return y * y;
    };
    expect_gradients_match(full, {xproj, w_hh, h0});
    expect_gradients_match(no_state, {xproj, w_hh});
    expect_second_gradients_match(full, {xproj, w_hh, h0}, 1e-5, 1e-5);
    expect_second_gradients_match(weights_first, {w_hh, xproj, h0}, 1e-5, 1e-5);
    expect_second_gradients_match(h0_first, {h0, xproj, w_hh}, 1e-5, 1e-5);
    expect_second_gradients_match(squared, {xproj, w_hh, h0}, 1e-5, 1e-5);
  }
}

TEST_P(FusedLstmOpsTest, RnnSequenceHandlesEmptyBatchesAndRejectsBadOperands) {
  const Device device = GetParam();
  Tensor empty_x(NDArray::zeros({3, 0, 4}, DType::Float64, device), true);
  Tensor w(NDArray::zeros({4, 4}, DType::Float64, device), true);
  ops::summation(ops::rnn_sequence(empty_x, w)).backward();
  EXPECT_EQ(empty_x.grad().shape(), (Shape{3, 0, 4}));
  EXPECT_EQ(host(w.grad().value()), std::vector<double>(16, 0.0));

  const Tensor x(NDArray::zeros({3, 2, 4}, DType::Float32, device));
  const Tensor w32(NDArray::zeros({4, 4}, DType::Float32, device));
  testing::expect_error<ValueError>([&] { (void)ops::rnn_sequence(x, w32, Tensor(), "sigmoid"); },
                                    "rnn_sequence: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'");
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::rnn_sequence(x, Tensor(NDArray::zeros({4, 3}, DType::Float32, device)));
      },
      "rnn_sequence: w_hh must have shape (4, 4) for xproj of shape (3, 2, 4), got (4, 3)");
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::rnn_sequence(x, w32, Tensor(NDArray::zeros({3, 4}, DType::Float32, device)));
      },
      "rnn_sequence: h0 must have shape (2, 4)");
  // Mixed float32/float64 operands promote, as in every op.
  EXPECT_EQ(ops::rnn_sequence(x, Tensor(NDArray::zeros({4, 4}, DType::Float64, device))).dtype(), DType::Float64);
}

// A 2-layer RNN's output, final state and every gradient against its cells unrolled by hand (RNNCell::forward
// is still the composed cell).
void expect_rnn_matches_cells(Device device, DType dtype, const std::string& nonlinearity, bool with_state) {
  SCOPED_TRACE(str(dtype_name(dtype), " ", nonlinearity, with_state ? " with state" : " zero state"));
  manual_seed(6);
  nn::RNN rnn(6, 5, 2, true, nonlinearity, device, dtype);
  const NDArray x_value = (random_array({4, 3, 6}, device, 111) * Scalar(2.0)).astype(dtype);
  const NDArray h0_value = random_array({2, 3, 5}, device, 112).astype(dtype);
  const NDArray w_value = random_array({4, 3, 5}, device, 113).astype(dtype);

  Tensor x(x_value.copy(), true);
  Tensor h0(h0_value.copy(), true);
  const auto [out, h_n] = rnn.forward(x, with_state ? h0 : Tensor());
  (ops::summation(out * Tensor(w_value)) + ops::summation(h_n * h_n)).backward();
  std::vector<std::vector<double>> layer_grads;
  for (const Tensor& p : rnn.parameters()) layer_grads.push_back(grad_or_zeros(p));
  rnn.zero_grad();

  Tensor xr(x_value.copy(), true);
  Tensor h0r(h0_value.copy(), true);
  std::vector<Tensor> steps = ops::split(xr, 0);
  const std::vector<Tensor> hs = ops::split(h0r, 0);
  std::vector<Tensor> finals;
  for (std::int64_t l = 0; l < 2; ++l) {
    Tensor h = with_state ? hs[static_cast<std::size_t>(l)] : Tensor();
    for (Tensor& step : steps) {
      h = rnn.cell(l)->forward(step, h);
      step = h;
    }
    finals.push_back(h);
  }
  const Tensor out_r = ops::stack(steps, 0);
  const Tensor hn_r = ops::stack(finals, 0);
  (ops::summation(out_r * Tensor(w_value)) + ops::summation(hn_r * hn_r)).backward();

  const double tol = dtype == DType::Float32 ? 2e-5 : 1e-12;
  expect_close(host(out.value()), host(out_r.value()), tol, "output");
  expect_close(host(h_n.value()), host(hn_r.value()), tol, "h_n");
  expect_close(host(x.grad().value()), host(xr.grad().value()), tol, "dx");
  if (with_state) expect_close(host(h0.grad().value()), host(h0r.grad().value()), tol, "dh0");
  std::size_t k = 0;
  for (const Tensor& p : rnn.parameters()) {
    expect_close(layer_grads[k++], grad_or_zeros(p), tol, "parameter gradient");
  }
}

TEST_P(FusedLstmOpsTest, RnnLayerMatchesItsCellsInValueAndGradient) {
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const std::string nonlinearity : {"tanh", "relu"}) {
      for (const bool with_state : {true, false}) expect_rnn_matches_cells(GetParam(), dtype, nonlinearity, with_state);
    }
  }
}

TEST(FusedLstmLayers, AgreeWithRefUnderCheckAgainstRef) {
  // Every op of the layers' forward and backward, computed again on `ref` and compared element by element:
  // this also catches a packed result with elements left unwritten (the optional states absent or given).
  manual_seed(12);
  nn::LSTM lstm(4, 3, 2, true, cpu_device(), DType::Float64);
  nn::RNN rnn(4, 3, 2, true, "relu", cpu_device(), DType::Float64);
  const NDArray x_value = random_array({5, 2, 4}, cpu_device(), 121);
  for (const bool with_state : {false, true}) {
    SCOPED_TRACE(with_state ? "with state" : "zero state");
    const debug::CheckAgainstRefGuard check;
    Tensor x(x_value.copy(), true);
    const Tensor h0 = with_state ? Tensor(random_array({2, 2, 3}, cpu_device(), 122), true) : Tensor();
    const Tensor c0 = with_state ? Tensor(random_array({2, 2, 3}, cpu_device(), 123), true) : Tensor();
    const auto [out, state] = lstm.forward(x, {h0, c0});
    const auto [rnn_out, rnn_h] = rnn.forward(x, h0);
    EXPECT_NO_THROW(
        (ops::summation(out) + ops::summation(state.second) + ops::summation(rnn_out * rnn_out) + ops::summation(rnn_h))
            .backward());
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, FusedLstmOpsTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
