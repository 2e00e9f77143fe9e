// Reductions on tensors (mean, max, min, logsumexp, argmax): values against hand-computed loops,
// gradients against finite differences, second derivatives (logsumexp, matmul), errors; on both devices.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "gradcheck.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_error;
using testing::expect_gradients_match;
using testing::expect_second_gradients_match;
using testing::host_strides;
using testing::iota;
using testing::random_array;
using testing::values_of;
using V = std::vector<Tensor>;
using Group = std::vector<double>;

// Reference reduction on the host: groups the elements of `values` (row-major, `shape`) by their
// position outside `axes` (non-negative), then folds each group with `fold`, in output order.
std::vector<double> reduce_host(const std::vector<double>& values, const Shape& shape, const std::vector<int>& axes,
                                const std::function<double(const Group&)>& fold) {
  Shape kept = shape;
  for (int axis : axes) kept[static_cast<std::size_t>(axis)] = 1;
  const std::vector<std::size_t> in_strides = host_strides(shape);
  const std::vector<std::size_t> out_strides = host_strides(kept);
  std::vector<Group> groups(static_cast<std::size_t>(numel(kept)));
  for (std::size_t flat = 0; flat < values.size(); ++flat) {
    std::size_t out = 0;
    for (std::size_t d = 0; d < shape.size(); ++d) {
      const std::size_t coord = flat / in_strides[d] % static_cast<std::size_t>(shape[d]);
      if (kept[d] != 1) out += coord * out_strides[d];
    }
    groups[out].push_back(values[flat]);
  }
  std::vector<double> result;
  result.reserve(groups.size());
  for (const Group& g : groups) result.push_back(fold(g));
  return result;
}

double host_mean(const Group& g) {
  double total = 0;
  for (double x : g) total += x;
  return total / static_cast<double>(g.size());
}
double host_max(const Group& g) { return *std::max_element(g.begin(), g.end()); }
double host_min(const Group& g) { return *std::min_element(g.begin(), g.end()); }
double host_logsumexp(const Group& g) {
  double total = 0;
  for (double x : g) total += std::exp(x);
  return std::log(total);
}

class OpsReduceTest : public ::testing::TestWithParam<Device> {
 protected:
  [[nodiscard]] Tensor tensor(const std::vector<double>& values, const Shape& shape, bool requires_grad = false) const {
    return Tensor(NDArray::from_vector(values, shape, GetParam()), requires_grad);
  }
};

TEST_P(OpsReduceTest, MeanMaxMinLogsumexpMatchLoops) {
  const NDArray values = random_array({2, 3, 4}, GetParam(), 21, -2.0, 2.0);
  const Tensor a(values);
  const std::vector<double> host = values.to_vector<double>();
  const Shape shape{2, 3, 4};
  struct Case {
    std::vector<std::int64_t> axes;  // as passed (may be negative or empty)
    std::vector<int> host_axes;      // normalized
    Shape out_shape;                 // without keepdims
    Shape kept_shape;                // with keepdims
  };
  const std::vector<Case> cases = {
      {{0, -1}, {0, 2}, {3}, {1, 3, 1}},
      {{1}, {1}, {2, 4}, {2, 1, 4}},
      {{}, {0, 1, 2}, {}, {1, 1, 1}},
      {{-3, 1, 2}, {0, 1, 2}, {}, {1, 1, 1}},
  };
  using Reduce = Tensor (*)(const Tensor&, const Axes&, bool);
  const std::vector<std::pair<Reduce, double (*)(const Group&)>> ops = {
      {ops::mean, host_mean}, {ops::max, host_max}, {ops::min, host_min}, {ops::logsumexp, host_logsumexp}};
  for (const Case& c : cases) {
    for (const auto& [op, fold] : ops) {
      SCOPED_TRACE(str("axes ", shape_str(c.axes)));
      const std::vector<double> expected = reduce_host(host, shape, c.host_axes, fold);
      const Tensor out = op(a, c.axes, false);
      EXPECT_EQ(out.shape(), c.out_shape);
      const Tensor kept = op(a, c.axes, true);
      EXPECT_EQ(kept.shape(), c.kept_shape);
      const std::vector<double> got = values_of(out);
      const std::vector<double> got_kept = values_of(kept);
      ASSERT_EQ(got.size(), expected.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        EXPECT_NEAR(got[i], expected[i], 1e-12);
        EXPECT_EQ(got_kept[i], got[i]);
      }
    }
  }
}

TEST_P(OpsReduceTest, MaxAndMinShareTheGradientAmongTies) {
  const Tensor a = tensor({1, 3, 3, 2, 0, -1}, {2, 3}, true);
  ops::max(a, {1}).backward();
  EXPECT_EQ(values_of(a.grad()), (std::vector<double>{0, 0.5, 0.5, 1, 0, 0}));
  const Tensor b = tensor({2, 2, 2, 5}, {4}, true);
  ops::min(b).backward(Tensor(NDArray::full({}, Scalar(3.0), DType::Float64, GetParam())));
  EXPECT_EQ(values_of(b.grad()), (std::vector<double>{1, 1, 1, 0}));
  const Tensor c = tensor({4, 4, 1, 4}, {2, 2}, true);
  ops::max(c, {}, true).backward();  // three tied maxima of four elements
  const double third = 1.0 / 3.0;
  EXPECT_EQ(values_of(c.grad()), (std::vector<double>{third, third, 0, third}));
}

TEST_P(OpsReduceTest, LogsumexpIsStableForLargeAndInfiniteInputs) {
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor big = tensor({1e4, 1e4, 1e4 - 1, -1e4}, {2, 2}, true);
  const Tensor lse = ops::logsumexp(big, {1});
  const std::vector<double> got = values_of(lse);
  EXPECT_NEAR(got[0], 1e4 + std::log(2.0), 1e-9);
  EXPECT_NEAR(got[1], 1e4 - 1, 1e-9);  // exp(-2e4 + 1) vanishes next to 1
  lse.backward();
  const std::vector<double> grad = values_of(big.grad());
  EXPECT_NEAR(grad[0], 0.5, 1e-12);
  EXPECT_NEAR(grad[1], 0.5, 1e-12);
  EXPECT_NEAR(grad[2], 1.0, 1e-12);
  EXPECT_NEAR(grad[3], 0.0, 1e-12);
  // float32 too, where exp overflows already past 88.
  const Tensor big32(NDArray::from_vector(std::vector<float>{1e4F, 1e4F, 100.0F}, {3}, GetParam()), true);
  const Tensor lse32 = ops::logsumexp(big32);
  EXPECT_NEAR(lse32.value().item().to<double>(), 1e4 + std::log(2.0), 1e-2);
  lse32.backward();
  for (double g : values_of(big32.grad())) EXPECT_TRUE(std::isfinite(g));
  // Infinite maxima: every element -inf gives -inf, a +inf gives +inf (no nan from inf - inf).
  const Tensor infinite = tensor({-inf, -inf, inf, 1.0}, {2, 2});
  const std::vector<double> edge = values_of(ops::logsumexp(infinite, {-1}, true));
  EXPECT_EQ(edge[0], -inf);
  EXPECT_EQ(edge[1], inf);
  // An empty reduction: log(0).
  const Tensor empty(NDArray::zeros({2, 0}, DType::Float64, GetParam()));
  EXPECT_EQ(values_of(ops::logsumexp(empty, {1})), (std::vector<double>{-inf, -inf}));
}

TEST_P(OpsReduceTest, ArgmaxGivesInt64IndicesWithoutGradient) {
  const Tensor a = tensor({1, 7, 7, 2, 9, 0}, {2, 3}, true);
  const Tensor rows = ops::argmax(a, -1);
  EXPECT_EQ(rows.dtype(), DType::Int64);
  EXPECT_FALSE(rows.requires_grad());
  EXPECT_EQ(rows.value().to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 1}));  // first of tied maxima
  const Tensor cols = ops::argmax(a, 0, true);
  EXPECT_EQ(cols.shape(), (Shape{1, 3}));
  EXPECT_EQ(cols.value().to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 1, 0}));
  const Tensor flat = ops::argmax(a);
  EXPECT_EQ(flat.shape(), (Shape{}));
  EXPECT_EQ(flat.value().item().to<std::int64_t>(), 4);
  EXPECT_EQ(ops::argmax(a, std::nullopt, true).shape(), (Shape{1, 1}));
}

TEST_P(OpsReduceTest, GradientsMatchFiniteDifferences) {
  const Device dev = GetParam();
  const NDArray a = random_array({2, 3, 4}, dev, 22);
  const NDArray b = random_array({3, 1}, dev, 23);
  using Reduce = Tensor (*)(const Tensor&, const Axes&, bool);
  for (Reduce op : {Reduce{ops::mean}, Reduce{ops::max}, Reduce{ops::min}, Reduce{ops::logsumexp}}) {
    expect_gradients_match([op](const V& t) { return op(t[0], {}, false); }, {a});
    expect_gradients_match([op](const V& t) { return op(t[0], {0, -1}, false); }, {a});
    expect_gradients_match([op](const V& t) { return op(t[0], {1}, true); }, {a});
    // Non-contiguous input (a permuted, strided view), and a size-1 reduced axis.
    expect_gradients_match(
        [op](const V& t) {
          return op(ops::getitem(ops::permute(t[0], {2, 0, 1}), {IndexItem::range(0, std::nullopt, 2)}), {-1}, false);
        },
        {a});
    expect_gradients_match([op](const V& t) { return op(t[0], {1}, false); }, {b});
    // Broadcast input: the gradient sums back over the broadcast axis.
    expect_gradients_match([op](const V& t) { return op(ops::broadcast_to(t[0], {2, 3, 4}), {0, 1}, true); }, {b});
  }
}

TEST_P(OpsReduceTest, SecondDerivativesOfLogsumexp) {
  const Device dev = GetParam();
  expect_second_gradients_match([](const V& t) { return ops::logsumexp(t[0], {1}); }, {random_array({3, 4}, dev, 24)},
                                1e-5);
  expect_second_gradients_match([](const V& t) { return ops::logsumexp(t[0], {}, true); },
                                {random_array({2, 3}, dev, 25)}, 1e-5);
  // Analytically, for a single reduction with p = softmax(x): d/dx_j sum_i v_i p_i = p_j (v_j - p.v).
  const std::vector<double> x{0.3, -1.2, 2.0};
  const Tensor t(NDArray::from_vector(x, {3}, dev), true);
  ops::logsumexp(t).backward(Tensor(), false, /*create_graph=*/true);
  const Tensor first = t.grad();
  Tensor(t).reset_grad();
  const std::vector<double> v{1.0, -2.0, 0.5};
  ops::summation(first * Tensor(NDArray::from_vector(v, {3}, dev))).backward();
  double total = 0;
  for (double xi : x) total += std::exp(xi);
  double pv = 0;
  for (std::size_t i = 0; i < 3; ++i) pv += std::exp(x[i]) / total * v[i];
  const std::vector<double> second = values_of(t.grad());
  for (std::size_t j = 0; j < 3; ++j) EXPECT_NEAR(second[j], std::exp(x[j]) / total * (v[j] - pv), 1e-12);
}

TEST_P(OpsReduceTest, SecondDerivativesOfMatmul) {
  const Device dev = GetParam();
  const NDArray a = random_array({2, 3}, dev, 26);
  const NDArray b = random_array({3, 4}, dev, 27);
  // The product is bilinear: with a nonlinearity after it, both inputs reach the second derivative.
  expect_second_gradients_match([](const V& t) { return ops::tanh(ops::matmul(t[0], t[1])); }, {a, b}, 1e-5);
  expect_second_gradients_match([](const V& t) { return ops::exp(ops::matmul(t[0], t[1])); },
                                {random_array({2, 1, 3}, dev, 28), random_array({2, 3, 2}, dev, 29)}, 1e-5);
  // Analytically: with L = sum(W * (A B)), dL/dA = W B^T, and d/dB sum(U * dL/dA) = U^T W.
  const Tensor ta(a, true);
  const Tensor tb(b, true);
  const NDArray w = random_array({2, 4}, dev, 30);
  const NDArray u = random_array({2, 3}, dev, 31);
  ops::matmul(ta, tb).backward(Tensor(w), false, /*create_graph=*/true);
  const Tensor first = ta.grad();
  Tensor(ta).reset_grad();
  Tensor(tb).reset_grad();
  ops::summation(first * Tensor(u)).backward();
  const std::vector<double> uh = u.to_vector<double>();
  const std::vector<double> wh = w.to_vector<double>();
  const std::vector<double> got = values_of(tb.grad());
  for (std::size_t k = 0; k < 3; ++k) {
    for (std::size_t j = 0; j < 4; ++j) {
      double expected = 0;
      for (std::size_t i = 0; i < 2; ++i) expected += uh[i * 3 + k] * wh[i * 4 + j];
      EXPECT_NEAR(got[k * 4 + j], expected, 1e-12);
    }
  }
}

TEST_P(OpsReduceTest, BadArgumentsRaiseNamedErrors) {
  const Tensor a(iota({2, 3}, GetParam()));
  expect_error<IndexError>([&] { (void)ops::mean(a, {2}); }, "mean: axis 2 is out of range");
  expect_error<ValueError>([&] { (void)ops::max(a, {1, -1}); }, "max: axis -1 is repeated");
  expect_error<IndexError>([&] { (void)ops::min(a, {-3}); }, "min: axis -3 is out of range");
  expect_error<IndexError>([&] { (void)ops::logsumexp(a, {5}, true); }, "logsumexp: axis 5 is out of range");
  expect_error<IndexError>([&] { (void)ops::argmax(a, 2); }, "argmax: axis 2 is out of range");
  const Tensor empty(NDArray::zeros({0, 3}, DType::Float64, GetParam()));
  expect_error<ValueError>([&] { (void)ops::max(empty, {0}); }, "cannot reduce over an empty axis");
  const Tensor flags(NDArray::from_vector(std::vector<bool>{true, false}, {2}, GetParam()));
  expect_error<TypeError>([&] { (void)ops::logsumexp(flags); }, "logsumexp: not supported for bool");
}

INSTANTIATE_TEST_SUITE_P(Devices, OpsReduceTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
