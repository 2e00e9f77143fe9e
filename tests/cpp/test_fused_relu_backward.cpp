// ReLU's gradient: the optional relu_backward kernel of the cpu backend (1 and 2 threads) against its
// reference, the comparison and select that the ref device runs, and both against the rule element by
// element (g where x > 0, else 0: zeros, negative zeros, NaN and infinities included), on contiguous,
// channels-last, transposed and strided operands, odd and empty shapes; the layout of the result; the
// checks; and ops::relu's gradient, plain and while a graph of the gradient is recorded, against finite
// differences.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "fused_test_util.h"
#include "gradcheck.h"
#include "needle/backend/backend.h"
#include "needle/core/fused_ops.h"
#include "needle/core/threads.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_error;
using testing::expect_same_values;
using testing::random_array;

// x with some cells set to the values the rule must get right: 0, -0, NaN, +-inf.
NDArray with_edge_values(const NDArray& x) {
  std::vector<double> values = x.astype(DType::Float64).compact().to_vector<double>();
  const double edges[] = {0.0, -0.0, std::nan(""), std::numeric_limits<double>::infinity(),
                          -std::numeric_limits<double>::infinity()};
  for (std::size_t i = 0; i < values.size(); i += 7) values[i] = edges[(i / 7) % 5];
  return NDArray::from_vector(values, x.shape(), x.device()).astype(x.dtype());
}

std::vector<double> rule(const NDArray& g, const NDArray& x) {
  const std::vector<double> gv = g.astype(DType::Float64).compact().to_vector<double>();
  const std::vector<double> xv = x.astype(DType::Float64).compact().to_vector<double>();
  std::vector<double> out(gv.size());
  for (std::size_t i = 0; i < gv.size(); ++i) out[i] = xv[i] > 0.0 ? gv[i] : 0.0;
  return out;
}

NDArray channels_last(const NDArray& a) { return a.permute({0, 2, 3, 1}).compact().permute({0, 3, 1, 2}); }

TEST(FusedReluBackward, OnlyTheCpuBackendImplementsTheKernel) {
  EXPECT_TRUE(backend_for(cpu_device()).implements(OptionalKernel::relu_backward));
  EXPECT_FALSE(backend_for(ref_device()).implements(OptionalKernel::relu_backward));
}

TEST(FusedReluBackward, CpuKernelMatchesTheReferenceAndTheRuleOnEveryLayout) {
  const int saved_threads = get_num_threads();
  std::uint64_t seed = 3;
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    // 70000 elements split over two threads; the rest odd, size-1 or empty.
    for (const Shape& shape : {Shape{2, 3, 5, 7}, Shape{1, 1, 1, 1}, Shape{4, 35, 25, 20}, Shape{3, 0, 2, 2}}) {
      for (const DType dtype : {DType::Float32, DType::Float64}) {
        const NDArray x = with_edge_values(random_array(shape, cpu_device(), ++seed).astype(dtype));
        const NDArray g = with_edge_values(random_array(shape, cpu_device(), ++seed).astype(dtype) * Scalar(3.0));
        const std::vector<double> want = rule(g, x);
        // Both contiguous; both channels-last (the result channels-last too); x channels-last and g contiguous;
        // a transposed plane; the first half of each image's channels (neither contiguous nor dense).
        const NDArray x_last = channels_last(x);
        const NDArray g_last = channels_last(g);
        const NDArray x_t = x.swapaxes(2, 3).compact().swapaxes(2, 3);
        const NDArray g_t = g.swapaxes(2, 3).compact().swapaxes(2, 3);
        const Index first_half = {IndexItem::range(), IndexItem::range(0, shape[1])};
        const NDArray x_gaps = concat({x, x}, 1).index(first_half);
        const NDArray g_gaps = concat({g, g}, 1).index(first_half);
        const std::vector<std::pair<NDArray, NDArray>> cases = {
            {g, x}, {g_last, x_last}, {g, x_last}, {g_t, x_t}, {g_gaps, x_gaps}};
        for (std::size_t c = 0; c < cases.size(); ++c) {
          SCOPED_TRACE(str(shape_str(shape), " ", dtype_name(dtype), " case ", c, " threads ", threads));
          const auto& [grad, input] = cases[c];
          const NDArray fused = relu_backward(grad, input);
          const NDArray reference = relu_backward(grad.to(ref_device()), input.to(ref_device())).to(cpu_device());
          EXPECT_EQ(fused.dtype(), dtype);
          EXPECT_EQ(fused.shape(), shape);
          expect_same_values(fused, want);
          expect_same_values(reference, want);
          if (c == 1 && numel(shape) > 1 && shape[1] > 1) {
            // The shared channels-last order is kept.
            EXPECT_FALSE(fused.is_compact());
            EXPECT_TRUE(fused.permute({0, 2, 3, 1}).is_compact());
          }
        }
      }
    }
  }
  set_num_threads(saved_threads);
}

TEST(FusedReluBackward, MixedDtypesPromoteLikeTheComposition) {
  for (const Device d : {cpu_device(), ref_device()}) {
    const NDArray x = NDArray::from_vector(std::vector<double>{-1.0, 2.0, 0.0}, {3}, d);
    const NDArray g = NDArray::from_vector(std::vector<float>{5.0F, 6.0F, 7.0F}, {3}, d);
    const NDArray r = relu_backward(g, x);
    EXPECT_EQ(r.dtype(), DType::Float32);
    EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{0.0F, 6.0F, 0.0F}));
  }
}

TEST(FusedReluBackward, ChecksItsOperands) {
  for (const Device d : {cpu_device(), ref_device()}) {
    expect_error<ValueError>(
        [&] {
          (void)relu_backward(NDArray::ones({2, 3}, DType::Float32, d), NDArray::ones({3, 2}, DType::Float32, d));
        },
        "relu_backward: expected a gradient of the input's shape (3, 2), got (2, 3)");
  }
  expect_error<RuntimeError>(
      [&] {
        (void)relu_backward(NDArray::ones({2}, DType::Float32, cpu_device()),
                            NDArray::ones({2}, DType::Float32, ref_device()));
      },
      "relu_backward: expected all arrays on the same device");
}

TEST(FusedReluBackward, TheOpsGradientMatchesFiniteDifferencesPlainAndRecorded) {
  for (const Device d : {cpu_device(), ref_device()}) {
    // Values away from 0, where ReLU has no derivative; channels-last, as a batch norm hands it on.
    NDArray x = channels_last(random_array({2, 3, 4, 5}, d, 17).astype(DType::Float64));
    x = where(lt(abs(x), NDArray::full({}, Scalar(0.1), DType::Float64, d)), x + Scalar(0.5), x);
    testing::expect_gradients_match([](const std::vector<Tensor>& in) { return ops::relu(in[0]) * in[0]; }, {x});
    // A gradient of the gradient goes through the recorded comparison and select.
    const Tensor input(x, /*requires_grad=*/true);
    ops::summation(ops::relu(input) * input).backward(Tensor(), false, /*create_graph=*/true);
    const Tensor first = input.grad();
    ASSERT_TRUE(first.requires_grad());
    Tensor(input).reset_grad();
    ops::summation(first).backward();
    // d/dx sum(relu(x) * x) = 2x where x > 0, and its derivative is 2 there, 0 elsewhere.
    const std::vector<double> xv = x.compact().to_vector<double>();
    const std::vector<double> got = input.grad().value().compact().to_vector<double>();
    for (std::size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(got[i], xv[i] > 0.0 ? 2.0 : 0.0) << "element " << i;
  }
}

}  // namespace
}  // namespace needle
