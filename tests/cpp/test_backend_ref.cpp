// The `ref` kernels against hand-computed results: layouts (zero, negative and step strides, size-0
// and 0-d arrays), integer edge cases, NaN handling and the errors the kernels raise themselves.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend_test_util.h"
#include "needle/backend/backend.h"
#include "needle/backend/cuda.h"
#include "needle/core/error.h"
#include "needle/core/random.h"

namespace needle {
namespace {

using testing::array_of;
using testing::broadcast_to;
using testing::flipped;
using testing::stepped;
using testing::transposed;
using testing::values_of;
using testing::zeros;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr std::int32_t kInt32Min = std::numeric_limits<std::int32_t>::min();
constexpr std::int32_t kInt32Max = std::numeric_limits<std::int32_t>::max();
constexpr std::int64_t kInt64Min = std::numeric_limits<std::int64_t>::min();

Backend& ref() { return backend_for(ref_device()); }

// ---- names and registry ---------------------------------------------------------------------------

TEST(BackendRef, OpNames) {
  EXPECT_EQ(unary_op_name(UnaryOp::Exp), "exp");
  EXPECT_EQ(unary_op_name(UnaryOp::Sigmoid), "sigmoid");
  EXPECT_EQ(binary_op_name(BinaryOp::Add), "add");
  EXPECT_EQ(binary_op_name(BinaryOp::Maximum), "maximum");
  EXPECT_EQ(binary_op_name(BinaryOp::Lt), "lt");
  EXPECT_TRUE(is_comparison(BinaryOp::Eq));
  EXPECT_TRUE(is_comparison(BinaryOp::Ge));
  EXPECT_FALSE(is_comparison(BinaryOp::Minimum));
  EXPECT_FALSE(is_comparison(BinaryOp::Pow));
}

TEST(BackendRef, Registry) {
  EXPECT_EQ(backend_for(ref_device()).name(), "ref");
  EXPECT_EQ(backend_for(cpu_device()).name(), "cpu");
  EXPECT_EQ(&backend_for(ref_device()), &backend_for(ref_device()));
  EXPECT_TRUE(ref_device().enabled());
  EXPECT_TRUE(cpu_device().enabled());
  // A CUDA device past the last GPU (every one, on a machine without GPUs) has no backend.
  EXPECT_THROW(backend_for(cuda_device(cuda_device_count())), RuntimeError);
}

// ---- memory ---------------------------------------------------------------------------------------

TEST(BackendRef, AllocateIsAlignedAndUniqueEvenForZeroBytes) {
  void* empty1 = ref().allocate(0);
  void* empty2 = ref().allocate(0);
  void* odd = ref().allocate(100);
  ASSERT_NE(empty1, nullptr);
  ASSERT_NE(empty2, nullptr);
  EXPECT_NE(empty1, empty2);
  for (void* p : {empty1, empty2, odd}) EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0U);
  std::vector<unsigned char> source(100);
  for (std::size_t i = 0; i < source.size(); ++i) source[i] = static_cast<unsigned char>(i * 7);
  std::vector<unsigned char> back(100, 0);
  ref().copy_from_host(odd, source.data(), source.size());
  ref().copy_to_host(back.data(), odd, back.size());
  EXPECT_EQ(back, source);
  ref().copy_to_host(nullptr, nullptr, 0);
  ref().deallocate(empty1, 0);
  ref().deallocate(empty2, 0);
  ref().deallocate(odd, 100);
}

// ---- fill and copy --------------------------------------------------------------------------------

TEST(BackendRef, FillConvertsTheScalar) {
  auto f = zeros(DType::Float32, {2, 2});
  ref().fill(f.view, Scalar(2.5));
  EXPECT_EQ(values_of<float>(f.view), (std::vector<float>{2.5F, 2.5F, 2.5F, 2.5F}));

  auto i = zeros(DType::Int32, {3});
  ref().fill(i.view, Scalar(-2.7));
  EXPECT_EQ(values_of<std::int32_t>(i.view), (std::vector<std::int32_t>{-2, -2, -2}));

  auto big = zeros(DType::Int64, {1});
  ref().fill(big.view, Scalar(std::int64_t{9007199254740993}));  // 2^53 + 1 survives (no double)
  EXPECT_EQ(values_of<std::int64_t>(big.view)[0], 9007199254740993);

  auto b = zeros(DType::Bool, {2});
  ref().fill(b.view, Scalar(0.5));
  EXPECT_EQ(values_of<bool>(b.view), (std::vector<bool>{true, true}));
}

TEST(BackendRef, FillTouchesOnlyTheView) {
  auto a = zeros(DType::Int64, {2, 4});
  auto every_other_column = stepped(a, 1, 2);
  ref().fill(every_other_column.view, Scalar(std::int64_t{5}));
  EXPECT_EQ(values_of<std::int64_t>(a.view), (std::vector<std::int64_t>{5, 0, 5, 0, 5, 0, 5, 0}));
}

TEST(BackendRef, FillZeroDimAndEmpty) {
  auto scalar = zeros(DType::Float64, {});
  ref().fill(scalar.view, Scalar(3.0));
  EXPECT_EQ(values_of<double>(scalar.view), (std::vector<double>{3.0}));

  auto empty = zeros(DType::Float64, {3, 0, 2});
  ref().fill(empty.view, Scalar(1.0));  // nothing to write, must not touch memory
  EXPECT_TRUE(values_of<double>(empty.view).empty());
}

TEST(BackendRef, CopyConvertsLikeAstype) {
  auto f = array_of<double>({6}, {-2.7, -0.5, 0.0, 0.5, 2.7, kNaN});
  auto b = zeros(DType::Bool, {6});
  ref().copy(b.view, f.view);
  EXPECT_EQ(values_of<bool>(b.view), (std::vector<bool>{true, true, false, true, true, true}));

  auto finite = array_of<double>({5}, {-2.7, -0.5, 0.0, 0.5, 2.7});
  auto i = zeros(DType::Int32, {5});
  ref().copy(i.view, finite.view);
  EXPECT_EQ(values_of<std::int32_t>(i.view), (std::vector<std::int32_t>{-2, 0, 0, 0, 2}));

  auto flags = array_of<bool>({3}, {true, false, true});
  auto as_float = zeros(DType::Float32, {3});
  ref().copy(as_float.view, flags.view);
  EXPECT_EQ(values_of<float>(as_float.view), (std::vector<float>{1.0F, 0.0F, 1.0F}));

  auto wide = array_of<std::int64_t>({2}, {(std::int64_t{1} << 32) + 7, -1});
  auto narrow = zeros(DType::Int32, {2});
  ref().copy(narrow.view, wide.view);
  EXPECT_EQ(values_of<std::int32_t>(narrow.view), (std::vector<std::int32_t>{7, -1}));

  // Floats outside the integer's range: what NumPy and PyTorch give on x86, the same on every device.
  auto wild = array_of<double>({6}, {-1.5, 300.5, -129.5, 3e9, 1e300, kNaN});
  auto bytes = zeros(DType::UInt8, {6});
  ref().copy(bytes.view, wild.view);
  EXPECT_EQ(values_of<std::uint8_t>(bytes.view), (std::vector<std::uint8_t>{255, 44, 127, 0, 0, 0}));
  auto small = zeros(DType::Int8, {6});
  ref().copy(small.view, wild.view);
  EXPECT_EQ(values_of<std::int8_t>(small.view), (std::vector<std::int8_t>{-1, 44, 127, 0, 0, 0}));
  const std::int32_t int32_min = std::numeric_limits<std::int32_t>::min();
  auto words = zeros(DType::Int32, {6});
  ref().copy(words.view, wild.view);
  EXPECT_EQ(values_of<std::int32_t>(words.view),
            (std::vector<std::int32_t>{-1, 300, -129, int32_min, int32_min, int32_min}));
  const std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();
  auto longs = zeros(DType::Int64, {6});
  ref().copy(longs.view, wild.view);
  EXPECT_EQ(values_of<std::int64_t>(longs.view),
            (std::vector<std::int64_t>{-1, 300, -129, 3000000000, int64_min, int64_min}));
}

TEST(BackendRef, CopyWalksAnyStrides) {
  auto a = array_of<std::int32_t>({2, 3}, {1, 2, 3, 4, 5, 6});

  auto out_t = zeros(DType::Int32, {3, 2});
  ref().copy(out_t.view, transposed(a).view);
  EXPECT_EQ(values_of<std::int32_t>(out_t.view), (std::vector<std::int32_t>{1, 4, 2, 5, 3, 6}));

  auto out_flip = zeros(DType::Int32, {2, 3});
  ref().copy(out_flip.view, flipped(flipped(a, 0), 1).view);
  EXPECT_EQ(values_of<std::int32_t>(out_flip.view), (std::vector<std::int32_t>{6, 5, 4, 3, 2, 1}));

  auto row = array_of<std::int32_t>({1, 3}, {7, 8, 9});
  auto out_bcast = zeros(DType::Int32, {2, 3});
  ref().copy(out_bcast.view, broadcast_to(row, {2, 3}).view);
  EXPECT_EQ(values_of<std::int32_t>(out_bcast.view), (std::vector<std::int32_t>{7, 8, 9, 7, 8, 9}));

  // Writing through a flipped output reverses too.
  auto out_rev = zeros(DType::Int32, {2, 3});
  ref().copy(flipped(out_rev, 1).view, a.view);
  EXPECT_EQ(values_of<std::int32_t>(out_rev.view), (std::vector<std::int32_t>{3, 2, 1, 6, 5, 4}));
}

TEST(BackendRef, CopyZeroDimAndEmpty) {
  auto in = array_of<float>({}, {4.5F});
  auto out = zeros(DType::Int64, {});
  ref().copy(out.view, in.view);
  EXPECT_EQ(values_of<std::int64_t>(out.view), (std::vector<std::int64_t>{4}));

  auto empty_in = zeros(DType::Float32, {0, 3});
  auto empty_out = zeros(DType::Float64, {0, 3});
  ref().copy(empty_out.view, empty_in.view);
}

// ---- unary ----------------------------------------------------------------------------------------

TEST(BackendRef, UnaryIntegersWrapLikeNumpy) {
  auto a = array_of<std::int32_t>({4}, {kInt32Min, -3, 0, 5});
  auto out = zeros(DType::Int32, {4});
  ref().unary(UnaryOp::Neg, out.view, a.view);
  EXPECT_EQ(values_of<std::int32_t>(out.view), (std::vector<std::int32_t>{kInt32Min, 3, 0, -5}));
  ref().unary(UnaryOp::Abs, out.view, a.view);
  EXPECT_EQ(values_of<std::int32_t>(out.view), (std::vector<std::int32_t>{kInt32Min, 3, 0, 5}));
  ref().unary(UnaryOp::Relu, out.view, a.view);
  EXPECT_EQ(values_of<std::int32_t>(out.view), (std::vector<std::int32_t>{0, 0, 0, 5}));

  auto b = array_of<std::int64_t>({2}, {kInt64Min, -9});
  auto out64 = zeros(DType::Int64, {2});
  ref().unary(UnaryOp::Abs, out64.view, b.view);
  EXPECT_EQ(values_of<std::int64_t>(out64.view), (std::vector<std::int64_t>{kInt64Min, 9}));
}

TEST(BackendRef, UnaryFloats) {
  auto a = array_of<double>({5}, {-1.0, 0.0, 1.0, 4.0, kNaN});
  auto out = zeros(DType::Float64, {5});

  ref().unary(UnaryOp::Relu, out.view, a.view);
  auto r = values_of<double>(out.view);
  EXPECT_EQ(r[0], 0.0);
  EXPECT_EQ(r[3], 4.0);
  EXPECT_TRUE(std::isnan(r[4]));  // relu keeps NaN, like np.maximum(x, 0)

  ref().unary(UnaryOp::Sqrt, out.view, a.view);
  r = values_of<double>(out.view);
  EXPECT_TRUE(std::isnan(r[0]));
  EXPECT_EQ(r[3], 2.0);

  ref().unary(UnaryOp::Log, out.view, a.view);
  r = values_of<double>(out.view);
  EXPECT_TRUE(std::isinf(r[1]) && r[1] < 0);
  EXPECT_EQ(r[2], 0.0);

  ref().unary(UnaryOp::Exp, out.view, a.view);
  EXPECT_DOUBLE_EQ(values_of<double>(out.view)[2], std::exp(1.0));

  ref().unary(UnaryOp::Tanh, out.view, a.view);
  EXPECT_DOUBLE_EQ(values_of<double>(out.view)[0], std::tanh(-1.0));

  ref().unary(UnaryOp::Abs, out.view, a.view);
  EXPECT_EQ(values_of<double>(out.view)[0], 1.0);

  ref().unary(UnaryOp::Neg, out.view, a.view);
  r = values_of<double>(out.view);
  EXPECT_EQ(r[0], 1.0);
  EXPECT_TRUE(std::signbit(r[1]));  // -0.0, like np.negative
  EXPECT_TRUE(std::isnan(r[4]));
}

TEST(BackendRef, SigmoidIsStableForLargeInputs) {
  auto a = array_of<float>({5}, {-1000.0F, -20.0F, 0.0F, 20.0F, 1000.0F});
  auto out = zeros(DType::Float32, {5});
  ref().unary(UnaryOp::Sigmoid, out.view, a.view);
  const auto s = values_of<float>(out.view);
  EXPECT_EQ(s[0], 0.0F);
  EXPECT_NEAR(s[1], 2.0611536e-9F, 1e-15F);
  EXPECT_EQ(s[2], 0.5F);
  EXPECT_EQ(s[3], 1.0F);
  EXPECT_EQ(s[4], 1.0F);
  for (float v : s) EXPECT_FALSE(std::isnan(v));
}

TEST(BackendRef, UnaryRejectsUnsupportedDtypes) {
  auto i = array_of<std::int32_t>({2}, {1, 2});
  auto out_i = zeros(DType::Int32, {2});
  EXPECT_THROW(ref().unary(UnaryOp::Exp, out_i.view, i.view), TypeError);
  try {
    ref().unary(UnaryOp::Sigmoid, out_i.view, i.view);
    FAIL() << "expected TypeError";
  } catch (const TypeError& e) {
    EXPECT_NE(std::string(e.what()).find("sigmoid"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("int32"), std::string::npos);
  }
  auto b = array_of<bool>({2}, {true, false});
  auto out_b = zeros(DType::Bool, {2});
  EXPECT_THROW(ref().unary(UnaryOp::Neg, out_b.view, b.view), TypeError);
}

// ---- binary ---------------------------------------------------------------------------------------

TEST(BackendRef, BinaryBroadcastsByZeroStrides) {
  auto m = array_of<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto row = array_of<float>({1, 3}, {10, 20, 30});
  auto out = zeros(DType::Float32, {2, 3});
  ref().binary(BinaryOp::Add, out.view, m.view, broadcast_to(row, {2, 3}).view);
  EXPECT_EQ(values_of<float>(out.view), (std::vector<float>{11, 22, 33, 14, 25, 36}));

  auto scalar = array_of<float>({}, {2.0F});
  StridedView s = scalar.view;
  s.shape = {2, 3};
  s.strides = {0, 0};
  ref().binary(BinaryOp::Sub, out.view, s, flipped(m, 1).view);
  EXPECT_EQ(values_of<float>(out.view), (std::vector<float>{-1, 0, 1, -4, -3, -2}));
}

TEST(BackendRef, BinaryIntegerArithmeticWraps) {
  auto a = array_of<std::int32_t>({3}, {kInt32Max, kInt32Min, 65536});
  auto b = array_of<std::int32_t>({3}, {1, 1, 65536});
  auto out = zeros(DType::Int32, {3});
  ref().binary(BinaryOp::Add, out.view, a.view, b.view);
  EXPECT_EQ(values_of<std::int32_t>(out.view), (std::vector<std::int32_t>{kInt32Min, kInt32Min + 1, 131072}));
  ref().binary(BinaryOp::Sub, out.view, b.view, a.view);
  EXPECT_EQ(values_of<std::int32_t>(out.view)[1], kInt32Min + 1);
  ref().binary(BinaryOp::Mul, out.view, a.view, b.view);
  EXPECT_EQ(values_of<std::int32_t>(out.view), (std::vector<std::int32_t>{kInt32Max, kInt32Min, 0}));
}

TEST(BackendRef, IntegerDivisionTruncatesTowardZero) {
  auto a = array_of<std::int64_t>({5}, {7, -7, 7, -7, kInt64Min});
  auto b = array_of<std::int64_t>({5}, {2, 2, -2, -2, -1});
  auto out = zeros(DType::Int64, {5});
  ref().binary(BinaryOp::Div, out.view, a.view, b.view);
  EXPECT_EQ(values_of<std::int64_t>(out.view), (std::vector<std::int64_t>{3, -3, -3, 3, kInt64Min}));
}

TEST(BackendRef, IntegerDivisionByZeroRaises) {
  auto a = array_of<std::int32_t>({2}, {1, 2});
  auto b = array_of<std::int32_t>({2}, {1, 0});
  auto out = zeros(DType::Int32, {2});
  try {
    ref().binary(BinaryOp::Div, out.view, a.view, b.view);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_STREQ(e.what(), "div: integer division by zero");
  }
  // Floats follow IEEE instead.
  auto fa = array_of<double>({3}, {1.0, -1.0, 0.0});
  auto fb = array_of<double>({3}, {0.0, 0.0, 0.0});
  auto fout = zeros(DType::Float64, {3});
  ref().binary(BinaryOp::Div, fout.view, fa.view, fb.view);
  const auto q = values_of<double>(fout.view);
  EXPECT_TRUE(std::isinf(q[0]) && q[0] > 0);
  EXPECT_TRUE(std::isinf(q[1]) && q[1] < 0);
  EXPECT_TRUE(std::isnan(q[2]));
}

TEST(BackendRef, IntegerPower) {
  auto a = array_of<std::int64_t>({6}, {2, -3, 0, 0, 7, 3});
  auto b = array_of<std::int64_t>({6}, {10, 3, 0, 5, 1, 40});
  auto out = zeros(DType::Int64, {6});
  ref().binary(BinaryOp::Pow, out.view, a.view, b.view);
  // 3^40 wraps modulo 2^64 like NumPy's int64 power.
  std::uint64_t wrapped = 1;
  for (int k = 0; k < 40; ++k) wrapped *= 3U;
  EXPECT_EQ(values_of<std::int64_t>(out.view),
            (std::vector<std::int64_t>{1024, -27, 1, 0, 7, static_cast<std::int64_t>(wrapped)}));

  auto negative = array_of<std::int64_t>({6}, {2, 2, 2, 2, 2, -1});
  try {
    ref().binary(BinaryOp::Pow, out.view, a.view, negative.view);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_STREQ(e.what(), "pow: integers to negative integer powers are not allowed");
  }
}

TEST(BackendRef, FloatPower) {
  auto a = array_of<float>({3}, {2.0F, 4.0F, -8.0F});
  auto b = array_of<float>({3}, {-1.0F, 0.5F, 0.5F});
  auto out = zeros(DType::Float32, {3});
  ref().binary(BinaryOp::Pow, out.view, a.view, b.view);
  const auto p = values_of<float>(out.view);
  EXPECT_EQ(p[0], 0.5F);
  EXPECT_EQ(p[1], 2.0F);
  EXPECT_TRUE(std::isnan(p[2]));
}

TEST(BackendRef, MaximumMinimumPropagateNaN) {
  auto a = array_of<double>({4}, {1.0, kNaN, 3.0, kNaN});
  auto b = array_of<double>({4}, {2.0, 1.0, kNaN, kNaN});
  auto out = zeros(DType::Float64, {4});
  for (BinaryOp op : {BinaryOp::Maximum, BinaryOp::Minimum}) {
    ref().binary(op, out.view, a.view, b.view);
    const auto r = values_of<double>(out.view);
    EXPECT_EQ(r[0], op == BinaryOp::Maximum ? 2.0 : 1.0);
    EXPECT_TRUE(std::isnan(r[1]));
    EXPECT_TRUE(std::isnan(r[2]));
    EXPECT_TRUE(std::isnan(r[3]));
  }
}

TEST(BackendRef, BoolMaximumMinimumAreOrAnd) {
  auto a = array_of<bool>({4}, {false, false, true, true});
  auto b = array_of<bool>({4}, {false, true, false, true});
  auto out = zeros(DType::Bool, {4});
  ref().binary(BinaryOp::Maximum, out.view, a.view, b.view);
  EXPECT_EQ(values_of<bool>(out.view), (std::vector<bool>{false, true, true, true}));
  ref().binary(BinaryOp::Minimum, out.view, a.view, b.view);
  EXPECT_EQ(values_of<bool>(out.view), (std::vector<bool>{false, false, false, true}));
  ref().binary(BinaryOp::Lt, out.view, a.view, b.view);
  EXPECT_EQ(values_of<bool>(out.view), (std::vector<bool>{false, true, false, false}));
}

TEST(BackendRef, BoolArithmeticRaises) {
  auto a = array_of<bool>({2}, {true, false});
  auto out = zeros(DType::Bool, {2});
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow}) {
    EXPECT_THROW(ref().binary(op, out.view, a.view, a.view), TypeError) << binary_op_name(op);
  }
}

TEST(BackendRef, ComparisonsWriteBoolAndHandleNaN) {
  auto a = array_of<float>({3}, {1.0F, 2.0F, kNaNf});
  auto b = array_of<float>({3}, {2.0F, 2.0F, kNaNf});
  auto out = zeros(DType::Bool, {3});
  const std::vector<std::pair<BinaryOp, std::vector<bool>>> expected = {
      {BinaryOp::Eq, {false, true, false}}, {BinaryOp::Ne, {true, false, true}},   {BinaryOp::Lt, {true, false, false}},
      {BinaryOp::Le, {true, true, false}},  {BinaryOp::Gt, {false, false, false}}, {BinaryOp::Ge, {false, true, false}},
  };
  for (const auto& [op, values] : expected) {
    ref().binary(op, out.view, a.view, b.view);
    EXPECT_EQ(values_of<bool>(out.view), values) << binary_op_name(op);
  }
}

TEST(BackendRef, BinaryZeroDimAndEmpty) {
  auto a = array_of<std::int32_t>({}, {6});
  auto b = array_of<std::int32_t>({}, {-4});
  auto out = zeros(DType::Int32, {});
  ref().binary(BinaryOp::Div, out.view, a.view, b.view);
  EXPECT_EQ(values_of<std::int32_t>(out.view), (std::vector<std::int32_t>{-1}));

  // Nothing is evaluated on an empty array, so not even a zero divisor raises.
  auto ea = zeros(DType::Int32, {0, 4});
  auto eout = zeros(DType::Int32, {0, 4});
  ref().binary(BinaryOp::Div, eout.view, ea.view, ea.view);
}

TEST(BackendRef, Where) {
  auto cond = array_of<bool>({1, 3}, {true, false, true});
  auto a = array_of<std::int64_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto b = array_of<std::int64_t>({}, {0});
  StridedView b_full = b.view;
  b_full.shape = {2, 3};
  b_full.strides = {0, 0};
  auto out = zeros(DType::Int64, {2, 3});
  ref().where(out.view, broadcast_to(cond, {2, 3}).view, a.view, b_full);
  EXPECT_EQ(values_of<std::int64_t>(out.view), (std::vector<std::int64_t>{1, 0, 3, 4, 0, 6}));
}

// ---- reductions -----------------------------------------------------------------------------------

TEST(BackendRef, SumOverAxes) {
  auto a = array_of<double>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto rows = zeros(DType::Float64, {1, 3});
  ref().reduce(ReduceOp::Sum, rows.view, a.view);
  EXPECT_EQ(values_of<double>(rows.view), (std::vector<double>{5, 7, 9}));
  auto cols = zeros(DType::Float64, {2, 1});
  ref().reduce(ReduceOp::Sum, cols.view, a.view);
  EXPECT_EQ(values_of<double>(cols.view), (std::vector<double>{6, 15}));
  auto all = zeros(DType::Float64, {1, 1});
  ref().reduce(ReduceOp::Sum, all.view, a.view);
  EXPECT_EQ(values_of<double>(all.view), (std::vector<double>{21}));

  // Same sums through a transposed, flipped input.
  auto t = flipped(transposed(a), 0);  // shape (3, 2): rows (3, 6), (2, 5), (1, 4)
  auto t_cols = zeros(DType::Float64, {3, 1});
  ref().reduce(ReduceOp::Sum, t_cols.view, t.view);
  EXPECT_EQ(values_of<double>(t_cols.view), (std::vector<double>{9, 7, 5}));
}

TEST(BackendRef, SumOfEmptySetIsZeroAndIntegersWrap) {
  auto empty = zeros(DType::Int64, {2, 0});
  auto out = array_of<std::int64_t>({2, 1}, {99, 99});
  ref().reduce(ReduceOp::Sum, out.view, empty.view);
  EXPECT_EQ(values_of<std::int64_t>(out.view), (std::vector<std::int64_t>{0, 0}));

  auto big = array_of<std::int32_t>({2}, {kInt32Max, 1});
  auto total = zeros(DType::Int32, {1});
  ref().reduce(ReduceOp::Sum, total.view, big.view);
  EXPECT_EQ(values_of<std::int32_t>(total.view), (std::vector<std::int32_t>{kInt32Min}));
}

TEST(BackendRef, ReduceZeroDimAndSizeOneAxes) {
  auto a = array_of<float>({}, {3.5F});
  auto out = zeros(DType::Float32, {});
  ref().reduce(ReduceOp::Sum, out.view, a.view);
  EXPECT_EQ(values_of<float>(out.view), (std::vector<float>{3.5F}));

  // Axes of extent 1 are not "reduced" but the result is the same: a copy.
  auto ones = array_of<float>({1, 2}, {1.5F, 2.5F});
  auto same = zeros(DType::Float32, {1, 2});
  ref().reduce(ReduceOp::Max, same.view, ones.view);
  EXPECT_EQ(values_of<float>(same.view), (std::vector<float>{1.5F, 2.5F}));
}

TEST(BackendRef, MaxMinPropagateNaN) {
  auto a = array_of<float>({2, 3}, {1.0F, kNaNf, 3.0F, -1.0F, -5.0F, 2.0F});
  auto out = zeros(DType::Float32, {2, 1});
  ref().reduce(ReduceOp::Max, out.view, a.view);
  auto r = values_of<float>(out.view);
  EXPECT_TRUE(std::isnan(r[0]));
  EXPECT_EQ(r[1], 2.0F);
  ref().reduce(ReduceOp::Min, out.view, a.view);
  r = values_of<float>(out.view);
  EXPECT_TRUE(std::isnan(r[0]));
  EXPECT_EQ(r[1], -5.0F);
}

TEST(BackendRef, BoolMaxIsAnyMinIsAll) {
  auto a = array_of<bool>({3, 2}, {false, false, true, false, true, true});
  auto out = zeros(DType::Bool, {3, 1});
  ref().reduce(ReduceOp::Max, out.view, a.view);
  EXPECT_EQ(values_of<bool>(out.view), (std::vector<bool>{false, true, true}));
  ref().reduce(ReduceOp::Min, out.view, a.view);
  EXPECT_EQ(values_of<bool>(out.view), (std::vector<bool>{false, false, true}));
  EXPECT_THROW(ref().reduce(ReduceOp::Sum, out.view, a.view), TypeError);
}

TEST(BackendRef, IntegerMaxMin) {
  auto a = array_of<std::int64_t>({2, 2}, {kInt64Min, 3, -2, -7});
  auto out = zeros(DType::Int64, {1, 2});
  ref().reduce(ReduceOp::Max, out.view, a.view);
  EXPECT_EQ(values_of<std::int64_t>(out.view), (std::vector<std::int64_t>{-2, 3}));
  ref().reduce(ReduceOp::Min, out.view, a.view);
  EXPECT_EQ(values_of<std::int64_t>(out.view), (std::vector<std::int64_t>{kInt64Min, -7}));
}

TEST(BackendRef, ArgReduceFirstOccurrence) {
  auto a = array_of<std::int32_t>({2, 4}, {1, 3, 3, 2, 5, 0, 5, 0});
  auto along_cols = zeros(DType::Int64, {2, 1});
  ref().arg_reduce(ArgReduceOp::Argmax, along_cols.view, a.view, 1);
  EXPECT_EQ(values_of<std::int64_t>(along_cols.view), (std::vector<std::int64_t>{1, 0}));
  ref().arg_reduce(ArgReduceOp::Argmin, along_cols.view, a.view, 1);
  EXPECT_EQ(values_of<std::int64_t>(along_cols.view), (std::vector<std::int64_t>{0, 1}));

  auto along_rows = zeros(DType::Int64, {1, 4});
  ref().arg_reduce(ArgReduceOp::Argmax, along_rows.view, a.view, 0);
  EXPECT_EQ(values_of<std::int64_t>(along_rows.view), (std::vector<std::int64_t>{1, 0, 1, 0}));

  // Along a flipped axis the index counts in the view's order.
  auto f = flipped(a, 1);  // rows (2, 3, 3, 1), (0, 5, 0, 5)
  ref().arg_reduce(ArgReduceOp::Argmax, along_cols.view, f.view, 1);
  EXPECT_EQ(values_of<std::int64_t>(along_cols.view), (std::vector<std::int64_t>{1, 1}));
}

TEST(BackendRef, ArgReduceNaNIsExtreme) {
  auto a = array_of<double>({5}, {1.0, kNaN, 5.0, kNaN, -3.0});
  auto out = zeros(DType::Int64, {1});
  ref().arg_reduce(ArgReduceOp::Argmax, out.view, a.view, 0);
  EXPECT_EQ(values_of<std::int64_t>(out.view)[0], 1);
  ref().arg_reduce(ArgReduceOp::Argmin, out.view, a.view, 0);
  EXPECT_EQ(values_of<std::int64_t>(out.view)[0], 1);

  auto b = array_of<bool>({3}, {false, true, true});
  ref().arg_reduce(ArgReduceOp::Argmax, out.view, b.view, 0);
  EXPECT_EQ(values_of<std::int64_t>(out.view)[0], 1);
}

// ---- matmul ---------------------------------------------------------------------------------------

TEST(BackendRef, Matmul) {
  auto a = array_of<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto b = array_of<float>({3, 2}, {7, 8, 9, 10, 11, 12});
  auto out = zeros(DType::Float32, {2, 2});
  ref().matmul(out.view, a.view, b.view);
  EXPECT_EQ(values_of<float>(out.view), (std::vector<float>{58, 64, 139, 154}));

  // a @ a.T with the transpose as a view.
  ref().matmul(out.view, a.view, transposed(a).view);
  EXPECT_EQ(values_of<float>(out.view), (std::vector<float>{14, 32, 32, 77}));
}

TEST(BackendRef, MatmulBatchBroadcastAndIntegers) {
  auto a = array_of<std::int64_t>({2, 1, 2}, {1, 2, 3, 4});
  auto b = array_of<std::int64_t>({1, 2, 2}, {1, 0, 0, -1});  // one matrix for both batch entries
  auto out = zeros(DType::Int64, {2, 1, 2});
  ref().matmul(out.view, a.view, broadcast_to(b, {2, 2, 2}).view);
  EXPECT_EQ(values_of<std::int64_t>(out.view), (std::vector<std::int64_t>{1, -2, 3, -4}));
}

TEST(BackendRef, MatmulEmptyInnerDimensionGivesZeros) {
  auto a = zeros(DType::Float64, {2, 0});
  auto b = zeros(DType::Float64, {0, 3});
  auto out = array_of<double>({2, 3}, {1, 1, 1, 1, 1, 1});
  ref().matmul(out.view, a.view, b.view);
  EXPECT_EQ(values_of<double>(out.view), (std::vector<double>(6, 0.0)));

  auto bools = zeros(DType::Bool, {2, 2});
  EXPECT_THROW(ref().matmul(bools.view, bools.view, bools.view), TypeError);
}

// ---- indexing -------------------------------------------------------------------------------------

TEST(BackendRef, Gather) {
  auto in = array_of<std::int32_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto idx = array_of<std::int64_t>({2, 2}, {2, 0, 1, 1});
  auto out = zeros(DType::Int32, {2, 2});
  ref().gather(out.view, in.view, idx.view, 1);
  EXPECT_EQ(values_of<std::int32_t>(out.view), (std::vector<std::int32_t>{3, 1, 5, 5}));

  auto idx0 = array_of<std::int64_t>({1, 3}, {1, 0, 1});
  auto out0 = zeros(DType::Int32, {1, 3});
  ref().gather(out0.view, in.view, idx0.view, 0);
  EXPECT_EQ(values_of<std::int32_t>(out0.view), (std::vector<std::int32_t>{4, 2, 6}));

  // Gathering from a flipped input indexes the view, not the buffer.
  ref().gather(out0.view, flipped(in, 0).view, idx0.view, 0);
  EXPECT_EQ(values_of<std::int32_t>(out0.view), (std::vector<std::int32_t>{1, 5, 3}));
}

TEST(BackendRef, ScatterAddAccumulatesDuplicates) {
  auto out = zeros(DType::Float32, {2, 3});
  auto idx = array_of<std::int64_t>({2, 2}, {0, 0, 2, 1});
  auto src = array_of<float>({2, 2}, {1, 2, 3, 4});
  ref().scatter_add(out.view, idx.view, src.view, 1);
  EXPECT_EQ(values_of<float>(out.view), (std::vector<float>{3, 0, 0, 0, 4, 3}));

  auto out0 = zeros(DType::Int64, {3, 2});
  auto idx0 = array_of<std::int64_t>({2, 2}, {2, 0, 2, 2});
  auto src0 = array_of<std::int64_t>({2, 2}, {1, 2, 3, 4});
  ref().scatter_add(out0.view, idx0.view, src0.view, 0);
  EXPECT_EQ(values_of<std::int64_t>(out0.view), (std::vector<std::int64_t>{0, 2, 0, 0, 4, 4}));
}

// ---- random ---------------------------------------------------------------------------------------

TEST(BackendRef, RandomFollowsTheCounterRecipe) {
  constexpr std::uint64_t kSeed = 1234;
  constexpr std::uint64_t kOffset = 77;
  auto u = zeros(DType::Float64, {3, 4});
  ref().random(RandomDistribution::Uniform, u.view, -2.0, 3.0, kSeed, kOffset);
  auto n = zeros(DType::Float64, {12});
  ref().random(RandomDistribution::Normal, n.view, 1.0, 0.5, kSeed, kOffset);
  auto bern = zeros(DType::Bool, {12});
  ref().random(RandomDistribution::Bernoulli, bern.view, 0.3, 0.0, kSeed, kOffset);
  const auto uv = values_of<double>(u.view);
  const auto nv = values_of<double>(n.view);
  const auto bv = values_of<bool>(bern.view);
  for (std::uint64_t i = 0; i < 12; ++i) {
    const double u01 = random_bits::uniform01(kSeed, kOffset + i);
    EXPECT_EQ(uv[i], -2.0 + 5.0 * u01);
    EXPECT_EQ(nv[i], 1.0 + 0.5 * random_bits::standard_normal(kSeed, kOffset + i));
    EXPECT_EQ(bv[i], u01 < 0.3);
  }

  // A request starting later continues the same stream.
  auto tail = zeros(DType::Float64, {2});
  ref().random(RandomDistribution::Uniform, tail.view, -2.0, 3.0, kSeed, kOffset + 10);
  EXPECT_EQ(values_of<double>(tail.view), (std::vector<double>{uv[10], uv[11]}));

  auto f32 = zeros(DType::Float32, {12});
  ref().random(RandomDistribution::Bernoulli, f32.view, 0.3, 0.0, kSeed, kOffset);
  for (std::size_t i = 0; i < 12; ++i) EXPECT_EQ(values_of<float>(f32.view)[i], bv[i] ? 1.0F : 0.0F);
}

}  // namespace
}  // namespace needle
