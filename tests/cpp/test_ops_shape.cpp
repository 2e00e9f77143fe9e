// Shape ops on tensors (flip, pad, getitem, concat, stack, split, dilate, undilate): values against
// hand-computed loops, gradients against finite differences, second derivatives, errors; on both devices.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <vector>

#include "gradcheck.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_error;
using testing::expect_gradients_match;
using testing::expect_second_gradients_match;
using testing::iota;
using testing::random_array;
using testing::values_of;
using V = std::vector<Tensor>;
using R = IndexItem;

class OpsShapeTest : public ::testing::TestWithParam<Device> {
 protected:
  [[nodiscard]] Tensor iota_tensor(const Shape& shape, bool requires_grad = false) const {
    return Tensor(iota(shape, GetParam()), requires_grad);
  }
};

TEST_P(OpsShapeTest, FlipReversesTheGivenAxes) {
  const Tensor a = iota_tensor({2, 3, 4});
  const Tensor f = ops::flip(a, {0, -1});
  ASSERT_EQ(f.shape(), (Shape{2, 3, 4}));
  std::vector<double> expected;
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 3; ++j) {
      for (int k = 0; k < 4; ++k) expected.push_back((1 - i) * 12 + j * 4 + (3 - k));
    }
  }
  EXPECT_EQ(values_of(f), expected);
  EXPECT_EQ(values_of(ops::flip(a, {})), values_of(a));  // no axes: nothing reversed
}

TEST_P(OpsShapeTest, PadSurroundsWithTheValue) {
  const Tensor a = iota_tensor({2, 3});
  const Tensor p = ops::pad(a, {{1, 0}, {2, 1}}, 7.0);
  ASSERT_EQ(p.shape(), (Shape{3, 6}));
  std::vector<double> expected;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 6; ++j) {
      const bool inside = i >= 1 && j >= 2 && j < 5;
      expected.push_back(inside ? (i - 1) * 3 + (j - 2) : 7.0);
    }
  }
  EXPECT_EQ(values_of(p), expected);
}

TEST_P(OpsShapeTest, GetitemTakesIntsSlicesNewAxesAndEllipsis) {
  const Tensor a = iota_tensor({4, 5});
  const Tensor s = ops::getitem(a, {R::range(1, 4, 2), R::at(-1)});
  EXPECT_EQ(s.shape(), (Shape{2}));
  EXPECT_EQ(values_of(s), (std::vector<double>{9, 19}));
  const Tensor t = ops::getitem(a, {R::ellipsis(), R::new_axis(), R::range(std::nullopt, std::nullopt, -2)});
  EXPECT_EQ(t.shape(), (Shape{4, 1, 3}));
  std::vector<double> expected;
  for (int i = 0; i < 4; ++i) {
    for (int j : {4, 2, 0}) expected.push_back(i * 5 + j);
  }
  EXPECT_EQ(values_of(t), expected);
}

TEST_P(OpsShapeTest, ConcatStackAndSplit) {
  const Tensor a = iota_tensor({2, 3});
  const Tensor b = Tensor(NDArray::from_vector(std::vector<double>{-1, -2}, {2, 1}, GetParam()));
  const Tensor c = ops::concat({a, b}, -1);
  ASSERT_EQ(c.shape(), (Shape{2, 4}));
  EXPECT_EQ(values_of(c), (std::vector<double>{0, 1, 2, -1, 3, 4, 5, -2}));

  const Tensor x = iota_tensor({2});
  const Tensor y = ops::add_scalar(x, Scalar(10.0));
  const Tensor s0 = ops::stack({x, y}, 0);
  ASSERT_EQ(s0.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of(s0), (std::vector<double>{0, 1, 10, 11}));
  const Tensor s1 = ops::stack({x, y, x}, -1);
  ASSERT_EQ(s1.shape(), (Shape{2, 3}));
  EXPECT_EQ(values_of(s1), (std::vector<double>{0, 10, 0, 1, 11, 1}));

  const std::vector<Tensor> parts = ops::split(a, -1);
  ASSERT_EQ(parts.size(), 3U);
  for (std::size_t j = 0; j < 3; ++j) {
    EXPECT_EQ(parts[j].shape(), (Shape{2}));
    EXPECT_EQ(values_of(parts[j]), (std::vector<double>{static_cast<double>(j), static_cast<double>(3 + j)}));
  }
  EXPECT_EQ(ops::split(a, 0).size(), 2U);
}

TEST_P(OpsShapeTest, DilateInsertsZerosAndUndilateRemovesThem) {
  const Tensor a = iota_tensor({2, 3});
  const Tensor d = ops::dilate(a, {0, 1}, 1);
  ASSERT_EQ(d.shape(), (Shape{4, 6}));
  std::vector<double> expected;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 6; ++j) expected.push_back(i % 2 == 0 && j % 2 == 0 ? (i / 2) * 3 + j / 2 : 0.0);
  }
  EXPECT_EQ(values_of(d), expected);
  EXPECT_EQ(values_of(ops::undilate(d, {0, 1}, 1)), values_of(a));

  const Tensor e = ops::dilate(a, {-1}, 2);
  ASSERT_EQ(e.shape(), (Shape{2, 9}));
  EXPECT_EQ(values_of(e), (std::vector<double>{0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0, 5, 0, 0}));
  EXPECT_EQ(values_of(ops::dilate(a, {0}, 0)), values_of(a));

  // Sizes that are not a multiple of dilation + 1 keep their last partial group's first element.
  const Tensor u = ops::undilate(iota_tensor({5}), {0}, 1);
  EXPECT_EQ(values_of(u), (std::vector<double>{0, 2, 4}));
}

TEST_P(OpsShapeTest, GradientsMatchFiniteDifferences) {
  const Device dev = GetParam();
  const NDArray a = random_array({3, 4}, dev, 1);
  const NDArray b = random_array({3, 2}, dev, 2);
  const NDArray c = random_array({2, 3, 4}, dev, 3);
  // flip/pad/dilate/undilate/getitem, also of non-contiguous views (permuted, sliced with steps).
  expect_gradients_match([](const V& t) { return ops::flip(t[0], {0, -1}); }, {c});
  expect_gradients_match([](const V& t) { return ops::flip(ops::permute(t[0], {1, 0}), {1}); }, {a});
  expect_gradients_match([](const V& t) { return ops::pad(t[0], {{1, 2}, {0, 1}}, 3.0); }, {a});
  expect_gradients_match([](const V& t) { return ops::pad(ops::transpose(t[0]), {{0, 0}, {2, 0}}); }, {a});
  expect_gradients_match([](const V& t) { return ops::getitem(t[0], {R::range(1, std::nullopt), R::at(-2)}); }, {a});
  expect_gradients_match(
      [](const V& t) {
        return ops::getitem(t[0], {R::range(std::nullopt, std::nullopt, -2), R::new_axis(), R::ellipsis()});
      },
      {c});
  expect_gradients_match(
      [](const V& t) {
        return ops::getitem(ops::permute(t[0], {2, 0, 1}), {R::at(1), R::range(0, 1)});
      },
      {c});
  expect_gradients_match([](const V& t) { return ops::dilate(t[0], {0, -1}, 2); }, {a});
  expect_gradients_match([](const V& t) { return ops::dilate(ops::transpose(t[0]), {1}, 1); }, {a});
  expect_gradients_match([](const V& t) { return ops::undilate(t[0], {1}, 1); }, {a});
  expect_gradients_match([](const V& t) { return ops::undilate(t[0], {0, 2}, 1); }, {c});  // sizes 2 and 4
  expect_gradients_match([](const V& t) { return ops::undilate(t[0], {0}, 1); }, {a});     // size 3: uneven
  // concat/stack/split route each slice of the gradient to its input.
  expect_gradients_match(
      [](const V& t) {
        return ops::concat({t[0], t[1], t[0]}, -1);
      },
      {a.index({R::range(0, 3)}), b});
  expect_gradients_match(
      [](const V& t) {
        return ops::concat({ops::transpose(t[0]), t[1]}, 0);
      },
      {random_array({2, 4}, dev, 4), random_array({3, 2}, dev, 5)});
  expect_gradients_match([](const V& t) { return ops::stack({t[0], t[1]}, 1); }, {b, b});
  expect_gradients_match([](const V& t) { return ops::stack({t[0], ops::flip(t[0], {0})}, -1); }, {b});
  expect_gradients_match(
      [](const V& t) {
        const std::vector<Tensor> parts = ops::split(t[0], 1);
        return parts[0] * parts[1] + parts[3];  // parts[2] unused: its slice gets zeros
      },
      {a});
  // Size-1 dimensions.
  expect_gradients_match([](const V& t) { return ops::stack(ops::split(t[0], 0), 0); }, {random_array({1, 3}, dev, 6)});
  expect_gradients_match([](const V& t) { return ops::dilate(t[0], {0, 1}, 1); }, {random_array({1, 2}, dev, 7)});
}

TEST_P(OpsShapeTest, SecondDerivativesFlowThroughShapeOps) {
  const Device dev = GetParam();
  const NDArray a = random_array({3, 4}, dev, 8);
  // Nonlinear in the input so the first gradient depends on it, and routed through each shape op.
  expect_second_gradients_match(
      [](const V& t) {
        return ops::getitem(t[0] * t[0] * t[0], {R::range(0, 2), R::range(1, std::nullopt, 2)});
      },
      {a});
  expect_second_gradients_match(
      [](const V& t) {
        const Tensor y = ops::getitem(t[0], {R::at(1)});
        return ops::exp(ops::pad(y, {{1, 1}}));
      },
      {a});
  expect_second_gradients_match([](const V& t) { return ops::tanh(ops::dilate(ops::flip(t[0], {0}), {1}, 1)); }, {a});
  expect_second_gradients_match(
      [](const V& t) {
        return ops::sigmoid(ops::concat({ops::undilate(t[0], {1}, 1), t[0]}, 1));
      },
      {a});
}

TEST_P(OpsShapeTest, GetitemViewsWithoutCopying) {
  const Tensor a = iota_tensor({3, 4});
  EXPECT_TRUE(ops::getitem(a, {R::at(1)}).value().shares_storage_with(a.value()));
}

TEST_P(OpsShapeTest, BadArgumentsRaiseNamedErrors) {
  const Tensor a = iota_tensor({2, 3});
  expect_error<IndexError>([&] { (void)ops::flip(a, {2}); }, "flip: axis 2 is out of range");
  expect_error<ValueError>([&] { (void)ops::flip(a, {0, -2}); }, "flip: axis -2 is repeated");
  expect_error<ValueError>([&] { (void)ops::pad(a, {{1, 1}}); }, "pad: expected 2 (before, after) pairs");
  expect_error<ValueError>([&] { (void)ops::pad(a, {{0, 0}, {-1, 0}}); }, "pad: widths must be non-negative");
  expect_error<IndexError>([&] { (void)ops::getitem(a, {R::at(2)}); }, "getitem: index: index 2 is out of bounds");
  expect_error<IndexError>([&] { (void)ops::getitem(a, {R::at(0), R::at(0), R::at(0)}); }, "too many indices");
  expect_error<ValueError>([&] { (void)ops::concat({}); }, "concat: expected a non-empty list");
  expect_error<ValueError>(
      [&] {
        (void)ops::concat({a, iota_tensor({3, 3})}, 1);
      },
      "concat: shapes (2, 3) and (3, 3) do not match outside axis 1");
  expect_error<IndexError>([&] { (void)ops::concat({a, a}, 2); }, "concat: axis 2 is out of range");
  expect_error<ValueError>(
      [&] {
        (void)ops::stack({a, iota_tensor({3, 2})});
      },
      "stack: all tensors must have the same shape, got (2, 3) and (3, 2)");
  expect_error<IndexError>([&] { (void)ops::stack({a, a}, -4); }, "stack: axis -4 is out of range");
  expect_error<IndexError>([&] { (void)ops::split(a, 2); }, "split: axis 2 is out of range");
  expect_error<ValueError>([&] { (void)ops::dilate(a, {0}, -1); }, "dilate: dilation must be non-negative");
  expect_error<IndexError>([&] { (void)ops::dilate(a, {3}, 1); }, "dilate: axis 3 is out of range");
  expect_error<IndexError>([&] { (void)ops::undilate(a, {-3}, 1); }, "undilate: axis -3 is out of range");
}

INSTANTIATE_TEST_SUITE_P(Devices, OpsShapeTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
