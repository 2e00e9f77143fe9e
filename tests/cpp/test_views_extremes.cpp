// Views with extreme arguments (found by tests/fuzz/fuzz_strided.cpp): slice steps near the int64 limits,
// as_strided extents past int64, and the unbounded strides as_strided accepts for empty arrays and size-1
// axes. Each gives the right view or a ValueError, with no arithmetic that overflows (the sanitizer
// build turns any into a failure).
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "ops_test_util.h"

namespace needle {
namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::optional<std::int64_t> kAll = std::nullopt;

std::vector<std::int64_t> values_of(const NDArray& a) { return a.to_vector<std::int64_t>(); }

TEST(ViewExtremesTest, SliceStepsNearTheInt64Limits) {
  const NDArray a = NDArray::arange(5);
  for (const std::int64_t step : {kMax, kMax - 1, std::int64_t{1} << 62}) {
    const NDArray v = a.index({IndexItem::range(kAll, kAll, step)});
    EXPECT_EQ(v.shape(), Shape{1}) << step;
    EXPECT_EQ(values_of(v), std::vector<std::int64_t>{0}) << step;
  }
  for (const std::int64_t step : {kMin, kMin + 1, -(std::int64_t{1} << 62)}) {
    const NDArray v = a.index({IndexItem::range(kAll, kAll, step)});
    EXPECT_EQ(v.shape(), Shape{1}) << step;
    EXPECT_EQ(values_of(v), std::vector<std::int64_t>{4}) << step;
  }
  // Bounds at the limits clamp as Python's do.
  EXPECT_EQ(values_of(a.index({IndexItem::range(kMin, kMax, 2)})), (std::vector<std::int64_t>{0, 2, 4}));
  EXPECT_EQ(values_of(a.index({IndexItem::range(kMax, kMin, -3)})), (std::vector<std::int64_t>{4, 1}));
  // A huge step over an axis with a stride other than 1.
  const NDArray strided = NDArray::arange(10).as_strided({5}, {2}, 0);
  EXPECT_EQ(values_of(strided.index({IndexItem::range(1, kAll, std::int64_t{1} << 62)})), std::vector<std::int64_t>{2});
}

TEST(ViewExtremesTest, AsStridedExtentsPastInt64AreRefused) {
  const NDArray a = NDArray::arange(4);
  const std::vector<std::pair<Shape, std::pair<Strides, std::int64_t>>> cases = {
      {{2}, {{kMax}, 0}}, {{2}, {{kMin}, 3}},  {{3, 3}, {{std::int64_t{1} << 62, std::int64_t{1} << 62}, 0}},
      {{2}, {{1}, kMax}}, {{2}, {{-1}, kMin}},
  };
  for (const auto& [shape, rest] : cases) {
    testing::expect_error<ValueError>([&] { (void)a.as_strided(shape, rest.first, rest.second); },
                                      "reaches outside the storage");
  }
  // A shape whose element count itself overflows is refused as such, before any stride is looked at.
  testing::expect_error<ValueError>(
      [&] {
        (void)a.as_strided({kMax, 2}, {2, 1}, 0);
      },
      "has more than 2**63 - 1 elements");
}

TEST(ViewExtremesTest, UnboundedStridesOfEmptyArraysAndSizeOneAxes) {
  const NDArray a = NDArray::arange(4);
  // A size-1 axis may have any stride: flipping or slicing it changes nothing.
  const NDArray row = a.as_strided({1, 2}, {kMin, 1}, 1);
  EXPECT_EQ(values_of(row.flip_view({0, 1}).compact()), (std::vector<std::int64_t>{2, 1}));
  EXPECT_EQ(values_of(row.index({IndexItem::range(kAll, kAll, -1), IndexItem::range(kAll, kAll, kMax)})),
            std::vector<std::int64_t>{1});
  // Copies of such views walk each row without stepping a stride past its last element (that offset
  // would overflow int64; UBSan reports it in the sanitizer build).
  for (const Device device : {cpu_device(), ref_device()}) {
    const NDArray every_other = NDArray::arange(4, DType::Int64, device).as_strided({2, 1}, {2, kMax}, 0);
    EXPECT_EQ(values_of(every_other.compact()), (std::vector<std::int64_t>{0, 2})) << device;
    EXPECT_EQ(values_of(every_other.astype(DType::Float64).astype(DType::Int64)), (std::vector<std::int64_t>{0, 2}))
        << device;
  }
  // An empty array may have any strides and offset: its views are empty.
  const NDArray empty = a.as_strided({0, 5}, {kMax, kMin}, -7);
  EXPECT_EQ(empty.index({IndexItem::ellipsis(), IndexItem::at(4)}).shape(), Shape{0});
  EXPECT_EQ(empty.index({IndexItem::range(kAll, kAll, 3), IndexItem::range(1, kAll, 2)}).shape(), (Shape{0, 2}));
  EXPECT_EQ(empty.flip_view({0, 1}).shape(), (Shape{0, 5}));
  EXPECT_EQ(empty.flip_view({1}).compact().size(), 0);
  testing::expect_error<IndexError>(
      [&] {
        (void)empty.index({IndexItem::range(), IndexItem::at(5)});
      },
      "out of bounds");
}

}  // namespace
}  // namespace needle
