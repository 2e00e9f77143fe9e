// GELU's gradient: the optional gelu_backward kernel of the cpu backend (1 and 2 threads, its AVX-512 and AVX2
// builds) against its composition g * gelu_grad(x), bit for bit on the same device, and against the ref
// device's composition; zeros, negative zeros, NaN and infinities in g and x; contiguous, channels-last,
// transposed and strided operands, odd and empty shapes; the layout of the result; the checks; and
// ops::gelu's gradient, plain and while a graph of the gradient is recorded, against finite differences and
// the second derivative.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

#include "backend/cpu/vector_math.h"
#include "fused_test_util.h"
#include "gradcheck.h"
#include "needle/backend/backend.h"
#include "needle/core/fused_ops.h"
#include "needle/core/threads.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_same_values;
using testing::host;
using testing::random_array;

// x with some cells set to the values the kernel must get right: 0, -0, NaN, +-inf, and large magnitudes
// where gelu_grad saturates to 0 or 1.
NDArray with_edge_values(const NDArray& x) {
  std::vector<double> values = x.astype(DType::Float64).compact().to_vector<double>();
  const double edges[] = {
      0.0,  -0.0, std::nan(""), std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
      12.0, -12.0};
  for (std::size_t i = 0; i < values.size(); i += 5) values[i] = edges[(i / 5) % 7];
  return NDArray::from_vector(values, x.shape(), x.device()).astype(x.dtype());
}

NDArray channels_last(const NDArray& a) { return a.permute({0, 2, 3, 1}).compact().permute({0, 3, 1, 2}); }

TEST(FusedGeluBackward, OnlyTheCpuBackendImplementsTheKernel) {
  EXPECT_TRUE(backend_for(cpu_device()).implements(OptionalKernel::gelu_backward));
  EXPECT_FALSE(backend_for(ref_device()).implements(OptionalKernel::gelu_backward));
}

TEST(FusedGeluBackward, CpuKernelGivesTheCompositionsBitsOnEveryLayout) {
  const int saved_threads = get_num_threads();
  std::uint64_t seed = 5;
  for (const bool avx2_only : {false, true}) {
    cpu::set_vector_math_avx2_only(avx2_only);
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      // 70000 elements split over two threads; the rest odd, size-1 or empty.
      for (const Shape& shape : {Shape{2, 3, 5, 7}, Shape{1, 1, 1, 1}, Shape{4, 35, 25, 20}, Shape{3, 0, 2, 2}}) {
        for (const DType dtype : {DType::Float32, DType::Float64}) {
          const NDArray x = with_edge_values(random_array(shape, cpu_device(), ++seed).astype(dtype) * Scalar(3.0));
          const NDArray g = with_edge_values(random_array(shape, cpu_device(), ++seed).astype(dtype));
          // The ref device's composition, with the scalar formula: within a few units in the last place.
          const std::vector<double> reference = host(gelu_backward(g.to(ref_device()), x.to(ref_device())));
          // Both contiguous; both channels-last (the result channels-last too); x channels-last and g
          // contiguous; a transposed plane; the first half of each image's channels (neither contiguous nor
          // dense).
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
            SCOPED_TRACE(str(shape_str(shape), " ", dtype_name(dtype), " case ", c, " threads ", threads,
                             avx2_only ? " AVX2" : ""));
            const auto& [grad, input] = cases[c];
            const NDArray fused = gelu_backward(grad, input);
            EXPECT_EQ(fused.dtype(), dtype);
            EXPECT_EQ(fused.shape(), shape);
            // The composition of the same operands on this device: gelu_grad's kernel, then the product.
            expect_same_values(fused, host(mul(grad, gelu_grad(input))));
            std::vector<double> finite_want;
            std::vector<double> finite_got;
            const std::vector<double> got = host(fused);
            for (std::size_t i = 0; i < got.size(); ++i) {
              if (std::isnan(reference[i])) {
                EXPECT_TRUE(std::isnan(got[i])) << "element " << i;
              } else {
                finite_want.push_back(reference[i]);
                finite_got.push_back(got[i]);
              }
            }
            expect_close(finite_got, finite_want, dtype == DType::Float32 ? 2e-6 : 1e-15, "against ref");
            if (c == 1 && numel(shape) > 1 && shape[1] > 1) {
              // The shared channels-last order is kept.
              EXPECT_FALSE(fused.is_compact());
              EXPECT_TRUE(fused.permute({0, 2, 3, 1}).is_compact());
            }
          }
        }
      }
    }
  }
  cpu::set_vector_math_avx2_only(false);
  set_num_threads(saved_threads);
}

TEST(FusedGeluBackward, MixedDtypesPromoteLikeTheComposition) {
  for (const Device d : {cpu_device(), ref_device()}) {
    const NDArray x = NDArray::from_vector(std::vector<double>{-1.0, 2.0, 0.0}, {3}, d);
    const NDArray g = NDArray::from_vector(std::vector<float>{5.0F, 6.0F, 7.0F}, {3}, d);
    const NDArray r = gelu_backward(g, x);
    EXPECT_EQ(r.dtype(), DType::Float64);
    expect_same_values(r, host(mul(g, gelu_grad(x))));
  }
}

TEST(FusedGeluBackward, ChecksItsOperands) {
  for (const Device d : {cpu_device(), ref_device()}) {
    expect_error<ValueError>(
        [&] {
          (void)gelu_backward(NDArray::ones({2, 3}, DType::Float32, d), NDArray::ones({3, 2}, DType::Float32, d));
        },
        "gelu_backward: expected a gradient of the input's shape (3, 2), got (2, 3)");
  }
  expect_error<RuntimeError>(
      [&] {
        (void)gelu_backward(NDArray::ones({2}, DType::Float32, cpu_device()),
                            NDArray::ones({2}, DType::Float32, ref_device()));
      },
      "gelu_backward: expected all arrays on the same device");
}

TEST(FusedGeluBackward, TheOpsGradientMatchesFiniteDifferencesPlainAndRecorded) {
  for (const Device d : {cpu_device(), ref_device()}) {
    const NDArray x = channels_last(random_array({2, 3, 4, 5}, d, 19).astype(DType::Float64) * Scalar(2.0));
    testing::expect_gradients_match([](const std::vector<Tensor>& in) { return ops::gelu(in[0]) * in[0]; }, {x});
    // A gradient of the gradient goes through the recorded product.
    const Tensor input(x, /*requires_grad=*/true);
    ops::summation(ops::gelu(input)).backward(Tensor(), false, /*create_graph=*/true);
    const Tensor first = input.grad();
    ASSERT_TRUE(first.requires_grad());
    Tensor(input).reset_grad();
    ops::summation(first).backward();
    // d^2 gelu / dx^2 = phi(x) (2 - x^2), phi the standard normal density.
    const std::vector<double> xv = x.compact().to_vector<double>();
    const std::vector<double> got = input.grad().value().compact().to_vector<double>();
    std::vector<double> want(xv.size());
    for (std::size_t i = 0; i < xv.size(); ++i) {
      want[i] = std::exp(-xv[i] * xv[i] / 2) / std::sqrt(2 * std::numbers::pi) * (2 - xv[i] * xv[i]);
    }
    expect_close(got, want, 1e-12, "second derivative");
  }
}

}  // namespace
}  // namespace needle
