// Ops with several outputs and the NeedsGrad mask: the engine hands an op every output's gradient at once
// (undefined for an output no gradient reached), only after every consumer of every output is done, tells
// it which inputs need a gradient, and differentiates outputs the program dropped.
#include <gtest/gtest.h>
#include <needle/debug/anomaly.h>
#include <needle/needle.h>

#include <cmath>
#include <memory>
#include <vector>

#include "gradcheck.h"

namespace needle {
namespace {

using testing::expect_gradients_match;
using testing::random_array;
using V = std::vector<Tensor>;

// (a + b, a * b): two outputs from one node; its gradient is written with ops, so it is differentiable.
class SumAndProductOp final : public Op {
 public:
  std::string name() const override { return "sum_and_product"; }
  std::size_t num_outputs() const override { return 2; }
  std::vector<NDArray> compute_outputs(const std::vector<NDArray>& in) const override {
    return {needle::add(in[0], in[1]), needle::mul(in[0], in[1])};
  }
  std::vector<Tensor> gradient_outputs(const V& out_grads, const V& /*outputs*/, const V& inputs,
                                       const NeedsGrad& needs_grad) const override {
    ++calls;
    last_mask = needs_grad;
    last_grads_defined = {out_grads[0].defined(), out_grads[1].defined()};
    const Tensor zeros(NDArray::zeros(inputs[0].shape(), inputs[0].dtype(), inputs[0].device()));
    const Tensor g_sum = out_grads[0].defined() ? out_grads[0] : zeros;
    const Tensor g_product = out_grads[1].defined() ? out_grads[1] : zeros;
    return {needs_grad[0] ? g_sum + g_product * inputs[1] : Tensor(),
            needs_grad[1] ? g_sum + g_product * inputs[0] : Tensor()};
  }
  mutable int calls = 0;
  mutable NeedsGrad last_mask;
  mutable std::vector<bool> last_grads_defined;
};

V sum_and_product(const Tensor& a, const Tensor& b, std::shared_ptr<const SumAndProductOp> op = nullptr) {
  if (op == nullptr) op = std::make_shared<const SumAndProductOp>();
  return Tensor::from_op_outputs(op, {a, b});
}

class AutogradOutputsTest : public ::testing::TestWithParam<Device> {};

TEST_P(AutogradOutputsTest, BothOutputsUsedGiveTheGradientOfTheirSum) {
  const NDArray a = random_array({3, 4}, GetParam(), 1);
  const NDArray b = random_array({3, 4}, GetParam(), 2);
  // The outputs meet again only after further ops, so the node is reached through either first.
  expect_gradients_match(
      [](const V& t) {
        const V out = sum_and_product(t[0], t[1]);
        return ops::tanh(out[0]) * ops::exp(ops::sigmoid(out[1]));
      },
      {a, b});
  expect_gradients_match([](const V& t) { return sum_and_product(t[0], t[1])[1]; }, {a, b});
}

TEST_P(AutogradOutputsTest, TheNodeRunsOnceWithEveryOutputsGradient) {
  const Tensor a(random_array({2, 3}, GetParam(), 3), true);
  const Tensor b(random_array({2, 3}, GetParam(), 4), true);
  const auto op = std::make_shared<const SumAndProductOp>();
  const V out = sum_and_product(a, b, op);
  // A consumer of the second output sits after one of the first, which reaches the node sooner.
  const Tensor loss = ops::summation(ops::exp(out[0]) + out[1] * ops::tanh(out[0]));
  loss.backward();
  EXPECT_EQ(op->calls, 1);
  EXPECT_EQ(op->last_grads_defined, (std::vector<bool>{true, true}));
  // d/da sum(exp(a + b) + ab tanh(a + b)) = exp(s) + b tanh(s) + ab (1 - tanh(s)^2), s = a + b.
  const NDArray s = needle::add(a.value(), b.value());
  const NDArray t = needle::tanh(s);
  const NDArray p = needle::mul(a.value(), b.value());
  const NDArray expected =
      needle::add(needle::add(needle::exp(s), needle::mul(b.value(), t)), needle::mul(p, Scalar(1.0) - t * t));
  const std::vector<double> got = a.grad().value().astype(DType::Float64).to_vector<double>();
  const std::vector<double> want = expected.astype(DType::Float64).to_vector<double>();
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12);
}

TEST_P(AutogradOutputsTest, AnOutputNoGradientReachedIsUndefined) {
  const Tensor a(random_array({4}, GetParam(), 5), true);
  const Tensor b(random_array({4}, GetParam(), 6), true);
  const auto op = std::make_shared<const SumAndProductOp>();
  const V out = sum_and_product(a, b, op);
  ops::summation(out[1]).backward();
  EXPECT_EQ(op->last_grads_defined, (std::vector<bool>{false, true}));
  EXPECT_EQ(a.grad().value().to_vector<double>(), b.value().to_vector<double>());
}

TEST_P(AutogradOutputsTest, TheMaskSaysWhichInputsNeedAGradient) {
  Tensor a(random_array({4}, GetParam(), 7), true);
  const Tensor b(random_array({4}, GetParam(), 8), false);
  const auto op = std::make_shared<const SumAndProductOp>();
  ops::summation(sum_and_product(a, b, op)[0]).backward();
  EXPECT_EQ(op->last_mask, (NeedsGrad{true, false}));
  EXPECT_FALSE(b.grad().defined());
  // An input that stops requiring a gradient after recording: no input needs one, the node is not run.
  const auto second = std::make_shared<const SumAndProductOp>();
  const V out = sum_and_product(a, b, second);
  a.set_requires_grad(false);
  ops::summation(out[0]).backward();
  EXPECT_EQ(second->calls, 0);
}

// (exp(a), 2 exp(a)), whose gradient reads the first output: (g0 + 2 g1) * y0.
class ExpPairOp final : public Op {
 public:
  std::string name() const override { return "exp_pair"; }
  std::size_t num_outputs() const override { return 2; }
  std::vector<NDArray> compute_outputs(const std::vector<NDArray>& in) const override {
    const NDArray y = needle::exp(in[0]);
    return {y, y * Scalar(2.0)};
  }
  std::vector<Tensor> gradient_outputs(const V& out_grads, const V& outputs, const V& /*inputs*/,
                                       const NeedsGrad& /*needs_grad*/) const override {
    Tensor g = out_grads[0].defined() ? out_grads[0] : Tensor();
    if (out_grads[1].defined()) g = g.defined() ? g + out_grads[1] * Scalar(2.0) : out_grads[1] * Scalar(2.0);
    return {g * outputs[0]};
  }
};

TEST_P(AutogradOutputsTest, ADroppedOutputStillCarriesSecondDerivatives) {
  // Only 2 exp(a) is kept; the gradient reads exp(a), the dropped output, which must come back as an output
  // of the node (not a constant) for the second derivative: d/da sum(2 exp(a)) = 2 exp(a), and again 2 exp(a).
  Tensor a(random_array({3}, GetParam(), 9), true);
  const Tensor doubled = Tensor::from_op_outputs(std::make_shared<const ExpPairOp>(), {a})[1];
  ops::summation(doubled).backward(Tensor(), false, /*create_graph=*/true);
  const Tensor first = a.grad();
  a.reset_grad();
  ops::summation(first).backward();
  const std::vector<double> second = a.grad().value().to_vector<double>();
  const std::vector<double> values = a.value().to_vector<double>();
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(second[i], 2.0 * std::exp(values[i]), 1e-12);
}

TEST_P(AutogradOutputsTest, APowerWithAConstantExponentTakesNoLogOfTheBase) {
  // A negative base with an integer exponent: log(a) would be NaN, but the exponent needs no gradient.
  const Tensor a(NDArray::from_vector<double>({-2.0, -0.5, 3.0}, {3}, GetParam()), true);
  const Tensor n(NDArray::full({3}, Scalar(3.0), DType::Float64, GetParam()));
  const AnomalyModeGuard anomaly;
  ops::summation(ops::power(a, n)).backward();
  const std::vector<double> grad = a.grad().value().to_vector<double>();
  EXPECT_DOUBLE_EQ(grad[0], 12.0);
  EXPECT_DOUBLE_EQ(grad[1], 0.75);
  EXPECT_DOUBLE_EQ(grad[2], 27.0);
}

TEST_P(AutogradOutputsTest, FromOpRefusesAnOpWithSeveralOutputs) {
  const Tensor a(random_array({2}, GetParam(), 11), true);
  EXPECT_THROW((void)Tensor::from_op(std::make_shared<const SumAndProductOp>(), {a, a}), RuntimeError);
}

INSTANTIATE_TEST_SUITE_P(Devices, AutogradOutputsTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
