// Anomaly mode: a planted log(0) in forward and a planted NaN/Inf gradient in backward are reported with
// the op, the phase, the shapes and the line that created the op.
#include <gtest/gtest.h>
#include <needle/debug/debug.h>
#include <needle/needle.h>

#include <cmath>
#include <limits>
#include <string>

namespace needle {
namespace {

// Catches the error `run` raises and returns its message ("" and a failure when nothing is raised).
template <typename Fn>
std::string error_of(Fn&& run) {
  try {
    run();
  } catch (const RuntimeError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no RuntimeError was raised";
  return "";
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
}

TEST(DebugAnomaly, ForwardLogOfZeroNamesTheOpShapesAndLine) {
  const Tensor x(NDArray::from_vector<double>({1.0, 0.0, 2.0}, {3}), true);
  const Tensor y = ops::log(x);  // outside anomaly mode nothing is checked
  EXPECT_TRUE(std::isinf(y.value().to_vector<double>()[1]));

  const AnomalyModeGuard anomaly;
  EXPECT_TRUE(anomaly_mode_enabled());
  const Tensor scaled = x * Scalar(2.0);  // finite: passes
  int line = 0;
  const std::string message = error_of([&] {
    line = __LINE__ + 1;
    NEEDLE_CALL_SITE();
    (void)ops::log(scaled);
  });
  EXPECT_EQ(message.rfind("log: forward", 0), 0U) << message;
  expect_contains(message, "1 Inf");
  expect_contains(message, "shape (3,)");
  expect_contains(message, str("test_debug_anomaly.cpp:", line));
}

TEST(DebugAnomaly, BackwardInfGradientNamesTheOpThatProducedIt) {
  // sqrt is finite at 0 but its gradient 1 / (2 sqrt(x)) is not: the planted anomaly appears only in
  // backward, and the report must name sqrt and the line that created it, not the line of backward().
  const Tensor x(NDArray::from_vector<double>({4.0, 0.0}, {2}), true);
  const AnomalyModeGuard anomaly;
  int line = 0;
  Tensor root;
  {
    line = __LINE__ + 1;
    NEEDLE_CALL_SITE();
    root = ops::sqrt(x);
  }
  const Tensor loss = ops::summation(root * Scalar(3.0));
  const std::string message = error_of([&] { loss.backward(); });
  EXPECT_EQ(message.rfind("sqrt: backward", 0), 0U) << message;
  expect_contains(message, "gradient of input 0 (shape (2,))");
  expect_contains(message, str("test_debug_anomaly.cpp:", line));
}

// An op whose gradient is NaN by construction.
class NanGradientOp final : public SingleOutputOp {
 public:
  [[nodiscard]] std::string name() const override { return "nan_gradient"; }
  [[nodiscard]] NDArray compute(const std::vector<NDArray>& inputs) const override { return inputs[0].copy(); }
  [[nodiscard]] std::vector<Tensor> gradient(const Tensor& out_grad, const Tensor& /*node*/,
                                             const NeedsGrad& /*needs_grad*/) const override {
    return {out_grad * Scalar(std::numeric_limits<double>::quiet_NaN())};
  }
};

TEST(DebugAnomaly, PlantedNanGradientIsCaughtInBackward) {
  const Tensor x(NDArray::from_vector<double>({1.0, 2.0, 3.0, 4.0}, {2, 2}), true);
  const AnomalyModeGuard anomaly;
  const Tensor y = Tensor::from_op(std::make_shared<NanGradientOp>(), {x});
  const Tensor loss = ops::summation(ops::exp(y));
  const std::string message = error_of([&] { loss.backward(); });
  EXPECT_EQ(message.rfind("nan_gradient: backward", 0), 0U) << message;
  expect_contains(message, "4 NaN");
  expect_contains(message, "shape (2, 2)");
  expect_contains(message, "call site is unknown");
}

TEST(DebugAnomaly, AFiniteStepPassesAndTheModeEndsWithItsGuard) {
  const Tensor x(NDArray::from_vector<double>({0.5, 1.5, -2.0, 3.0}, {2, 2}), true);
  {
    const AnomalyModeGuard anomaly;
    const Tensor loss = ops::summation(ops::logsoftmax(ops::matmul(x, x), 1));
    EXPECT_NO_THROW(loss.backward());
    ASSERT_TRUE(x.grad().defined());
  }
  EXPECT_FALSE(anomaly_mode_enabled());
  EXPECT_NO_THROW((void)ops::log(Tensor(NDArray::zeros({2}))));
}

}  // namespace
}  // namespace needle
