// Storage versions and the backward check they feed: a tensor a node saved for its gradient and written in
// place (or replaced) before backward() makes backward() raise instead of computing a wrong gradient.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ops/batch_norm.h"

namespace needle {
namespace {

class VersionsTest : public ::testing::TestWithParam<Device> {
 protected:
  [[nodiscard]] NDArray array(const std::vector<double>& values) const {
    return NDArray::from_vector(values, {static_cast<std::int64_t>(values.size())}, GetParam());
  }
  [[nodiscard]] Tensor leaf(const std::vector<double>& values, bool requires_grad = true) const {
    return Tensor(array(values), requires_grad);
  }
};

std::uint64_t version_of(const NDArray& a) { return a.storage()->version(); }
std::uint64_t version_of(const Tensor& t) { return version_of(t.value()); }

// Runs `fn`, which must throw RuntimeError, and returns the message.
template <typename Fn>
std::string runtime_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const RuntimeError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a RuntimeError";
  return "";
}

std::vector<double> values_of(const Tensor& t) { return t.value().to_vector<double>(); }

// ---- the counter --------------------------------------------------------------------------------

TEST_P(VersionsTest, FreshArraysStartAtVersionZero) {
  EXPECT_EQ(version_of(NDArray::zeros({3}, DType::Float64, GetParam())), 0U);
  EXPECT_EQ(version_of(NDArray::full({3}, Scalar(2.0), DType::Float64, GetParam())), 0U);
  EXPECT_EQ(version_of(array({1, 2})), 0U);
  EXPECT_EQ(version_of(leaf({1, 2}) * leaf({3, 4})), 0U);
}

TEST_P(VersionsTest, EveryKindOfInPlaceWriteIncrementsTheVersion) {
  NDArray a = array({1, 2, 3, 4});
  a.fill(Scalar(0.0));
  EXPECT_EQ(version_of(a), 1U);
  a.assign(array({5, 6, 7, 8}));
  EXPECT_EQ(version_of(a), 2U);
  a.assign({IndexItem::range(0, 2)}, array({1, 1}));
  EXPECT_EQ(version_of(a), 3U);
  a.assign({IndexItem::at(3)}, Scalar(9.0));
  EXPECT_EQ(version_of(a), 4U);
  // A view shares its storage's counter, both ways.
  NDArray view = a.reshape({2, 2});
  view.fill(Scalar(1.0));
  EXPECT_EQ(version_of(a), 5U);
  // Reading, copying and making views are not writes.
  (void)a.copy();
  (void)a.index({IndexItem::range(1, 3)});
  (void)(a + a);
  EXPECT_EQ(version_of(a), 5U);
  // Writing nothing (an empty slice) changes nothing.
  a.assign({IndexItem::range(2, 2)}, Scalar(3.0));
  EXPECT_EQ(version_of(a), 5U);
}

TEST_P(VersionsTest, OptimizerUpdatesIncrementTheVersionsOfWhatTheyWrite) {
  NDArray param = array({1, 2});
  const NDArray grad = array({0.5, 0.5});
  NDArray buffer = NDArray::zeros({2}, DType::Float64, GetParam());
  SgdStep sgd;
  sgd.lr = 0.1;
  sgd.momentum = 0.9;
  sgd_update(param, grad, &buffer, sgd);
  EXPECT_EQ(version_of(param), 1U);
  EXPECT_EQ(version_of(buffer), 1U);
  EXPECT_EQ(version_of(grad), 0U);

  NDArray m = NDArray::zeros({2}, DType::Float64, GetParam());
  NDArray v = NDArray::zeros({2}, DType::Float64, GetParam());
  AdamStep adam;
  adam.lr = 0.1;
  adam.beta1 = 0.9;
  adam.beta2 = 0.999;
  adam.eps = 1e-8;
  adam.correction1 = 0.1;
  adam.correction2 = 0.001;
  adam_update(param, grad, m, v, adam);
  EXPECT_EQ(version_of(param), 2U);
  EXPECT_EQ(version_of(m), 1U);
  EXPECT_EQ(version_of(v), 1U);
}

// ---- the three ways to corrupt a saved input ------------------------------------------------------

TEST_P(VersionsTest, WritingASavedInputAfterTheForwardPassRaises) {
  // x needs no gradient, so writing it in place is allowed; but multiply saved it for w's gradient.
  const Tensor x = leaf({1, 2, 3}, false);
  const Tensor w = leaf({4, 5, 6});
  const Tensor y = ops::summation(x * w);
  NDArray x_value = x.value();
  x_value.fill(Scalar(10.0));
  const std::string message = runtime_error_of([&] { y.backward(); });
  EXPECT_NE(message.find("one of the tensors needed for gradient computation has been modified by an inplace "
                         "operation: input 0 of multiply (shape (3,)) is at version 1, expected version 0"),
            std::string::npos)
      << message;
  EXPECT_FALSE(w.grad().defined());  // nothing was accumulated from the wrong values
}

TEST_P(VersionsTest, WritingALeafUnderNoGradAfterTheForwardPassRaises) {
  const Tensor x = leaf({1, 2, 3});
  const Tensor w = leaf({4, 5, 6});
  const Tensor y = ops::summation(x * w);
  {
    const NoGradGuard no_grad;
    NDArray w_value = w.value();
    w_value.assign({IndexItem::at(0)}, Scalar(0.0));
  }
  const std::string message = runtime_error_of([&] { y.backward(); });
  EXPECT_NE(message.find("input 1 of multiply (shape (3,)) is at version 1, expected version 0"), std::string::npos)
      << message;
}

TEST_P(VersionsTest, WritingThroughADetachedTensorRaises) {
  const Tensor x = leaf({1, 2, 3});
  const Tensor w = leaf({4, 5, 6});
  const Tensor y = ops::summation(x * w);
  NDArray detached = w.detach().value();
  detached.fill(Scalar(1.0));
  EXPECT_THROW(y.backward(), RuntimeError);
}

TEST_P(VersionsTest, ReplacingASavedValueRaises) {
  const Tensor x = leaf({1, 2, 3});
  const Tensor w = leaf({4, 5, 6});
  const Tensor y = ops::summation(x * w);
  Tensor(x).set_value(array({7, 8, 9}));
  const std::string message = runtime_error_of([&] { y.backward(); });
  EXPECT_NE(message.find("input 0 of multiply (shape (3,)) was given a new value"), std::string::npos) << message;
}

TEST_P(VersionsTest, ReassigningTheSameValueIsNoChange) {
  const Tensor x = leaf({1, 2, 3});
  const Tensor w = leaf({4, 5, 6});
  const Tensor y = ops::summation(x * w);
  Tensor(x).set_value(x.value());
  y.backward();
  EXPECT_EQ(values_of(w.grad()), (std::vector<double>{1, 2, 3}));
}

TEST_P(VersionsTest, WritingThroughAViewOfASavedInputRaises) {
  const Tensor x = leaf({1, 2, 3, 4}, false);
  const Tensor w = leaf({1, 1, 1, 1});
  const Tensor y = ops::summation(x * w);
  NDArray half = x.value().index({IndexItem::range(0, 2)});
  half.fill(Scalar(0.0));
  EXPECT_THROW(y.backward(), RuntimeError);
}

TEST_P(VersionsTest, WritingASavedOutputRaises) {
  const Tensor x = leaf({0, 1});
  const Tensor y = ops::exp(x);  // exp's gradient reads its output
  const Tensor loss = ops::summation(y);
  NDArray y_value = y.detach().value();
  y_value.fill(Scalar(0.0));
  const std::string message = runtime_error_of([&] { loss.backward(); });
  EXPECT_NE(message.find("output 0 of exp (shape (2,))"), std::string::npos) << message;
}

TEST_P(VersionsTest, WritingAnOutputOfANodeWithSeveralOutputsRaises) {
  const Tensor x(NDArray::from_vector(std::vector<double>{1, 2, 3, 5, 8, 13}, {3, 2}, GetParam()), true);
  NDArray batch_mean;
  NDArray batch_var;
  const Tensor y = ops::detail::batch_norm_train(x, Tensor(), Tensor(), 1e-5, batch_mean, batch_var);
  batch_var.fill(Scalar(1.0));  // the statistics the backward kernel reads
  const std::string message = runtime_error_of([&] { ops::summation(y * y).backward(); });
  EXPECT_NE(message.find("output 2 of batch_norm (shape (2,))"), std::string::npos) << message;
}

// ---- writes that stay allowed ---------------------------------------------------------------------

TEST_P(VersionsTest, WritingTensorsNoGradientReadsIsAllowed) {
  const Tensor x = leaf({1, 2, 3}, false);
  const Tensor w = leaf({4, 5, 6});
  // add, sum, reshape, negate and getitem read only shapes: nothing of x or w is saved.
  const Tensor y = ops::summation(ops::reshape(-(x + w), {3, 1})) + ops::summation(ops::getitem(w, {IndexItem::at(1)}));
  NDArray x_value = x.value();
  x_value.fill(Scalar(10.0));
  NDArray w_value = w.value();
  w_value.fill(Scalar(10.0));
  y.backward();
  EXPECT_EQ(values_of(w.grad()), (std::vector<double>{-1, 0, -1}));
}

TEST_P(VersionsTest, AnInputWhoseGradientIsNotNeededIsNotSaved) {
  // x @ W with a constant x (a first layer's input batch): W's gradient reads only x, so W may change.
  const Tensor x(NDArray::from_vector(std::vector<double>{1, 2}, {1, 2}, GetParam()), false);
  const Tensor weight(NDArray::from_vector(std::vector<double>{1, 1}, {2, 1}, GetParam()), true);
  const Tensor y = ops::summation(ops::matmul(x, weight));
  NDArray weight_value = weight.value();
  weight_value.fill(Scalar(5.0));
  y.backward();
  EXPECT_EQ(values_of(weight.grad()), (std::vector<double>{1, 2}));
  // But x is saved.
  const Tensor z = ops::summation(ops::matmul(x, weight));
  NDArray x_value = x.value();
  x_value.fill(Scalar(0.0));
  EXPECT_THROW(z.backward(), RuntimeError);
}

TEST_P(VersionsTest, UnaryFunctionsSaveWhatTheirGradientNames) {
  const Tensor x = leaf({1, 2});
  const Tensor negated = ops::summation(ops::negate(x));  // negate(g): reads nothing
  const Tensor relu = ops::summation(ops::relu(x));       // reads a
  NDArray x_value = x.detach().value();
  x_value.fill(Scalar(-1.0));
  negated.backward();
  EXPECT_EQ(values_of(x.grad()), (std::vector<double>{-1, -1}));
  EXPECT_THROW(relu.backward(), RuntimeError);
}

TEST_P(VersionsTest, WritingAfterBackwardIsAllowed) {
  const Tensor x = leaf({1, 2, 3});
  const Tensor w = leaf({4, 5, 6});
  const Tensor y = ops::summation(x * w);
  y.backward();
  NDArray w_value = w.value();
  w_value.fill(Scalar(0.0));  // the graph is released: nothing saved any more
  EXPECT_EQ(values_of(x.grad()), (std::vector<double>{4, 5, 6}));
}

TEST_P(VersionsTest, AnOptimizerStepBetweenTwoBackwardsOfOneGraphRaises) {
  nn::Linear layer(2, 1, true, GetParam(), DType::Float64);
  optim::SGD sgd(layer.parameters(), 0.1);
  const Tensor x(NDArray::from_vector(std::vector<double>{1, 2}, {1, 2}, GetParam()), true);
  const Tensor loss = ops::summation(layer.forward(x));
  loss.backward(Tensor(), /*retain_graph=*/true);
  sgd.step();  // writes the weight that the layer's linear node saved for x's gradient
  const std::string message = runtime_error_of([&] { loss.backward(); });
  EXPECT_NE(message.find("input 1 of linear (shape (2, 1)) is at version 1, expected version 0"), std::string::npos)
      << message;
}

TEST_P(VersionsTest, LoadingAStateDictBeforeBackwardRaises) {
  nn::Linear layer(2, 1, false, GetParam(), DType::Float64);
  const Tensor x(NDArray::from_vector(std::vector<double>{1, 2}, {1, 2}, GetParam()), true);
  const Tensor loss = ops::summation(layer.forward(x));
  layer.load_state_dict(layer.state_dict());
  EXPECT_THROW(loss.backward(), RuntimeError);
}

TEST_P(VersionsTest, TrainingLoopsStillWork) {
  // y = 2 x0 - x1 + 1, learned by a Linear layer with SGD (momentum) and with Adam.
  const Tensor x(NDArray::from_vector(std::vector<double>{1, 0, 0, 1, 1, 1, 2, -1}, {4, 2}, GetParam()));
  const Tensor target(NDArray::from_vector(std::vector<double>{3, 0, 2, 6}, {4, 1}, GetParam()));
  for (const bool adam : {false, true}) {
    nn::Linear layer(2, 1, true, GetParam(), DType::Float64);
    std::unique_ptr<optim::Optimizer> optimizer;
    if (adam) {
      optimizer = std::make_unique<optim::Adam>(layer.parameters(), 0.1);
    } else {
      optimizer = std::make_unique<optim::SGD>(layer.parameters(), 0.05, 0.9);
    }
    double first = 0.0;
    double last = 0.0;
    for (int step = 0; step < 20; ++step) {
      optimizer->zero_grad();
      const Tensor loss = ops::mse_loss(layer.forward(x), target);
      loss.backward();
      optimizer->step();
      last = loss.value().item().to<double>();
      if (step == 0) first = last;
    }
    EXPECT_LT(last, first / 2) << (adam ? "Adam" : "SGD");
  }
}

TEST_P(VersionsTest, BatchNormRunningStatisticsDoNotTripTheCheck) {
  // Each training forward replaces the running statistics; no graph saved them.
  nn::BatchNorm1d norm(2, 1e-5, 0.1, GetParam(), DType::Float64);
  const Tensor x(NDArray::from_vector(std::vector<double>{1, 2, 3, 5, 8, 13}, {3, 2}, GetParam()), true);
  const Tensor first = norm.forward(x);
  const Tensor second = norm.forward(x);
  ops::summation(first * first + second).backward();
  EXPECT_TRUE(x.grad().defined());
}

INSTANTIATE_TEST_SUITE_P(Devices, VersionsTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
