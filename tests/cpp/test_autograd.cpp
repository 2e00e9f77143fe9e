// The autograd engine: graph recording, backward, accumulation, grad mode, graph release, double backward.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <numbers>

#include "gradcheck.h"

namespace needle {
namespace {

using testing::expect_gradients_match;
using testing::random_array;

class AutogradTest : public ::testing::TestWithParam<Device> {
 protected:
  [[nodiscard]] Tensor leaf(const std::vector<double>& values, const Shape& shape) const {
    return Tensor(NDArray::from_vector(values, shape, GetParam()), true);
  }
};

TEST_P(AutogradTest, RecordsTheGraphOnlyWhenAnInputRequiresGrad) {
  const Tensor a = leaf({1, 2}, {2});
  const Tensor b(NDArray::ones({2}, DType::Float64, GetParam()));
  const Tensor c = a * b;
  EXPECT_TRUE(c.requires_grad());
  EXPECT_FALSE(c.is_leaf());
  EXPECT_EQ(c.op()->name(), "multiply");
  ASSERT_EQ(c.inputs().size(), 2U);
  EXPECT_TRUE(c.inputs()[0].same(a));
  const Tensor d = b + b;
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
}

TEST_P(AutogradTest, IntegerTensorsNeverRequireGrad) {
  const Tensor i(NDArray::arange(3, DType::Int64, GetParam()), true);
  EXPECT_FALSE(i.requires_grad());
  Tensor j(NDArray::arange(3, DType::Int64, GetParam()));
  EXPECT_THROW(j.set_requires_grad(true), TypeError);
}

TEST_P(AutogradTest, GradientOfATensorUsedSeveralTimesAccumulates) {
  const Tensor x = leaf({3.0}, {});
  const Tensor y = x * x + x;  // dy/dx = 2x + 1 = 7
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().value().item().to<double>(), 7.0);
  const Tensor z = x * Scalar(2.0);
  z.backward();  // leaves keep accumulating until reset
  EXPECT_DOUBLE_EQ(x.grad().value().item().to<double>(), 9.0);
  Tensor(x).reset_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST_P(AutogradTest, BroadcastInputsGetGradientsOfTheirOwnShape) {
  const Tensor a = leaf({1, 2, 3}, {3});
  const Tensor b = leaf({1, 2}, {2, 1});
  const Tensor c = a * b;  // (2, 3)
  c.backward();
  EXPECT_EQ(a.grad().shape(), (Shape{3}));
  EXPECT_EQ(a.grad().value().to_vector<double>(), (std::vector<double>{3, 3, 3}));
  EXPECT_EQ(b.grad().value().to_vector<double>(), (std::vector<double>{6, 6}));
}

TEST_P(AutogradTest, BackwardWithoutOutGradOnNonScalarUsesOnes) {
  const Tensor a = leaf({1, 2, 3}, {3});
  ops::exp(a).backward();
  EXPECT_NEAR(a.grad().value().to_vector<double>()[2], std::exp(3.0), 1e-12);
}

TEST_P(AutogradTest, OutGradOfTheWrongShapeIsAValueError) {
  const Tensor a = leaf({1, 2, 3}, {3});
  const Tensor b = ops::exp(a);
  EXPECT_THROW(b.backward(Tensor(NDArray::ones({2}, DType::Float64, GetParam()))), ValueError);
}

TEST_P(AutogradTest, NoGradGuardStopsRecordingAndRestores) {
  const Tensor a = leaf({1}, {1});
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    EXPECT_FALSE((a * a).requires_grad());
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_TRUE((a * a).requires_grad());
}

TEST_P(AutogradTest, DetachCutsTheGraphButSharesTheValue) {
  const Tensor a = leaf({1, 2}, {2});
  const Tensor d = (a * a).detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  const Tensor e = a.detach();
  EXPECT_TRUE(e.value().shares_storage_with(a.value()));
}

TEST_P(AutogradTest, GraphIsReleasedAfterBackwardAndASecondBackwardSaysSo) {
  const Tensor a = leaf({1, 2}, {2});
  const Tensor b = ops::exp(a);
  const Tensor c = ops::summation(b);
  c.backward(Tensor(), /*retain_graph=*/true);
  c.backward();  // allowed: the first call kept the graph
  EXPECT_TRUE(c.inputs().empty());
  EXPECT_TRUE(b.inputs().empty());
  try {
    c.backward();
    FAIL() << "expected an error";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("already released"), std::string::npos) << e.what();
  }
  EXPECT_NEAR(a.grad().value().to_vector<double>()[0], 2 * std::exp(1.0), 1e-12);
}

TEST_P(AutogradTest, TrainingLikeLoopHoldsConstantMemory) {
  const Tensor w(random_array({16, 16}, GetParam(), 1), true);
  const Tensor x(random_array({8, 16}, GetParam(), 2));
  std::size_t live_after_first = 0;
  for (int step = 0; step < 10000; ++step) {
    {
      const Tensor loss = ops::summation(ops::relu(ops::matmul(x, w)) * Scalar(0.5));
      loss.backward();
      Tensor(w).reset_grad();
    }
    if (step == 0) live_after_first = Storage::live_count(GetParam());
  }
  EXPECT_EQ(Storage::live_count(GetParam()), live_after_first);
}

TEST_P(AutogradTest, TopologicalOrderPutsInputsFirst) {
  const Tensor a = leaf({1}, {1});
  const Tensor b = a * a;
  const Tensor c = b + a;
  const std::vector<Tensor> order = autograd::topological_order({c});
  ASSERT_EQ(order.size(), 3U);
  EXPECT_TRUE(order[0].same(a));
  EXPECT_TRUE(order[1].same(b));
  EXPECT_TRUE(order[2].same(c));
}

TEST_P(AutogradTest, DeepGraphsDoNotOverflowTheStack) {
  const Tensor a = leaf({0.5}, {1});
  Tensor x = a;
  for (int i = 0; i < 20000; ++i) x = x + Scalar(1.0);
  x.backward();
  EXPECT_DOUBLE_EQ(a.grad().value().item().to<double>(), 1.0);
}

TEST_P(AutogradTest, DoubleBackwardOfTanh) {
  const Tensor x = leaf({0.3, -1.2}, {2});
  const Tensor y = ops::summation(ops::tanh(x));
  y.backward(Tensor(), false, /*create_graph=*/true);
  const Tensor first = x.grad();  // 1 - tanh(x)^2, itself differentiable
  ASSERT_TRUE(first.requires_grad());
  Tensor(x).reset_grad();
  ops::summation(first).backward();
  const std::vector<double> second = x.grad().value().to_vector<double>();
  for (std::size_t i = 0; i < 2; ++i) {
    const double v = std::vector<double>{0.3, -1.2}[i];
    const double t = std::tanh(v);
    EXPECT_NEAR(second[i], -2 * t * (1 - t * t), 1e-12);
  }
}

// GELU's first derivative is a kernel of its own (gelu_grad); its second is composed from ops: phi(x) (2 - x^2).
TEST_P(AutogradTest, DoubleBackwardOfGelu) {
  const std::vector<double> values = {0.3, -1.2, 2.5, -4.0};
  const Tensor x = leaf(values, {4});
  ops::summation(ops::gelu(x)).backward(Tensor(), false, /*create_graph=*/true);
  const Tensor first = x.grad();
  ASSERT_TRUE(first.requires_grad());
  const std::vector<double> first_values = first.value().to_vector<double>();
  Tensor(x).reset_grad();
  ops::summation(first).backward();
  const std::vector<double> second = x.grad().value().to_vector<double>();
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    const double phi = std::exp(-0.5 * v * v) / std::sqrt(2.0 * std::numbers::pi);
    EXPECT_NEAR(first_values[i], 0.5 * std::erfc(-v / std::sqrt(2.0)) + v * phi, 1e-12);
    EXPECT_NEAR(second[i], phi * (2.0 - v * v), 1e-12);
  }
}

TEST_P(AutogradTest, ToDeviceIsDifferentiable) {
  const Device other = GetParam() == cpu_device() ? ref_device() : cpu_device();
  const Tensor a = leaf({1, 2}, {2});
  const Tensor moved = ops::to_device(a, other);
  EXPECT_EQ(moved.device(), other);
  ops::summation(moved * moved).backward();
  EXPECT_EQ(a.grad().device(), GetParam());
  EXPECT_EQ(a.grad().value().to_vector<double>(), (std::vector<double>{2, 4}));
}

TEST_P(AutogradTest, LiveTensorCountReturnsToItsStart) {
  const std::size_t before = TensorImpl::live_count();
  {
    const Tensor a = leaf({1, 2}, {2});
    ops::summation(ops::exp(a) * a).backward();
    EXPECT_GT(TensorImpl::live_count(), before);
  }
  EXPECT_EQ(TensorImpl::live_count(), before);
}

TEST_P(AutogradTest, CreateGraphLeavesNoCycleOnceTheLeafGradIsReset) {
  const std::size_t before = Storage::live_count(GetParam());
  {
    const Tensor x = leaf({0.5, 1.5}, {2});
    const Tensor e = ops::exp(x);
    ops::summation(e * e).backward(Tensor(), false, /*create_graph=*/true);
    EXPECT_FALSE(e.grad().defined());  // intermediates keep no recorded gradient
    Tensor(x).reset_grad();
  }
  EXPECT_EQ(Storage::live_count(GetParam()), before);
}

TEST_P(AutogradTest, ElementwiseGradientsMatchFiniteDifferences) {
  const Device d = GetParam();
  const NDArray a = random_array({3, 4}, d, 10);
  const NDArray b = random_array({4}, d, 11, 0.5, 2.0);
  const NDArray positive = random_array({3, 4}, d, 12, 0.5, 2.0);
  using V = std::vector<Tensor>;
  expect_gradients_match([](const V& t) { return t[0] + t[1]; }, {a, b});
  expect_gradients_match([](const V& t) { return t[0] - t[1]; }, {a, b});
  expect_gradients_match([](const V& t) { return t[0] * t[1]; }, {a, b});
  expect_gradients_match([](const V& t) { return t[0] / t[1]; }, {a, b});
  expect_gradients_match([](const V& t) { return ops::power(t[0], t[1]); }, {positive, b});
  expect_gradients_match([](const V& t) { return ops::maximum(t[0], t[1]); }, {a, b});
  expect_gradients_match([](const V& t) { return ops::minimum(t[0], t[1]); }, {a, b});
  expect_gradients_match([](const V& t) { return ops::add_scalar(t[0], Scalar(2.0)); }, {a});
  expect_gradients_match([](const V& t) { return ops::mul_scalar(t[0], Scalar(-3.0)); }, {a});
  expect_gradients_match([](const V& t) { return ops::divide_scalar(t[0], Scalar(4.0)); }, {a});
  expect_gradients_match([](const V& t) { return ops::power_scalar(t[0], Scalar(3)); }, {a});
  expect_gradients_match([](const V& t) { return ops::power_scalar(t[0], Scalar(-1.5)); }, {positive});
  expect_gradients_match([](const V& t) { return ops::rpower_scalar(Scalar(2.5), t[0]); }, {a});
  expect_gradients_match([](const V& t) { return ops::rdivide_scalar(Scalar(2.0), t[0]); }, {positive});
  expect_gradients_match([](const V& t) { return ops::negate(t[0]); }, {a});
  expect_gradients_match([](const V& t) { return ops::exp(t[0]); }, {a});
  expect_gradients_match([](const V& t) { return ops::log(t[0]); }, {positive});
  expect_gradients_match([](const V& t) { return ops::sqrt(t[0]); }, {positive});
  expect_gradients_match([](const V& t) { return ops::abs(t[0]); }, {a});
  expect_gradients_match([](const V& t) { return ops::relu(t[0]); }, {a});
  expect_gradients_match([](const V& t) { return ops::leaky_relu(t[0], 0.1); }, {a});
  expect_gradients_match([](const V& t) { return ops::tanh(t[0]); }, {a});
  expect_gradients_match([](const V& t) { return ops::sigmoid(t[0]); }, {a});
  expect_gradients_match([](const V& t) { return ops::gelu(t[0]); }, {a});
  const Tensor cond(needle::gt(random_array({3, 4}, d, 13), NDArray::zeros({}, DType::Float64, d)));
  expect_gradients_match([&](const V& t) { return ops::where(cond, t[0], t[1]); }, {a, b});
  expect_gradients_match([](const V& t) { return ops::astype(t[0], DType::Float32); }, {a}, 1e-3, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Devices, AutogradTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
