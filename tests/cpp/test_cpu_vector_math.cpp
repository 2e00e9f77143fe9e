// The cpu backend's vectorised float32 exp, sigmoid, GELU and GELU derivative (backend/cpu/vector_math.h)
// against the same functions evaluated in double precision, over a dense sweep of inputs, the special values
// and the subnormal range, and at every tail length, for the AVX-512 and the AVX2 kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "backend/cpu/vector_math.h"

namespace needle {
namespace {

// Inputs from `lo` to `hi` in `steps` even steps, plus values that trip the usual edge cases.
std::vector<float> sweep(float lo, float hi, int steps) {
  std::vector<float> xs;
  for (int i = 0; i <= steps; ++i) xs.push_back(lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(steps));
  for (float x : {0.0F, -0.0F, 1e-30F, -1e-30F, 1e-7F, -1e-7F, 0.5F, -0.5F, 88.72F, 88.73F, -87.3F, -103.9F, -104.5F,
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::lowest()}) {
    xs.push_back(x);
  }
  return xs;
}

struct Tolerance {
  double rtol;
  double atol;
};

// Runs the vector kernel for `op` on `xs` and checks every result against want(x) within the tolerance;
// NaN must give NaN and infinities must match exactly.
template <typename Want>
void expect_close_at_width(UnaryOp op, const std::vector<float>& xs, Want want, Tolerance tol, bool avx2_only) {
  cpu::set_vector_math_avx2_only(avx2_only);
  const cpu::FloatArrayFn fn = cpu::vector_unary_f32(op);
  cpu::set_vector_math_avx2_only(false);
  if (fn == nullptr) GTEST_SKIP() << "this CPU has no AVX2 + FMA: the cpu backend uses the scalar loops";
  std::vector<float> out(xs.size());
  fn(out.data(), xs.data(), static_cast<std::int64_t>(xs.size()));
  int failures = 0;
  for (std::size_t i = 0; i < xs.size() && failures < 5; ++i) {
    // The exact answer rounded to float: that is what a perfect float32 kernel returns (inf past FLT_MAX).
    const double expected = static_cast<float>(want(xs[i]));
    const double got = out[i];
    bool ok = false;
    if (std::isnan(expected)) {
      ok = std::isnan(got);
    } else if (std::isinf(expected) || std::isinf(got)) {
      ok = expected == got;
    } else {
      ok = std::abs(got - expected) <= tol.rtol * std::abs(expected) + tol.atol;
    }
    if (!ok) {
      ++failures;
      ADD_FAILURE() << unary_op_name(op) << "(" << xs[i] << ") = " << got << ", expected " << expected;
    }
  }
}

// Both widths: the CPU's widest kernels (AVX-512 where it has it), then the AVX2 ones.
template <typename Want>
void expect_close(UnaryOp op, const std::vector<float>& xs, Want want, Tolerance tol) {
  for (const bool avx2_only : {false, true}) {
    SCOPED_TRACE(avx2_only ? "AVX2" : "widest");
    expect_close_at_width(op, xs, want, tol, avx2_only);
  }
}

// -x / sqrt 2 rounded to float exactly as the kernels (and element_ops.h) round it: the reference evaluates
// erfc at the same point, so what is measured is the kernel's own error.
double rounded_z(float x) { return static_cast<double>(x * -0.70710678118654752F); }

double gelu_want(float x) { return static_cast<double>(x) * 0.5 * std::erfc(rounded_z(x)); }

double gelu_grad_want(float x) {
  const double z = rounded_z(x);
  return 0.5 * std::erfc(z) +
         static_cast<double>(x) * std::exp(-z * z) * 0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2;
}

TEST(CpuVectorMath, ExpWithinTwoUlps) {
  std::vector<float> xs = sweep(-110.0F, 90.0F, 400001);
  xs.push_back(std::numeric_limits<float>::infinity());
  xs.push_back(-std::numeric_limits<float>::infinity());
  xs.push_back(std::numeric_limits<float>::quiet_NaN());
  // Two float ulps relative; subnormal results (below 2^-126) may differ by one subnormal step.
  expect_close(UnaryOp::Exp, xs, [](float x) { return std::exp(static_cast<double>(x)); }, {2.4e-7, 1.5e-45});
}

TEST(CpuVectorMath, SigmoidWithinThreeUlps) {
  std::vector<float> xs = sweep(-100.0F, 100.0F, 400001);
  xs.push_back(std::numeric_limits<float>::infinity());
  xs.push_back(-std::numeric_limits<float>::infinity());
  xs.push_back(std::numeric_limits<float>::quiet_NaN());
  expect_close(UnaryOp::Sigmoid, xs, [](float x) { return 1.0 / (1.0 + std::exp(-static_cast<double>(x))); },
               {3.6e-7, 1.5e-45});
}

TEST(CpuVectorMath, TanhWithinFourUlps) {
  std::vector<float> xs = sweep(-12.0F, 12.0F, 400001);
  for (float x : {0.6249F, 0.625F, 0.6251F, -0.6249F, -0.625F, 1e-20F, -1e-20F, 50.0F, -50.0F}) xs.push_back(x);
  xs.push_back(std::numeric_limits<float>::infinity());
  xs.push_back(-std::numeric_limits<float>::infinity());
  xs.push_back(std::numeric_limits<float>::quiet_NaN());
  expect_close(UnaryOp::Tanh, xs, [](float x) { return std::tanh(static_cast<double>(x)); }, {4.8e-7, 0.0});
}

TEST(CpuVectorMath, GeluMatchesErfcFormula) {
  std::vector<float> xs = sweep(-20.0F, 20.0F, 400001);
  xs.push_back(std::numeric_limits<float>::infinity());
  xs.push_back(std::numeric_limits<float>::quiet_NaN());
  // The erfc fit is good to 1.2e-7 relative; float evaluation adds a few ulps.
  expect_close(UnaryOp::Gelu, xs, gelu_want, {1e-6, 1e-38});
}

TEST(CpuVectorMath, GeluGradMatchesFormula) {
  std::vector<float> xs = sweep(-20.0F, 20.0F, 400001);
  xs.push_back(std::numeric_limits<float>::infinity());
  xs.push_back(std::numeric_limits<float>::quiet_NaN());
  // Absolute tolerance: the derivative crosses zero near x = -0.75, where a relative bound means nothing.
  expect_close(UnaryOp::GeluGrad, xs, gelu_grad_want, {1e-6, 1e-7});
}

// fn = exp on every length up to 35 (two whole vectors of either width and every tail after them).
void expect_every_tail(cpu::FloatArrayFn fn, bool avx2_only) {
  for (std::int64_t n = 0; n <= 35; ++n) {
    // A guard element past the end must stay untouched.
    std::vector<float> in(static_cast<std::size_t>(n) + 1, 0.25F);
    std::vector<float> out(static_cast<std::size_t>(n) + 1, -1.0F);
    fn(out.data(), in.data(), n);
    for (std::int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(out[static_cast<std::size_t>(i)], std::exp(0.25), 1e-6)
          << "n = " << n << ", i = " << i << (avx2_only ? " (AVX2)" : "");
    }
    EXPECT_EQ(out.back(), -1.0F) << "n = " << n << (avx2_only ? " (AVX2)" : "");
  }
}

TEST(CpuVectorMath, EveryTailLengthAtBothWidths) {
  for (const bool avx2_only : {false, true}) {
    cpu::set_vector_math_avx2_only(avx2_only);
    const cpu::FloatArrayFn fn = cpu::vector_unary_f32(UnaryOp::Exp);
    cpu::set_vector_math_avx2_only(false);
    if (fn == nullptr) GTEST_SKIP() << "this CPU has no AVX2 + FMA: the cpu backend uses the scalar loops";
    expect_every_tail(fn, avx2_only);
  }
}

// Every lane computes what the others do, so the AVX-512 and AVX2 kernels agree to the bit on every input.
TEST(CpuVectorMath, BothWidthsGiveTheSameBits) {
  std::vector<float> xs = sweep(-120.0F, 120.0F, 100003);
  xs.push_back(std::numeric_limits<float>::quiet_NaN());
  xs.push_back(std::numeric_limits<float>::infinity());
  xs.push_back(-std::numeric_limits<float>::infinity());
  for (const UnaryOp op : {UnaryOp::Exp, UnaryOp::Sigmoid, UnaryOp::Tanh, UnaryOp::Gelu, UnaryOp::GeluGrad}) {
    const cpu::FloatArrayFn widest = cpu::vector_unary_f32(op);
    cpu::set_vector_math_avx2_only(true);
    const cpu::FloatArrayFn avx2 = cpu::vector_unary_f32(op);
    cpu::set_vector_math_avx2_only(false);
    if (widest == nullptr) GTEST_SKIP() << "this CPU has no AVX2 + FMA: the cpu backend uses the scalar loops";
    std::vector<float> a(xs.size());
    std::vector<float> b(xs.size());
    widest(a.data(), xs.data(), static_cast<std::int64_t>(xs.size()));
    avx2(b.data(), xs.data(), static_cast<std::int64_t>(xs.size()));
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << unary_op_name(op);
  }
}

TEST(CpuVectorMath, OnlyTheVectorisedOpsHaveKernels) {
  for (UnaryOp op : {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Relu, UnaryOp::Erf}) {
    EXPECT_EQ(cpu::vector_unary_f32(op), nullptr) << unary_op_name(op);
  }
}

}  // namespace
}  // namespace needle
