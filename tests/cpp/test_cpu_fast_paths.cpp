// The cpu backend's row-wise paths against ref on shapes big enough to be split over threads: binary
// kernels whose operands broadcast along rows or columns (a bias add, a per-row scale) or are strided
// views with a contiguous last axis, and reductions over a block of axes followed by kept axes (a sum
// over the batch axis), at 1 and 2 threads. The result must not depend on the thread count.
#include <gtest/gtest.h>

#include <vector>

#include "needle/core/array_ops.h"
#include "needle/core/threads.h"

namespace needle {
namespace {

class ThreadCountTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    saved_ = get_num_threads();
    set_num_threads(GetParam());
  }
  void TearDown() override { set_num_threads(saved_); }

 private:
  int saved_ = 1;
};

NDArray random(const Shape& shape, std::uint64_t seed, DType dtype = DType::Float32) {
  manual_seed(seed);
  return randn(shape, 0.0, 1.0, dtype, cpu_device());
}

// cpu's values, and the same computation on ref's copies of the inputs.
void expect_matches_ref(const NDArray& got, const NDArray& want, double rtol = 0.0) {
  ASSERT_EQ(got.shape(), want.shape());
  const std::vector<double> g = got.astype(DType::Float64).to_vector<double>();
  const std::vector<double> w = want.astype(DType::Float64).to_vector<double>();
  for (std::size_t i = 0; i < g.size(); ++i) {
    ASSERT_NEAR(g[i], w[i], rtol * (1.0 + std::abs(w[i]))) << "element " << i;
  }
}

TEST_P(ThreadCountTest, BinaryBroadcastRowsMatchRef) {
  const NDArray matrix = random({301, 700}, 1);
  const NDArray row = random({700}, 2);
  const NDArray column = random({301, 1}, 3);
  const NDArray ref_matrix = matrix.to(ref_device());
  // Row broadcast on either side, column broadcast, both at once, and a strided (every other row) view.
  expect_matches_ref(add(matrix, row), add(ref_matrix, row.to(ref_device())));
  expect_matches_ref(sub(row, matrix), sub(row.to(ref_device()), ref_matrix));
  expect_matches_ref(mul(matrix, column), mul(ref_matrix, column.to(ref_device())));
  expect_matches_ref(div(column, row), div(column.to(ref_device()), row.to(ref_device())));
  const Index every_other = {IndexItem::range(0, std::nullopt, 2), IndexItem::range()};
  expect_matches_ref(maximum(matrix.index(every_other), row),
                     maximum(ref_matrix.index(every_other), row.to(ref_device())));
  // Comparisons produce bool; float64 and a 3-d broadcast over the middle axis.
  expect_matches_ref(gt(matrix, row), gt(ref_matrix, row.to(ref_device())));
  const NDArray cube = random({5, 40, 33}, 4, DType::Float64);
  const NDArray plane = random({5, 1, 33}, 5, DType::Float64);
  expect_matches_ref(mul(cube, plane), mul(cube.to(ref_device()), plane.to(ref_device())));
}

TEST_P(ThreadCountTest, MiddleAxisReductionsMatchRef) {
  const NDArray batch = random({2000, 77}, 6);
  const NDArray ref_batch = batch.to(ref_device());
  expect_matches_ref(sum(batch, {0}), sum(ref_batch, {0}), 1e-5);
  expect_matches_ref(max(batch, {0}, true), max(ref_batch, {0}, true));
  expect_matches_ref(min(batch, {0}), min(ref_batch, {0}));
  // NHWC-like: reduce H and W, keep C (more than one 512-column chunk), and reduce the middle of three.
  const NDArray image = random({3, 9, 11, 1100}, 7);
  expect_matches_ref(sum(image, {1, 2}), sum(image.to(ref_device()), {1, 2}), 1e-5);
  const NDArray ints = random({4, 300, 50}, 8).astype(DType::Int64);
  expect_matches_ref(sum(ints, {1}), sum(ints.to(ref_device()), {1}));
}

TEST(CpuFastPaths, ResultsDoNotDependOnTheThreadCount) {
  const int saved = get_num_threads();
  const NDArray batch = random({4000, 600}, 9);
  const NDArray row = random({600}, 10);
  std::vector<std::vector<float>> sums;
  std::vector<std::vector<float>> products;
  std::vector<std::vector<float>> gelus;  // the vectorised float32 kernels, split over threads
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    sums.push_back(sum(batch, {0}).to_vector<float>());
    products.push_back(mul(batch, row).to_vector<float>());
    gelus.push_back(gelu(batch).to_vector<float>());
  }
  set_num_threads(saved);
  EXPECT_EQ(sums[0], sums[1]);
  EXPECT_EQ(products[0], products[1]);
  EXPECT_EQ(gelus[0], gelus[1]);
}

INSTANTIATE_TEST_SUITE_P(Threads, ThreadCountTest, ::testing::Values(1, 2));

}  // namespace
}  // namespace needle
