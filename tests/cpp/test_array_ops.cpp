// The array layer's functions: results, result dtypes and error messages, on both devices.
// (Exhaustive comparison with NumPy over random shapes lives in tests/python.)
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <string>
#include <vector>

namespace needle {
namespace {

class ArrayOpsTest : public ::testing::TestWithParam<Device> {
 protected:
  template <typename T>
  [[nodiscard]] NDArray make(const std::vector<T>& values, const Shape& shape) const {
    return NDArray::from_vector(values, shape, GetParam());
  }
};

// Expects `fn` to throw ErrorType with a message containing `fragment`.
template <typename ErrorType, typename Fn>
void expect_error(Fn&& fn, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const ErrorType& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST_P(ArrayOpsTest, BinaryBroadcastsAndPromotes) {
  const NDArray a = make<std::int32_t>({1, 2, 3}, {3, 1});
  const NDArray b = make<float>({0.5F, 1.5F}, {2});
  const NDArray c = a + b;
  EXPECT_EQ(c.dtype(), DType::Float32);
  EXPECT_EQ(c.shape(), (Shape{3, 2}));
  EXPECT_EQ(c.to_vector<float>(), (std::vector<float>{1.5F, 2.5F, 2.5F, 3.5F, 3.5F, 4.5F}));
  EXPECT_EQ((a / a).dtype(), DType::Float32);  // true division
  EXPECT_EQ((a * Scalar(2)).dtype(), DType::Int32);
  EXPECT_EQ((a * Scalar(2.0)).dtype(), DType::Float32);
  EXPECT_EQ((Scalar(10) - a).to_vector<std::int32_t>(), (std::vector<std::int32_t>{9, 8, 7}));
  EXPECT_EQ(lt(a, b).dtype(), DType::Bool);
  EXPECT_EQ(lt(a, b).to_vector<bool>(), (std::vector<bool>{false, true, false, false, false, false}));
}

// binary_in_place writes out op b into out (b broadcast), as binary would compute it, and counts the write.
TEST_P(ArrayOpsTest, BinaryInPlaceMatchesBinaryAndRefusesWhatItCannotWrite) {
  NDArray out = make<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  const NDArray row = make<float>({10, 20, 30}, {3});
  const NDArray expected = out * row;
  const std::uint64_t version = out.storage()->version();
  binary_in_place(BinaryOp::Mul, out, row);
  EXPECT_EQ(out.to_vector<float>(), expected.to_vector<float>());
  EXPECT_EQ(out.storage()->version(), version + 1);
  binary_in_place(BinaryOp::Add, out, make<float>({1, 2}, {2, 1}));
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{11, 41, 91, 42, 102, 182}));

  // Large enough for the vectorised and threaded paths, each way b can broadcast.
  const NDArray big = randn({257, 131}, 0.0, 1.0, DType::Float32, GetParam());
  for (const NDArray& operand :
       {randn({257, 131}, 0.0, 1.0, DType::Float32, GetParam()), randn({131}, 0.0, 1.0, DType::Float32, GetParam()),
        randn({257, 1}, 0.0, 1.0, DType::Float32, GetParam())}) {
    for (const BinaryOp op : {BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub}) {
      NDArray result = big.copy();
      binary_in_place(op, result, operand);
      EXPECT_EQ(result.to_vector<float>(), binary(op, big, operand).to_vector<float>());
    }
  }

  NDArray transposed = make<float>({1, 2, 3, 4, 5, 6}, {2, 3}).permute({1, 0});
  expect_error<ValueError>(
      [&] {
        binary_in_place(BinaryOp::Add, transposed, row.reshape({3, 1}));
      },
      "add in place: needs a compact result");
  expect_error<ValueError>([&] { binary_in_place(BinaryOp::Add, out, row.astype(DType::Float64)); }, "float64");
  expect_error<ValueError>(
      [&] {
        binary_in_place(BinaryOp::Add, out, make<float>({1, 2, 3, 4}, {4}));
      },
      "cannot be broadcast together");
  NDArray small = make<float>({1, 2, 3}, {3});
  expect_error<ValueError>([&] { binary_in_place(BinaryOp::Add, small, out); }, "(2, 3) float32");
}

TEST_P(ArrayOpsTest, BoolArithmeticIsLogical) {
  const NDArray t = make<bool>({true, true, false, false}, {4});
  const NDArray u = make<bool>({true, false, true, false}, {4});
  EXPECT_EQ((t + u).to_vector<bool>(), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ((t * u).to_vector<bool>(), (std::vector<bool>{true, false, false, false}));
  expect_error<TypeError>([&] { (void)(t - u); }, "sub: not supported for bool");
  expect_error<TypeError>([&] { (void)negate(t); }, "negate: not supported for bool");
  expect_error<TypeError>([&] { (void)abs(t); }, "abs: not supported for bool");
}

TEST_P(ArrayOpsTest, UnaryPromotesIntegersForFloatingFunctions) {
  const NDArray a = make<std::int64_t>({0, 1, 4}, {3});
  const NDArray s = sqrt(a);
  EXPECT_EQ(s.dtype(), DType::Float32);
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{0, 1, 2}));
  EXPECT_EQ(negate(a).dtype(), DType::Int64);
  const NDArray big = make<double>({-1000.0, 0.0, 1000.0}, {3});
  EXPECT_EQ(sigmoid(big).to_vector<double>(), (std::vector<double>{0.0, 0.5, 1.0}));
  EXPECT_TRUE(std::isinf(log(make<float>({0.0F}, {1})).item().to<double>()));
}

TEST_P(ArrayOpsTest, IntegerDivisionAndPowerEdgeCases) {
  const NDArray a = make<std::int32_t>({7, -7}, {2});
  EXPECT_EQ(pow(a, make<std::int32_t>({2, 3}, {2})).to_vector<std::int32_t>(), (std::vector<std::int32_t>{49, -343}));
  expect_error<ValueError>([&] { (void)pow(a, make<std::int32_t>({-1, 1}, {2})); }, "pow");
}

TEST_P(ArrayOpsTest, WhereBroadcastsAllThree) {
  const NDArray cond = make<bool>({true, false}, {2, 1});
  const NDArray r = where(cond, make<float>({1, 2, 3}, {3}), NDArray::zeros({}, DType::Float64, GetParam()));
  EXPECT_EQ(r.dtype(), DType::Float64);
  EXPECT_EQ(r.to_vector<double>(), (std::vector<double>{1, 2, 3, 0, 0, 0}));
}

// Operands that share a dense but permuted memory order (a channels-last image seen as NCHW, a transposed
// matrix) give results in that order, computed as one flat run; any other mix of layouts gives contiguous
// results. Values always match the same op on contiguous copies.
TEST_P(ArrayOpsTest, ElementWiseResultsKeepTheMemoryOrderTheirOperandsShare) {
  const auto values = [&](const Shape& shape, double scale) {
    return (NDArray::arange(numel(shape), DType::Float32, GetParam()) * Scalar(scale) - Scalar(7.0)).reshape(shape);
  };
  const auto channels_last = [](const NDArray& a) { return a.permute({0, 2, 3, 1}).compact().permute({0, 3, 1, 2}); };
  const Shape shape{2, 3, 4, 5};
  const NDArray x = values(shape, 0.37);
  const NDArray y = values(shape, -0.21);
  const NDArray x_last = channels_last(x);
  const NDArray y_last = channels_last(y);
  ASSERT_FALSE(x_last.is_compact());
  const auto expect_like = [&](const NDArray& got, const NDArray& want, const NDArray& layout) {
    ASSERT_EQ(got.shape(), want.shape());
    for (std::size_t d = 0; d < got.shape().size(); ++d) {
      if (got.shape()[d] != 1) {
        EXPECT_EQ(got.strides()[d], layout.strides()[d]) << "axis " << d;
      }
    }
    EXPECT_EQ(got.dtype(), want.dtype());
    EXPECT_EQ(got.astype(DType::Float64).to_vector<double>(), want.astype(DType::Float64).to_vector<double>());
  };
  expect_like(exp(x_last), exp(x), x_last);
  expect_like(x_last + y_last, x + y, x_last);
  expect_like(x_last * Scalar(2.5), x * Scalar(2.5), x_last);
  expect_like(Scalar(1.0) - x_last, Scalar(1.0) - x, x_last);
  const NDArray zero = NDArray::zeros({}, DType::Float32, GetParam());
  expect_like(gt(x_last, zero), gt(x, zero), x_last);
  expect_like(where(gt(x_last, zero), y_last, zero), where(gt(x, zero), y, zero), x_last);
  const NDArray matrix = values({6, 7}, 0.5).permute({1, 0});
  expect_like(matrix * matrix, matrix.compact() * matrix.compact(), matrix);
  // A size-1 axis's stride does not matter.
  const NDArray with_one = values({3, 1, 4}, 0.1).permute({2, 1, 0});
  expect_like(negate(with_one), negate(with_one.compact()), with_one);

  // Mixed layouts, a broadcast row and a view with gaps: contiguous results.
  const NDArray contiguous = x_last + y;
  EXPECT_TRUE(contiguous.is_compact());
  EXPECT_EQ(contiguous.to_vector<float>(), (x + y).to_vector<float>());
  const NDArray row = values({5}, 1.0);
  EXPECT_TRUE((x_last * row).is_compact());
  EXPECT_EQ((x_last * row).to_vector<float>(), (x * row).to_vector<float>());
  const NDArray gaps = values({4, 6}, 0.3).index({IndexItem::range(), IndexItem::range(0, 6, 2)});
  EXPECT_TRUE(negate(gaps).is_compact());
  EXPECT_EQ(negate(gaps).to_vector<float>(), negate(gaps.compact()).to_vector<float>());
}

TEST_P(ArrayOpsTest, ReductionsOverAxesWithKeepdims) {
  const NDArray a = NDArray::arange(24, DType::Int32, GetParam()).reshape({2, 3, 4});
  const NDArray s = sum(a, {0, 2});
  EXPECT_EQ(s.dtype(), DType::Int64);
  EXPECT_EQ(s.to_vector<std::int64_t>(), (std::vector<std::int64_t>{60, 92, 124}));
  EXPECT_EQ(sum(a, {1}, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(sum(a).shape(), Shape{});
  EXPECT_EQ(sum(a).item().to<std::int64_t>(), 276);
  EXPECT_EQ(max(a, {-1}).to_vector<std::int32_t>(), (std::vector<std::int32_t>{3, 7, 11, 15, 19, 23}));
  EXPECT_EQ(min(a.permute({2, 1, 0}), {0, 1}).to_vector<std::int32_t>(), (std::vector<std::int32_t>{0, 12}));
  const NDArray m = mean(a, {2});
  EXPECT_EQ(m.dtype(), DType::Float32);
  EXPECT_FLOAT_EQ(m.to_vector<float>()[5], 21.5F);
  EXPECT_EQ(argmax(a, 1).to_vector<std::int64_t>(), (std::vector<std::int64_t>(8, 2)));
  EXPECT_EQ(argmax(a).item().to<std::int64_t>(), 23);
  EXPECT_EQ(argmin(a, 2, true).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(sum(NDArray::zeros({0, 3}, DType::Float32, GetParam()), {0}).to_vector<float>(),
            (std::vector<float>{0, 0, 0}));
  expect_error<ValueError>(
      [&] {
        (void)max(NDArray::zeros({0, 3}, DType::Float32, GetParam()), {0});
      },
      "max: cannot reduce over an empty axis");
  expect_error<IndexError>([&] { (void)sum(a, {3}); }, "sum: axis 3 is out of range");
}

TEST_P(ArrayOpsTest, MatmulBatchesBroadcastsAndHandlesVectors) {
  const NDArray a = NDArray::arange(6, DType::Float32, GetParam()).reshape({2, 3});
  const NDArray b = NDArray::arange(12, DType::Float32, GetParam()).reshape({3, 4});
  EXPECT_EQ(matmul(a, b).to_vector<float>(), (std::vector<float>{20, 23, 26, 29, 56, 68, 80, 92}));
  // (2, 1, 2, 3) @ (4, 3, 4): batch dims broadcast to (2, 4).
  const NDArray batched = matmul(a.reshape({1, 1, 2, 3}).broadcast_to({2, 1, 2, 3}), b.broadcast_to({4, 3, 4}));
  EXPECT_EQ(batched.shape(), (Shape{2, 4, 2, 4}));
  // Transposed operand through strides.
  EXPECT_EQ(matmul(a, a.permute({1, 0})).to_vector<float>(), (std::vector<float>{5, 14, 14, 50}));
  const NDArray v = NDArray::arange(3, DType::Float32, GetParam());
  EXPECT_EQ(matmul(v, b).shape(), (Shape{4}));
  EXPECT_EQ(matmul(a, v).to_vector<float>(), (std::vector<float>{5, 14}));
  EXPECT_EQ(matmul(v, v).shape(), Shape{});
  expect_error<ValueError>([&] { (void)matmul(a, a); }, "matmul: shapes (2, 3) and (2, 3) are not aligned");
  expect_error<ValueError>(
      [&] {
        (void)matmul(a.reshape({2, 1, 3}), b.reshape({3, 4}).broadcast_to({3, 3, 4}));
      },
      "matmul: batch dimensions of shapes (2, 1, 3) and (3, 3, 4) cannot be broadcast");
}

TEST_P(ArrayOpsTest, FlipPadStackConcatSplit) {
  const NDArray a = NDArray::arange(6, DType::Int64, GetParam()).reshape({2, 3});
  EXPECT_EQ(flip(a, {0, 1}).to_vector<std::int64_t>(), (std::vector<std::int64_t>{5, 4, 3, 2, 1, 0}));
  const NDArray p = pad(a, {{1, 0}, {0, 2}}, Scalar(std::int64_t{-1}));
  EXPECT_EQ(p.shape(), (Shape{3, 5}));
  EXPECT_EQ(p.to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{-1, -1, -1, -1, -1, 0, 1, 2, -1, -1, 3, 4, 5, -1, -1}));
  const NDArray s = stack({a, a}, 1);
  EXPECT_EQ(s.shape(), (Shape{2, 2, 3}));
  const NDArray c = concat({a, a.astype(DType::Float32)}, 0);
  EXPECT_EQ(c.dtype(), DType::Float32);
  EXPECT_EQ(c.shape(), (Shape{4, 3}));
  const std::vector<NDArray> parts = split(a, 1);
  ASSERT_EQ(parts.size(), 3U);
  EXPECT_EQ(parts[2].to_vector<std::int64_t>(), (std::vector<std::int64_t>{2, 5}));
  const std::vector<NDArray> pieces = split(a, std::vector<std::int64_t>{1, 2}, 1);
  EXPECT_EQ(pieces[1].shape(), (Shape{2, 2}));
  expect_error<ValueError>([&] { (void)concat({a, a.reshape({3, 2})}, 0); }, "concat: shapes (2, 3) and (3, 2)");
  expect_error<ValueError>([&] { (void)stack({}, 0); }, "stack: expected a non-empty list");
  expect_error<ValueError>([&] { (void)split(a, std::vector<std::int64_t>{1, 1}, 1); }, "split: sizes (1, 1)");
}

TEST_P(ArrayOpsTest, GatherAndScatterAdd) {
  const NDArray a = NDArray::arange(6, DType::Float32, GetParam()).reshape({2, 3});
  const NDArray idx = make<std::int64_t>({2, 0, -1, 1}, {2, 2});
  EXPECT_EQ(gather(a, 1, idx).to_vector<float>(), (std::vector<float>{2, 0, 5, 4}));
  const NDArray acc =
      scatter_add(NDArray::zeros({2, 3}, DType::Float32, GetParam()), 1, make<std::int64_t>({0, 0, 2, 1}, {2, 2}),
                  NDArray::ones({2, 2}, DType::Float32, GetParam()));
  EXPECT_EQ(acc.to_vector<float>(), (std::vector<float>{2, 0, 0, 0, 1, 1}));
  // scatter_add leaves its input alone; scatter_add_to_zeros writes into zeros it makes, of src's dtype.
  const NDArray base = NDArray::ones({2, 3}, DType::Float64, GetParam());
  const NDArray src = make<double>({0.5, 1.5, 2.5, 3.5, 4.5, 5.5}, {2, 3});
  const NDArray rows = make<std::int64_t>({1, 1, 0, 0, 0, 1}, {2, 3});
  EXPECT_EQ(scatter_add(base, 0, rows, src).to_vector<double>(), (std::vector<double>{4.5, 5.5, 3.5, 1.5, 2.5, 6.5}));
  const NDArray index = make<std::int64_t>({1, 1, 0, 2, 0, 2}, {2, 3});
  EXPECT_EQ(base.to_vector<double>(), std::vector<double>(6, 1.0));
  const NDArray zeros_acc = scatter_add_to_zeros({2, 3}, 1, index, src);
  EXPECT_EQ(zeros_acc.dtype(), DType::Float64);
  EXPECT_EQ(zeros_acc.device(), GetParam());
  EXPECT_EQ(zeros_acc.to_vector<double>(), (std::vector<double>{2.5, 2, 0, 4.5, 0, 9}));
  EXPECT_EQ(zeros_acc.to_vector<double>(),
            scatter_add(NDArray::zeros({2, 3}, DType::Float64, GetParam()), 1, index, src).to_vector<double>());
  expect_error<IndexError>(
      [&] {
        (void)scatter_add_to_zeros({2, 2}, 1, index, src);
      },
      "scatter_add: index 2 is out of bounds");
  expect_error<IndexError>(
      [&] {
        (void)gather(a, 1, make<std::int64_t>({3}, {1, 1}));
      },
      "gather: index 3 is out of bounds for axis 1 with size 3");
  expect_error<TypeError>([&] { (void)gather(a, 1, a); }, "gather: index must be an integer array");
}

TEST_P(ArrayOpsTest, RandomIsSeededAndDeviceIndependent) {
  Generator g1(42);
  Generator g2(42);
  const NDArray x = randn({1000}, 0.0, 1.0, DType::Float64, GetParam(), &g1);
  const NDArray y = randn({1000}, 0.0, 1.0, DType::Float64, ref_device(), &g2);
  EXPECT_EQ(x.to_vector<double>(), y.to_vector<double>());
  const NDArray z = randn({1000}, 0.0, 1.0, DType::Float64, GetParam(), &g1);  // the stream moved on
  EXPECT_NE(x.to_vector<double>(), z.to_vector<double>());
  const NDArray u = rand({10000}, 2.0, 3.0, DType::Float32, GetParam(), &g1);
  EXPECT_GE(min(u).item().to<double>(), 2.0);
  EXPECT_LT(max(u).item().to<double>(), 3.0);
  EXPECT_NEAR(mean(u).item().to<double>(), 2.5, 0.02);
  const NDArray bits = randb({10000}, 0.25, DType::Bool, GetParam(), &g1);
  EXPECT_NEAR(mean(bits).item().to<double>(), 0.25, 0.02);
}

TEST_P(ArrayOpsTest, MixingDevicesIsARuntimeError) {
  const Device other = GetParam() == cpu_device() ? ref_device() : cpu_device();
  const NDArray a = NDArray::ones({2}, DType::Float32, GetParam());
  const NDArray b = NDArray::ones({2}, DType::Float32, other);
  expect_error<RuntimeError>([&] { (void)(a + b); }, "add: expected all arrays on the same device");
  expect_error<RuntimeError>([&] { (void)matmul(a, b); }, "matmul");
}

INSTANTIATE_TEST_SUITE_P(Devices, ArrayOpsTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
