// check_against_ref: a deliberately wrong kernel (installed only here, through the registry's override)
// is found and reported; the real kernels pass.
#include <gtest/gtest.h>
#include <needle/debug/debug.h>
#include <needle/needle.h>

#include <string>

#include "forwarding_backend.h"
#include "gradcheck.h"

namespace needle {
namespace {

using testing::random_array;

// The cpu backend with one bug: float32 additions are off by one in their first element.
class WrongAddBackend final : public testing::ForwardingBackend {
 public:
  WrongAddBackend() : ForwardingBackend(builtin_backend_for(cpu_device())) {}
  [[nodiscard]] std::string_view name() const override { return "cpu-with-wrong-add"; }

 protected:
  void binary_kernel(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) override {
    real().binary(op, out, a, b);
    if (op == BinaryOp::Add && out.dtype == DType::Float32 && out.size() > 0) *out.ptr<float>() += 1.0F;
  }
};

// Installs a backend in front of cpu for one scope.
class CpuOverride {
 public:
  explicit CpuOverride(Backend& backend) : previous_(set_backend_override(DeviceType::Cpu, &backend)) {}
  ~CpuOverride() { set_backend_override(DeviceType::Cpu, previous_); }
  CpuOverride(const CpuOverride&) = delete;
  CpuOverride& operator=(const CpuOverride&) = delete;
  CpuOverride(CpuOverride&&) = delete;
  CpuOverride& operator=(CpuOverride&&) = delete;

 private:
  Backend* previous_;
};

Tensor float32(const Shape& shape, std::uint64_t seed, bool requires_grad = false) {
  return Tensor(random_array(shape, cpu_device(), seed).astype(DType::Float32), requires_grad);
}

TEST(DebugCheckAgainstRef, FindsTheWrongKernelAndNamesOpShapesAndDifference) {
  WrongAddBackend wrong;
  const CpuOverride install(wrong);
  const Tensor a = float32({2, 3}, 1);
  const Tensor b = float32({3}, 2);
  const Tensor silently_wrong = a + b;  // unchecked: nothing notices
  EXPECT_NE(silently_wrong.value().to_vector<float>()[0],
            a.value().to_vector<float>()[0] + b.value().to_vector<float>()[0]);

  const debug::CheckAgainstRefGuard check;
  EXPECT_NO_THROW((void)(a * b));  // multiply is right
  try {
    (void)(a + b);
    FAIL() << "the wrong add kernel was not found";
  } catch (const RuntimeError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("add: ", 0), 0U) << message;
    EXPECT_NE(message.find("input shapes (2, 3), (3,)"), std::string::npos) << message;
    EXPECT_NE(message.find("in 1 of 6 elements"), std::string::npos) << message;
    EXPECT_NE(message.find("max abs difference 1"), std::string::npos) << message;
  }
}

TEST(DebugCheckAgainstRef, RealKernelsPassATrainingStepForwardAndBackward) {
  const Tensor x = float32({8, 5}, 3);
  const Tensor w1 = float32({5, 16}, 4, true);
  const Tensor w2 = float32({16, 4}, 5, true);
  const Tensor labels(NDArray::from_vector<std::int64_t>({0, 1, 2, 3, 0, 1, 2, 3}, {8}));
  const debug::CheckAgainstRefGuard check;
  EXPECT_TRUE(debug::check_against_ref_enabled());
  const Tensor loss = ops::cross_entropy(ops::matmul(ops::relu(ops::matmul(x, w1)), w2), labels);
  EXPECT_NO_THROW(loss.backward());
  EXPECT_TRUE(w1.grad().defined());
}

TEST(DebugCheckAgainstRef, TolerancesAreCheckedAndNest) {
  EXPECT_THROW(debug::CheckAgainstRefGuard(-1.0, 0.0), ValueError);
  EXPECT_FALSE(debug::check_against_ref_enabled());
  WrongAddBackend wrong;
  const CpuOverride install(wrong);
  const Tensor a = float32({4}, 6);
  const debug::CheckAgainstRefGuard strict;
  {
    const debug::CheckAgainstRefGuard loose(0.0, 2.0);  // an error of 1 is within atol = 2
    EXPECT_NO_THROW((void)(a + a));
  }
  EXPECT_THROW((void)(a + a), RuntimeError);
}

}  // namespace
}  // namespace needle
