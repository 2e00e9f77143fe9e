// Indexing with integer tensors (gather, embedding, one_hot): values against hand-computed loops,
// gradients (with repeated indices) against finite differences, second derivatives, errors; on both devices.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cstdint>
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

class OpsIndexTest : public ::testing::TestWithParam<Device> {
 protected:
  template <typename T>
  [[nodiscard]] Tensor ints(const std::vector<T>& values, const Shape& shape) const {
    return Tensor(NDArray::from_vector(values, shape, GetParam()));
  }
};

TEST_P(OpsIndexTest, GatherPicksAlongTheAxis) {
  const Tensor a(iota({3, 4}, GetParam()));
  const std::vector<std::int64_t> idx{0, 3, 1, 1, -1, 0};
  const Tensor g1 = ops::gather(a, -1, ints(idx, {3, 2}));
  ASSERT_EQ(g1.shape(), (Shape{3, 2}));
  std::vector<double> expected;
  for (std::size_t i = 0; i < 3; ++i) {
    for (std::size_t j = 0; j < 2; ++j) {
      const std::int64_t k = idx[i * 2 + j] < 0 ? idx[i * 2 + j] + 4 : idx[i * 2 + j];
      expected.push_back(static_cast<double>(i * 4) + static_cast<double>(k));
    }
  }
  EXPECT_EQ(values_of(g1), expected);
  // Along axis 0 with a smaller index (int32): out[i][j] = a[idx[i][j]][j].
  const std::vector<std::int32_t> idx0{2, 0, 1, 2, 0, 0, 0, 1};
  const Tensor g0 = ops::gather(a, 0, ints(idx0, {2, 4}));
  ASSERT_EQ(g0.shape(), (Shape{2, 4}));
  expected.clear();
  for (std::size_t i = 0; i < 2; ++i) {
    for (std::size_t j = 0; j < 4; ++j) expected.push_back(idx0[i * 4 + j] * 4.0 + static_cast<double>(j));
  }
  EXPECT_EQ(values_of(g0), expected);
}

TEST_P(OpsIndexTest, GatherGradientAccumulatesRepeatedPicks) {
  const Tensor a(NDArray::zeros({4}, DType::Float64, GetParam()), true);
  ops::gather(a, 0, ints(std::vector<std::int64_t>{1, 1, 3, 1}, {4})).backward();
  EXPECT_EQ(values_of(a.grad()), (std::vector<double>{0, 3, 0, 1}));
}

TEST_P(OpsIndexTest, EmbeddingPicksRowsAndAccumulatesTheirGradients) {
  const NDArray w = random_array({5, 3}, GetParam(), 41);
  const std::vector<double> wh = w.to_vector<double>();
  const Tensor weight(w, true);
  const std::vector<std::int64_t> idx{0, 4, 4, 2};
  const Tensor out = ops::embedding(ints(idx, {2, 2}), weight);
  ASSERT_EQ(out.shape(), (Shape{2, 2, 3}));
  std::vector<double> expected;
  for (std::int64_t row : idx) {
    for (std::size_t k = 0; k < 3; ++k) expected.push_back(wh[static_cast<std::size_t>(row) * 3 + k]);
  }
  EXPECT_EQ(values_of(out), expected);
  out.backward();
  EXPECT_EQ(values_of(weight.grad()), (std::vector<double>{1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 2, 2, 2}));
  // A 0-d index gives one row; int32 indices work too.
  const Tensor one = ops::embedding(ints(std::vector<std::int32_t>{3}, {}), weight);
  EXPECT_EQ(one.shape(), (Shape{3}));
  EXPECT_EQ(values_of(one), (std::vector<double>{wh[9], wh[10], wh[11]}));
}

TEST_P(OpsIndexTest, OneHotEncodesWithoutGradient) {
  const Tensor idx = ints(std::vector<std::int64_t>{2, 0, 1, 2}, {2, 2});
  const Tensor h = ops::one_hot(idx, 3);
  EXPECT_EQ(h.dtype(), kDefaultFloat);
  EXPECT_FALSE(h.requires_grad());
  ASSERT_EQ(h.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(values_of(h), (std::vector<double>{0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1}));
  const Tensor h64 = ops::one_hot(ints(std::vector<std::int32_t>{1}, {1}), 2, DType::Int64);
  EXPECT_EQ(h64.value().to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, 1}));
}

TEST_P(OpsIndexTest, GradientsMatchFiniteDifferences) {
  const Device dev = GetParam();
  const NDArray a = random_array({3, 4}, dev, 42);
  const Tensor repeats = ints(std::vector<std::int64_t>{0, 0, 2, 2, 1, 3}, {3, 2});
  const Tensor down = ints(std::vector<std::int64_t>{2, 2, 2, 0, 1, 1, 1, 1}, {2, 4});
  expect_gradients_match([&](const V& t) { return ops::gather(t[0], 1, repeats); }, {a});
  expect_gradients_match([&](const V& t) { return ops::gather(t[0], -2, down); }, {a});
  // Non-contiguous input: a transposed view.
  expect_gradients_match([&](const V& t) { return ops::gather(ops::transpose(t[0]), 0, repeats); }, {a});
  // embedding: repeated rows, a strided weight view, indices of rank 0 to 2.
  const Tensor rows = ints(std::vector<std::int64_t>{1, 3, 1, 0, 1, 3}, {2, 3});
  expect_gradients_match([&](const V& t) { return ops::embedding(rows, t[0]); }, {random_array({4, 2}, dev, 43)});
  expect_gradients_match([&](const V& t) { return ops::embedding(rows, ops::transpose(t[0])); },
                         {random_array({3, 4}, dev, 44)});
  const Tensor scalar_row = ints(std::vector<std::int32_t>{2}, {});
  expect_gradients_match([&](const V& t) { return ops::embedding(scalar_row, t[0]); }, {random_array({3, 1}, dev, 45)});
}

TEST_P(OpsIndexTest, SecondDerivativesFlowThroughScatterAdd) {
  const Device dev = GetParam();
  const Tensor repeats = ints(std::vector<std::int64_t>{0, 0, 2, 3, 1, 3}, {3, 2});
  expect_second_gradients_match(
      [&](const V& t) {
        const Tensor picked = ops::gather(t[0], 1, repeats);
        return picked * picked * picked;
      },
      {random_array({3, 4}, dev, 46)});
  const Tensor rows = ints(std::vector<std::int64_t>{1, 1, 0}, {3});
  expect_second_gradients_match([&](const V& t) { return ops::tanh(ops::embedding(rows, t[0])); },
                                {random_array({2, 3}, dev, 47)});
}

TEST_P(OpsIndexTest, BadArgumentsRaiseNamedErrors) {
  const Tensor a(iota({2, 3}, GetParam()));
  const Tensor fidx(iota({2, 3}, GetParam()));
  const Tensor idx = ints(std::vector<std::int64_t>{0, 1, 2, 0, 1, 2}, {2, 3});
  expect_error<TypeError>([&] { (void)ops::gather(a, 1, fidx); }, "gather: index must be an integer tensor");
  expect_error<IndexError>([&] { (void)ops::gather(a, 2, idx); }, "gather: axis 2 is out of range");
  expect_error<IndexError>([&] { (void)ops::gather(a, 0, idx); }, "gather: index 2 is out of bounds for axis 0");
  expect_error<ValueError>([&] { (void)ops::gather(a, 0, ints(std::vector<std::int64_t>{0}, {1})); },
                           "gather: index of shape (1,) must have the same number of dimensions");
  const Tensor weight(iota({5, 2}, GetParam()));
  expect_error<TypeError>([&] { (void)ops::embedding(fidx, weight); }, "embedding: indices must be an integer tensor");
  expect_error<IndexError>(
      [&] {
        (void)ops::embedding(ints(std::vector<std::int64_t>{0, 5}, {2}), weight);
      },
      "embedding: index 5 is out of range for num_embeddings 5");
  expect_error<IndexError>([&] { (void)ops::embedding(ints(std::vector<std::int32_t>{-1}, {1}), weight); },
                           "embedding: index -1 is out of range for num_embeddings 5");
  expect_error<ValueError>([&] { (void)ops::embedding(idx, Tensor(iota({5}, GetParam()))); },
                           "embedding: weight must have shape (num_embeddings, dim), got shape (5,)");
  expect_error<TypeError>([&] { (void)ops::one_hot(fidx, 3); }, "one_hot: indices must be an integer tensor");
  expect_error<IndexError>([&] { (void)ops::one_hot(idx, 2); }, "one_hot: index 2 is out of range for num_classes 2");
  expect_error<ValueError>([&] { (void)ops::one_hot(idx, -1); }, "one_hot: num_classes must be non-negative");
}

INSTANTIATE_TEST_SUITE_P(Devices, OpsIndexTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
