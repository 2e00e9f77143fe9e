// Sizes, strides, offsets and byte counts that do not fit in int64: each is refused with an error naming
// the function called and the sizes asked for, before anything is allocated, instead of wrapping into a
// small size and reading or writing out of bounds later.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cstdint>
#include <limits>
#include <string>

#include "file_test_util.h"
#include "ops_test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define NEEDLE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NEEDLE_TEST_ASAN 1
#endif
#endif
#ifdef NEEDLE_TEST_ASAN
// The tests below ask for petabytes to see the MemoryError: AddressSanitizer's allocator must answer such
// a request with a null pointer, as malloc does, instead of aborting the test run.
extern "C" const char* __asan_default_options();
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
#endif

namespace needle {
namespace {

using testing::expect_error;
using testing::TempDir;
using testing::write_bytes;

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t k2to31 = std::int64_t{1} << 31;
constexpr std::int64_t k2to32 = std::int64_t{1} << 32;
constexpr std::int64_t k2to61 = std::int64_t{1} << 61;
constexpr std::int64_t k2to62 = std::int64_t{1} << 62;

TEST(CheckedMathTest, AnswersNothingInsteadOfWrapping) {
  EXPECT_EQ(checked_mul(k2to31, k2to31), std::int64_t{1} << 62);
  EXPECT_EQ(checked_mul(k2to32, k2to32), std::nullopt);
  EXPECT_EQ(checked_mul(-1, kMin), std::nullopt);
  EXPECT_EQ(checked_mul(-1, kMax), -kMax);
  EXPECT_EQ(checked_add(kMax, 1), std::nullopt);
  EXPECT_EQ(checked_add(kMax, -1), kMax - 1);
  EXPECT_EQ(checked_sub(kMin, 1), std::nullopt);
  EXPECT_EQ(checked_sub(0, kMax), -kMax);
}

TEST(CheckedMathTest, NumelCountsNonzeroDimensionsEvenWhenEmpty) {
  EXPECT_EQ(checked_numel({}), 1);
  EXPECT_EQ(checked_numel({2, 3}), 6);
  EXPECT_EQ(checked_numel({0, 5}), 0);
  EXPECT_EQ(checked_numel({k2to32, k2to32}), std::nullopt);
  // NumPy's rule: an empty shape whose nonzero dimensions overflow is refused too.
  EXPECT_EQ(checked_numel({0, k2to62, k2to62}), std::nullopt);
  expect_error<ValueError>([] { (void)numel({k2to32, k2to32}); }, "has more than 2**63 - 1 elements");
}

TEST(CheckedMathTest, ByteSizesReadAsDecimalUnits) {
  EXPECT_EQ(byte_size_str(512), "512 B");
  EXPECT_EQ(byte_size_str(4'000'000'000'000), "4.0 TB");
  EXPECT_EQ(byte_size_str(1'500'000), "1.5 MB");
}

TEST(OverflowTest, CreationRefusesShapesWhoseSizeWraps) {
  // 2**32 * 2**32 wraps to 0: this used to make an empty array whose [5, 5] read anywhere.
  expect_error<ValueError>(
      [] {
        (void)NDArray::zeros({k2to32, k2to32});
      },
      "zeros: shape (4294967296, 4294967296) has more than 2**63 - 1 elements");
  expect_error<ValueError>([] { (void)NDArray::empty({0, k2to62, k2to62}); }, "empty: shape (0, ");
  // The element count fits, the byte count does not.
  expect_error<ValueError>([] { (void)NDArray::ones({k2to62}, DType::Float32); },
                           "ones: an array of shape (4611686018427387904,) and dtype float32 would need more than");
  expect_error<ValueError>([] { (void)NDArray::full({k2to61 + 1}, 1.0, DType::Float64); }, "full: ");
}

TEST(OverflowTest, ImpossibleButRepresentableSizesAreMemoryErrors) {
  // 2**50 float32 elements (4.5 PB) lie beyond any machine's address space: the allocation must fail
  // as a MemoryError naming the call and the size, not as std::bad_alloc.
  expect_error<MemoryError>([] { (void)NDArray::arange(std::int64_t{1} << 50, DType::Float32); },
                            "arange: an array of shape (1125899906842624,) and dtype float32 (1125899906842624 "
                            "elements, 4.5 PB) cannot be allocated on ");
  // The backend's own reason follows the user's call.
  expect_error<MemoryError>([] { (void)NDArray::arange(std::int64_t{1} << 50, DType::Float32, cpu_device()); },
                            "cannot be allocated on cpu (allocate: out of memory (4503599627370496 bytes requested))");
  expect_error<MemoryError>(
      [] {
        (void)NDArray::zeros({std::int64_t{1} << 25, std::int64_t{1} << 25});
      },
      "zeros: an array of shape (33554432, 33554432)");
  // arange still counts correctly in every dtype, across its chunks.
  const NDArray a = NDArray::arange(70'000, DType::Int32);
  const std::vector<std::int32_t> values = a.to_vector<std::int32_t>();
  EXPECT_EQ(values[0], 0);
  EXPECT_EQ(values[65'536], 65'536);
  EXPECT_EQ(values[69'999], 69'999);
  EXPECT_EQ(NDArray::arange(3, DType::Bool).to_vector<bool>(), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(NDArray::arange(0, DType::Float64).shape(), (Shape{0}));
}

TEST(OverflowTest, ReshapeAndBroadcastCheckTheRequestedSize) {
  const NDArray a = NDArray::zeros({4});
  // (2**62 + 1) * 4 wraps to 4, which used to pass reshape's size check.
  expect_error<ValueError>(
      [&] {
        (void)a.reshape({k2to62 + 1, 4});
      },
      "reshape: cannot reshape array of shape (4,) into shape (4611686018427387905, 4), which "
      "has more than 2**63 - 1 elements");
  expect_error<ValueError>([&] { (void)a.reshape({k2to62 + 1, -1, 4}); }, "reshape: cannot reshape");
  EXPECT_EQ(a.reshape({2, -1}).shape(), (Shape{2, 2}));
  expect_error<ValueError>(
      [&] {
        (void)a.broadcast_to({k2to62 + 1, 4});
      },
      "broadcast_to: shape (4611686018427387905, 4) has more than 2**63 - 1 elements");
  // Two representable operands whose broadcast is not.
  const NDArray tall = NDArray::zeros({1}).broadcast_to({k2to32}).reshape({k2to32, 1});
  const NDArray wide = NDArray::zeros({1}).broadcast_to({k2to32});
  expect_error<ValueError>([&] { (void)add(tall, wide); }, "broadcast to (4294967296, 4294967296), which has more");
}

TEST(OverflowTest, AsStridedBoundsCheckDoesNotWrap) {
  const NDArray a = NDArray::zeros({4});
  // 3 * -0x5555555555555555 wraps to 0x5555555555555551 - 2**64, i.e. back near 1: it used to pass.
  expect_error<ValueError>([&] { (void)a.as_strided({4}, {-0x5555555555555555}, 0); }, "reaches outside the storage");
  expect_error<ValueError>([&] { (void)a.as_strided({2, 2}, {kMax, 1}, 0); }, "reaches outside the storage");
  expect_error<ValueError>([&] { (void)a.as_strided({2}, {2}, kMax - 1); }, "reaches outside the storage");
  EXPECT_EQ(a.as_strided({2, 2}, {2, 1}, 0).shape(), (Shape{2, 2}));
}

TEST(OverflowTest, SliceStepsAtTheEndsOfInt64) {
  const NDArray a = NDArray::arange(4);
  // NumPy: a[::-2**63] is [3] and a[::2**63-1] is [0]; -step used to overflow and give nothing.
  const NDArray back = a.index({IndexItem::range(std::nullopt, std::nullopt, kMin)});
  EXPECT_EQ(back.shape(), (Shape{1}));
  EXPECT_EQ(back.compact().to_vector<std::int64_t>(), (std::vector<std::int64_t>{3}));
  const NDArray forward = a.index({IndexItem::range(std::nullopt, std::nullopt, kMax)});
  EXPECT_EQ(forward.compact().to_vector<std::int64_t>(), (std::vector<std::int64_t>{0}));
  const NDArray mid = a.index({IndexItem::range(2, std::nullopt, kMin + 1)});
  EXPECT_EQ(mid.compact().to_vector<std::int64_t>(), (std::vector<std::int64_t>{2}));
  EXPECT_EQ(a.index({IndexItem::range(1, std::nullopt, -2)}).compact().to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{1}));
  EXPECT_EQ(a.index({IndexItem::range(3, 0, -2)}).compact().to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{3, 1}));
}

TEST(OverflowTest, PadDilateConcatAndOneHotNameThemselves) {
  const NDArray a = NDArray::zeros({2, 2});
  expect_error<ValueError>(
      [&] {
        (void)pad(a, {{0, 0}, {kMax, 1}}, Scalar(0.0));
      },
      "pad: padding axis 1 of size 2 by (9223372036854775807, 1) gives a size larger than");
  expect_error<ValueError>(
      [&] {
        (void)pad(a, {{k2to62, 0}, {k2to62, 0}}, Scalar(0.0));
      },
      "pad: shape (4611686018427387906, 4611686018427387906) has more than");
  const Tensor t(NDArray::zeros({2, 2}));
  expect_error<ValueError>([&] { (void)ops::dilate(t, {0}, k2to62); },
                           "dilate: dilating axis 0 of size 2 by 4611686018427387904 gives more than 2**63 - 1");
  expect_error<ValueError>(
      [&] {
        (void)ops::dilate(t, {0, 1}, k2to31);
      },
      "dilate: dilating an array of shape (2, 2) by 2147483648 gives shape (4294967298, "
      "4294967298)");
  expect_error<ValueError>([&] { (void)ops::dilate(t, {0}, kMax); }, "dilate: dilation must be less than 2**63 - 1");
  expect_error<ValueError>([&] { (void)ops::undilate(t, {0}, kMax); },
                           "undilate: dilation must be less than 2**63 - 1");
  const NDArray huge = NDArray::zeros({1}).broadcast_to({k2to62});
  expect_error<ValueError>([&] { (void)concat({huge, huge}, 0); }, "concat: the sizes along axis 0 add up to more");
  const Tensor labels(NDArray::from_vector<std::int64_t>({0, 1, 2}, {3}));
  expect_error<ValueError>([&] { (void)ops::one_hot(labels, k2to62 + 1); },
                           "one_hot: 4611686018427387905 classes for indices of shape (3,) give an output of shape "
                           "(3, 4611686018427387905)");
  expect_error<MemoryError>([&] { (void)ops::one_hot(labels, std::int64_t{1} << 50); },
                            "one_hot: 1125899906842624 classes for indices of shape (3,) give an output of shape "
                            "(3, 1125899906842624) and dtype float32 (13.5 PB) that cannot be allocated on ");
  EXPECT_EQ(ops::one_hot(labels, 4).value().shape(), (Shape{3, 4}));
}

TEST(OverflowTest, PoolingWindowArithmeticIsChecked) {
  const Tensor x(NDArray::zeros({1, 1, 4, 4}));
  // The padded input (2**62 + 4)**2 used to wrap; the pool must refuse before padding.
  expect_error<ValueError>([&] { (void)ops::max_pool2d(x, k2to62, 1, k2to61); },
                           "max_pool2d: padding 2305843009213693952 makes the padded input of shape (1, 1, 4, 4) "
                           "larger than 2**63 - 1 elements");
  // 2 * padding used to overflow to a negative number and pass the padding check.
  expect_error<ValueError>([&] { (void)ops::avg_pool2d(x, 3, 1, k2to62); }, "padding must lie in [0, kernel_size / 2]");
  // The padded input fits, its (1, 1, 2**19 + 1, 2**19 + 1, 2**19, 2**19) windows do not (a broadcast input:
  // nothing is allocated before the check).
  const Tensor big(NDArray::zeros({1}).broadcast_to({1, 1, std::int64_t{1} << 20, std::int64_t{1} << 20}));
  expect_error<ValueError>([&] { (void)ops::max_pool2d(big, std::int64_t{1} << 19, 1, 0); },
                           "max_pool2d: kernel_size 524288 with stride 1 and padding 0 gives windows of shape (1, 1, "
                           "524289, 524289, 524288, 524288)");
  // A stride past the input is one window per axis, and must not overflow computing its step.
  const Tensor ones(NDArray::ones({1, 1, 4, 4}));
  EXPECT_EQ(ops::max_pool2d(ones, 2, kMax, 0).shape(), (Shape{1, 1, 1, 1}));
  EXPECT_EQ(ops::avg_pool2d(ones, 2, 2, 1).shape(), (Shape{1, 1, 3, 3}));
}

// A safetensors file of one tensor described by `entry`, with `data` after the header.
std::string safetensors_file(const std::string& entry, const std::string& data = "") {
  const std::string header = "{\"t\":" + entry + "}";
  std::string bytes(8, '\0');
  const std::uint64_t size = header.size();
  for (std::size_t i = 0; i < 8; ++i) bytes[i] = static_cast<char>((size >> (8 * i)) & 0xFFU);  // little-endian
  return bytes + header + data;
}

TEST(OverflowTest, SafetensorsRefusesShapesThatDoNotFit) {
  const TempDir dir;
  const std::string path = dir.file("empty.safetensors");
  // Legal in the format (0 bytes), but its nonzero dimensions multiply past int64.
  write_bytes(path, safetensors_file(R"({"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],)"
                                     R"("data_offsets":[0,0]})"));
  expect_error<ValueError>([&] { (void)io::load_safetensors(path); },
                           "shape is too large: (0, 4611686018427387904, 4611686018427387904) of dtype F32 has more");
  write_bytes(path, safetensors_file(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]})"));
  expect_error<ValueError>([&] { (void)io::load_safetensors(path); }, "shape is too large");
}

TEST(OverflowTest, SafetensorsChecksLengthsBeforeReading) {
  const TempDir dir;
  testing::expect_error<ValueError>([&] { (void)io::load_safetensors(dir.path()); }, "is a directory");
  const std::string path = dir.file("t.safetensors");
  // A header length past the file's end is refused from the file's size, not by reading.
  write_bytes(path, std::string("\x00\x00\x00\x01\x00\x00\x00\x00", 8) + "{}");
  expect_error<ValueError>([&] { (void)io::load_safetensors(path); }, "header size 16777216 exceeds the 2 bytes");
  // Data after the tensors, and data missing.
  write_bytes(path, safetensors_file(R"({"dtype":"I32","shape":[1],"data_offsets":[0,4]})", "abcdx"));
  expect_error<ValueError>([&] { (void)io::load_safetensors(path); }, "cover 4 bytes but the data section has 5");
  write_bytes(path, safetensors_file(R"({"dtype":"I32","shape":[1],"data_offsets":[0,4]})", "abcd"));
  EXPECT_EQ(io::load_safetensors(path).at("t").shape(), (Shape{1}));
#ifdef __linux__
  // No size to check against: read only the 8-byte length and what it announces.
  expect_error<ValueError>([] { (void)io::load_safetensors("/dev/zero"); }, "does not start with '{'");
#endif
}

TEST(OverflowTest, MnistHeaderProductIsChecked) {
  const TempDir dir;
  const std::string images = dir.file("images.idx");
  const std::string labels = dir.file("labels.idx");
  // 4 images of 2**31 x 2**31 pixels: 2**64 bytes, which wrapped to the 0 this 16-byte file holds.
  write_bytes(images, std::string("\x00\x00\x08\x03\x00\x00\x00\x04\x80\x00\x00\x00\x80\x00\x00\x00", 16));
  write_bytes(labels, std::string("\x00\x00\x08\x01\x00\x00\x00\x04", 8) + std::string(4, '\0'));
  expect_error<ValueError>([&] { data::MNISTDataset(images, labels); },
                           "the header announces 4 x 2147483648 x 2147483648 bytes of images, more than 2**63 - 1");
}

}  // namespace
}  // namespace needle
