// NDArray views and copies: shapes, strides, offsets and storage sharing, on both devices.
#include <gtest/gtest.h>
#include <needle/backend/cuda.h>
#include <needle/needle.h>

#include <vector>

namespace needle {
namespace {

class NDArrayTest : public ::testing::TestWithParam<Device> {
 protected:
  // 0, 1, ..., n-1 as float32 in the given shape.
  [[nodiscard]] NDArray iota(const Shape& shape) const {
    return NDArray::arange(numel(shape), DType::Float32, GetParam()).reshape(shape);
  }
};

TEST_P(NDArrayTest, EmptyHasCompactStridesAndRequestedMetadata) {
  const NDArray a = NDArray::empty({2, 3, 4}, DType::Int32, GetParam());
  EXPECT_EQ(a.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(a.strides(), (Strides{12, 4, 1}));
  EXPECT_EQ(a.offset(), 0);
  EXPECT_EQ(a.dtype(), DType::Int32);
  EXPECT_EQ(a.device(), GetParam());
  EXPECT_EQ(a.size(), 24);
  EXPECT_TRUE(a.is_compact());
}

TEST_P(NDArrayTest, FullAndItemRoundTripEveryDtype) {
  EXPECT_EQ(NDArray::full({}, 2.5, DType::Float64, GetParam()).item().to<double>(), 2.5);
  EXPECT_EQ(NDArray::full({1}, std::int64_t{1} << 40, DType::Int64, GetParam()).item().to<std::int64_t>(),
            std::int64_t{1} << 40);
  EXPECT_EQ(NDArray::full({1, 1}, -7, DType::Int32, GetParam()).item().to<std::int64_t>(), -7);
  EXPECT_TRUE(NDArray::full({1}, true, DType::Bool, GetParam()).item().is_bool());
  EXPECT_THROW((void)NDArray::zeros({2}, DType::Float32, GetParam()).item(), ValueError);
}

TEST_P(NDArrayTest, ReshapeOfCompactArrayIsAView) {
  const NDArray a = iota({2, 6});
  const NDArray b = a.reshape({3, -1});
  EXPECT_EQ(b.shape(), (Shape{3, 4}));
  EXPECT_TRUE(b.shares_storage_with(a));
  EXPECT_EQ(b.to_vector<float>(), a.to_vector<float>());
}

TEST_P(NDArrayTest, ReshapeOfTransposeCopiesOnlyWhenItMust) {
  const NDArray t = iota({4, 6}).permute({1, 0});   // shape (6, 4), strides (1, 6)
  const NDArray split_rows = t.reshape({2, 3, 4});  // splits the first axis: still a view
  EXPECT_TRUE(split_rows.shares_storage_with(t));
  EXPECT_EQ(split_rows.strides(), (Strides{3, 1, 6}));
  const NDArray flat = t.reshape({24});  // needs the transposed order: must copy
  EXPECT_FALSE(flat.shares_storage_with(t));
  EXPECT_EQ(flat.to_vector<float>(), t.compact().to_vector<float>());
}

TEST_P(NDArrayTest, PermuteAndSwapaxesReorderStrides) {
  const NDArray a = iota({2, 3, 4});
  const NDArray p = a.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Strides{1, 12, 4}));
  EXPECT_FALSE(p.is_compact());
  EXPECT_EQ(a.swapaxes(0, -1).shape(), (Shape{4, 3, 2}));
  // Element (i, j, k) of p is element (j, k, i) of a.
  EXPECT_EQ(p.index({IndexItem::at(3), IndexItem::at(1), IndexItem::at(2)}).item().to<double>(),
            a.index({IndexItem::at(1), IndexItem::at(2), IndexItem::at(3)}).item().to<double>());
}

TEST_P(NDArrayTest, BroadcastToUsesZeroStrides) {
  const NDArray a = iota({3, 1});
  const NDArray b = a.broadcast_to({2, 3, 4});
  EXPECT_EQ(b.strides(), (Strides{0, 1, 0}));
  EXPECT_TRUE(b.shares_storage_with(a));
  const std::vector<float> values = b.to_vector<float>();
  EXPECT_EQ(values[0], 0.0F);
  EXPECT_EQ(values[5], 1.0F);   // (0, 1, 1)
  EXPECT_EQ(values[23], 2.0F);  // (1, 2, 3)
}

TEST_P(NDArrayTest, IndexWithIntsSlicesNewAxisAndEllipsis) {
  const NDArray a = iota({4, 5, 6});
  const NDArray v = a.index({IndexItem::at(-1), IndexItem::range(1, std::nullopt, 2), IndexItem::new_axis()});
  EXPECT_EQ(v.shape(), (Shape{2, 1, 6}));
  EXPECT_EQ(v.strides(), (Strides{12, 0, 1}));
  EXPECT_EQ(v.offset(), 3 * 30 + 1 * 6);
  EXPECT_TRUE(v.shares_storage_with(a));

  const NDArray e = a.index({IndexItem::ellipsis(), IndexItem::at(2)});
  EXPECT_EQ(e.shape(), (Shape{4, 5}));
  EXPECT_EQ(e.index({IndexItem::at(1), IndexItem::at(1)}).item().to<double>(), 30 + 6 + 2);

  const NDArray reversed = a.index({IndexItem::range(std::nullopt, std::nullopt, -2)});
  EXPECT_EQ(reversed.shape(), (Shape{2, 5, 6}));
  EXPECT_EQ(reversed.index({IndexItem::at(0), IndexItem::at(0), IndexItem::at(0)}).item().to<double>(), 90);

  const NDArray none = a.index({IndexItem::range(10, 20)});
  EXPECT_EQ(none.shape(), (Shape{0, 5, 6}));
  EXPECT_EQ(none.to_vector<float>().size(), 0U);
}

TEST_P(NDArrayTest, FlipViewWalksBackwards) {
  const NDArray a = iota({2, 3});
  const NDArray f = a.flip_view({1});
  EXPECT_EQ(f.strides(), (Strides{3, -1}));
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{2, 1, 0, 5, 4, 3}));
}

TEST_P(NDArrayTest, SqueezeAndUnsqueeze) {
  const NDArray a = iota({2, 1, 3});
  EXPECT_EQ(a.squeeze({}).shape(), (Shape{2, 3}));
  EXPECT_EQ(a.squeeze({1}).shape(), (Shape{2, 3}));
  EXPECT_EQ(a.unsqueeze(-1).shape(), (Shape{2, 1, 3, 1}));
  EXPECT_THROW((void)a.squeeze({0}), ValueError);
}

TEST_P(NDArrayTest, AsStridedStaysInsideStorage) {
  const NDArray a = iota({6});
  const NDArray windows = a.as_strided({4, 3}, {1, 1}, 0);  // sliding windows of 3
  EXPECT_EQ(windows.to_vector<float>(), (std::vector<float>{0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5}));
  EXPECT_THROW((void)a.as_strided({4, 3}, {1, 1}, 1), ValueError);
  EXPECT_THROW((void)a.as_strided({2}, {-1}, 0), ValueError);
}

TEST_P(NDArrayTest, CompactCopiesOnlyNonCompactArrays) {
  const NDArray a = iota({3, 4});
  EXPECT_TRUE(a.compact().shares_storage_with(a));
  const NDArray t = a.permute({1, 0});
  const NDArray c = t.compact();
  EXPECT_FALSE(c.shares_storage_with(a));
  EXPECT_TRUE(c.is_compact());
  EXPECT_EQ(c.to_vector<float>(), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
}

TEST_P(NDArrayTest, AssignWritesThroughViewsWithBroadcasting) {
  NDArray a = NDArray::zeros({3, 4}, DType::Int64, GetParam());
  a.assign({IndexItem::range(), IndexItem::range(1, 3)}, NDArray::arange(3, DType::Int64, GetParam()).reshape({3, 1}));
  a.assign({IndexItem::at(0), IndexItem::at(3)}, Scalar(std::int64_t{9}));
  EXPECT_EQ(a.to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, 0, 0, 9, 0, 1, 1, 0, 0, 2, 2, 0}));
  EXPECT_THROW(a.assign({IndexItem::at(0)}, NDArray::zeros({3}, DType::Int64, GetParam())), ValueError);
}

TEST_P(NDArrayTest, AssignFromOverlappingViewOfItself) {
  NDArray a = iota({5});
  a.assign({IndexItem::range(1)}, a.index({IndexItem::range(0, 4)}));
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{0, 0, 1, 2, 3}));
}

TEST_P(NDArrayTest, AstypeConvertsAndToMovesBetweenDevices) {
  const NDArray a = NDArray::from_vector<double>({-1.5, 0.0, 2.7}, {3}, GetParam());
  EXPECT_EQ(a.astype(DType::Int32).to_vector<std::int32_t>(), (std::vector<std::int32_t>{-1, 0, 2}));
  EXPECT_EQ(a.astype(DType::Bool).to_vector<bool>(), (std::vector<bool>{true, false, true}));
  const Device other = GetParam() == cpu_device() ? ref_device() : cpu_device();
  const NDArray moved = a.permute({0}).to(other);
  EXPECT_EQ(moved.device(), other);
  EXPECT_EQ(moved.to_vector<double>(), a.to_vector<double>());
}

TEST_P(NDArrayTest, ZeroDimensionalAndEmptyArrays) {
  const NDArray scalar = NDArray::full({}, 3.0, DType::Float32, GetParam());
  EXPECT_EQ(scalar.ndim(), 0);
  EXPECT_EQ(scalar.size(), 1);
  EXPECT_EQ(scalar.reshape({1, 1}).shape(), (Shape{1, 1}));
  const NDArray empty = NDArray::zeros({0, 3}, DType::Float32, GetParam());
  EXPECT_EQ(empty.reshape({3, 0}).shape(), (Shape{3, 0}));
  EXPECT_EQ(empty.permute({1, 0}).compact().size(), 0);
}

TEST_P(NDArrayTest, BadViewArgumentsRaiseNamedErrors) {
  const NDArray a = iota({2, 3});
  EXPECT_THROW((void)a.reshape({4}), ValueError);
  EXPECT_THROW((void)a.reshape({-1, -1}), ValueError);
  EXPECT_THROW((void)a.permute({0, 0}), ValueError);
  EXPECT_THROW((void)a.permute({0, 2}), IndexError);
  EXPECT_THROW((void)a.broadcast_to({3, 3}), ValueError);
  EXPECT_THROW((void)a.broadcast_to({3}), ValueError);
  EXPECT_THROW((void)a.index({IndexItem::at(2)}), IndexError);
  EXPECT_THROW((void)a.index({IndexItem::at(0), IndexItem::at(0), IndexItem::at(0)}), IndexError);
  EXPECT_THROW((void)a.index({IndexItem::range(0, 1, 0)}), ValueError);
  EXPECT_THROW((void)a.swapaxes(0, 2), IndexError);
  EXPECT_THROW((void)NDArray::empty({-1}), ValueError);
  try {
    (void)a.reshape({4});
    FAIL() << "reshape should have thrown";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("reshape: cannot reshape array of shape (2, 3)"), std::string::npos)
        << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, NDArrayTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

TEST(DeviceTest, NamesParseAndMissingCudaDevicesAreDisabled) {
  EXPECT_EQ(device_from_name("cpu"), cpu_device());
  EXPECT_EQ(device_from_name("ref"), ref_device());
  EXPECT_EQ(device_from_name("cuda:1"), cuda_device(1));
  EXPECT_THROW((void)device_from_name("tpu"), ValueError);
  EXPECT_TRUE(cpu_device().enabled());
  EXPECT_TRUE(ref_device().enabled());
  // cuda:0 is there exactly when a GPU is (and Needle was built for it); the index past the last GPU never is.
  EXPECT_EQ(cuda_device().enabled(), cuda_available());
  const Device missing = cuda_device(cuda_device_count());
  EXPECT_FALSE(missing.enabled());
  EXPECT_THROW((void)NDArray::empty({2}, DType::Float32, missing), RuntimeError);
}

TEST(DTypeTest, PromotionFollowsPyTorch) {
  EXPECT_EQ(promote_types(DType::Int32, DType::Int64), DType::Int64);
  EXPECT_EQ(promote_types(DType::UInt8, DType::Int8), DType::Int32);
  EXPECT_EQ(promote_types(DType::Int8, DType::UInt8), DType::Int32);
  EXPECT_EQ(promote_types(DType::Bool, DType::UInt8), DType::UInt8);
  EXPECT_EQ(promote_types(DType::Int8, DType::Float32), DType::Float32);
  EXPECT_EQ(promote_types(DType::Int64, DType::Float32), DType::Float32);
  EXPECT_EQ(promote_types(DType::Bool, DType::Int32), DType::Int32);
  EXPECT_EQ(promote_types(DType::Float32, DType::Float64), DType::Float64);
  EXPECT_EQ(promote_with_scalar(DType::Int32, Scalar(2)), DType::Int32);
  EXPECT_EQ(promote_with_scalar(DType::Int32, Scalar(2.5)), DType::Float32);
  EXPECT_EQ(promote_with_scalar(DType::Float64, Scalar(2.5)), DType::Float64);
  EXPECT_EQ(promote_with_scalar(DType::Bool, Scalar(2)), DType::Int64);
  EXPECT_EQ(dtype_from_name("int32"), DType::Int32);
  EXPECT_THROW((void)dtype_from_name("complex64"), TypeError);
}

}  // namespace
}  // namespace needle
