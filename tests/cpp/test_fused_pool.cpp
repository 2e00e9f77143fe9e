// Max pooling's fused kernels: the cpu backend's max_pool2d and max_pool2d_backward (1 and 2 threads)
// against their reference, the composition of array functions the ref device runs, and both against a
// direct loop over the contract in kernels.def (first maximum, NaN first, positions in the image plane),
// on random shapes: odd sizes, size-1 and empty dimensions, every kernel/stride/padding combination up to
// 4, strided, transposed, channels-last and flipped inputs (channels-last ones pooled into channels-last
// results, and their gradients laid out alike), ties, -inf and NaN. Also which devices implement
// the kernels and the checks of both array functions.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "fused_test_util.h"
#include "needle/backend/backend.h"
#include "needle/core/fused_ops.h"
#include "needle/core/threads.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_error;
using testing::expect_same_values;

struct PoolGeometry {
  std::int64_t kernel, stride, padding;
};

// The contract of kernels.def, one window at a time, over a float64 copy of the image.
struct DirectPool {
  std::vector<double> values;
  std::vector<std::int64_t> indices;
};
DirectPool direct_max_pool(const NDArray& image, const PoolGeometry& g) {
  const Shape& s = image.shape();
  const std::vector<double> x = image.astype(DType::Float64).compact().to_vector<double>();
  const std::int64_t h_out = (s[2] + 2 * g.padding - g.kernel) / g.stride + 1;
  const std::int64_t w_out = (s[3] + 2 * g.padding - g.kernel) / g.stride + 1;
  DirectPool out;
  for (std::int64_t plane = 0; plane < s[0] * s[1]; ++plane) {
    for (std::int64_t y = 0; y < h_out; ++y) {
      for (std::int64_t xo = 0; xo < w_out; ++xo) {
        bool found = false;
        double best = 0.0;
        std::int64_t at = -1;
        for (std::int64_t i = 0; i < g.kernel; ++i) {
          for (std::int64_t j = 0; j < g.kernel; ++j) {
            const std::int64_t row = y * g.stride - g.padding + i;
            const std::int64_t col = xo * g.stride - g.padding + j;
            if (row < 0 || row >= s[2] || col < 0 || col >= s[3]) continue;
            const double v = x[static_cast<std::size_t>((plane * s[2] + row) * s[3] + col)];
            if (!found || (!std::isnan(best) && (v > best || std::isnan(v)))) {
              best = v;
              at = row * s[3] + col;
              found = true;
            }
          }
        }
        out.values.push_back(best);
        out.indices.push_back(at);
      }
    }
  }
  return out;
}

// Values from a few levels (ties in most windows), with some -inf and, when asked, NaN.
NDArray tied_image(const Shape& shape, std::uint64_t seed, bool with_nan) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> level(0, 9);
  std::vector<double> values(static_cast<std::size_t>(numel(shape)));
  for (double& v : values) {
    const int l = level(rng);
    v = l == 0 ? -std::numeric_limits<double>::infinity() : (l == 1 && with_nan ? std::nan("") : (l % 4) - 1.5);
  }
  return NDArray::from_vector(values, shape, cpu_device());
}

// The layouts the kernel reads through strides: the array itself, a transposed H/W, a channels-last array
// seen as NCHW, a flipped W axis, and every other column of a wider array.
enum class Layout { Contiguous, TransposedPlane, ChannelsLast, Flipped, EveryOtherColumn };

NDArray in_layout(const NDArray& x, Layout layout) {
  const Shape& s = x.shape();
  switch (layout) {
    case Layout::Contiguous:
      return x;
    case Layout::TransposedPlane:
      return x.swapaxes(2, 3).compact().swapaxes(2, 3);
    case Layout::ChannelsLast:
      return x.permute({0, 2, 3, 1}).compact().permute({0, 3, 1, 2});
    case Layout::Flipped:
      return flip(x, {3}).flip_view({3});
    case Layout::EveryOtherColumn:
      break;
  }
  NDArray wide = NDArray::zeros({s[0], s[1], s[2], 2 * s[3]}, x.dtype(), x.device());
  const Index every_other = {IndexItem::range(), IndexItem::range(), IndexItem::range(),
                             IndexItem::range(0, 2 * s[3], 2)};
  wide.assign(every_other, x);
  return wide.index(every_other);
}

const std::vector<Layout>& all_layouts() {
  static const std::vector<Layout> layouts = {Layout::Contiguous, Layout::TransposedPlane, Layout::ChannelsLast,
                                              Layout::Flipped, Layout::EveryOtherColumn};
  return layouts;
}

// Every geometry with kernel, stride <= 4 and padding <= kernel / 2.
std::vector<PoolGeometry> geometries() {
  std::vector<PoolGeometry> out;
  for (std::int64_t k = 1; k <= 4; ++k) {
    for (std::int64_t s = 1; s <= 4; ++s) {
      for (std::int64_t p = 0; p <= k / 2; ++p) out.push_back({k, s, p});
    }
  }
  return out;
}

void expect_same_indices(const NDArray& got, const std::vector<std::int64_t>& want) {
  EXPECT_EQ(got.to_vector<std::int64_t>(), want);
}

TEST(FusedMaxPool, OnlyTheCpuBackendImplementsTheKernels) {
  for (const OptionalKernel kernel : {OptionalKernel::max_pool2d, OptionalKernel::max_pool2d_backward}) {
    EXPECT_TRUE(backend_for(cpu_device()).implements(kernel));
    EXPECT_FALSE(backend_for(ref_device()).implements(kernel));
  }
}

TEST(FusedMaxPool, CpuKernelMatchesTheReferenceAndTheContractOnEveryGeometryAndLayout) {
  // Rows of 37 and 40 cells fill whole vectors of the 2 x 2 path and leave (or not) a tail; 5 and 9 leave only
  // tails, with the last window ending the row.
  const std::vector<Shape> shapes = {{2, 3, 7, 5}, {1, 1, 1, 1},  {1, 2, 4, 9}, {3, 1, 6, 6},
                                     {1, 1, 1, 8}, {2, 2, 5, 37}, {1, 1, 2, 40}};
  const int saved_threads = get_num_threads();
  std::uint64_t seed = 11;
  for (const int run : {0, 1, 2}) {
    // The 2 x 2 path's builds: the one this CPU gets (1 and 2 threads) and the portable one.
    const int threads = run == 1 ? 2 : 1;
    cpu::set_max_pool_portable(run == 2);
    set_num_threads(threads);
    for (const Shape& shape : shapes) {
      for (const PoolGeometry& g : geometries()) {
        if (shape[2] + 2 * g.padding < g.kernel || shape[3] + 2 * g.padding < g.kernel) continue;
        for (const DType dtype : {DType::Float32, DType::Float64}) {
          ++seed;
          const NDArray base = tied_image(shape, seed, /*with_nan=*/seed % 3 == 0).astype(dtype);
          for (const Layout layout : all_layouts()) {
            SCOPED_TRACE(str(shape_str(shape), " kernel ", g.kernel, " stride ", g.stride, " padding ", g.padding, " ",
                             dtype_name(dtype), " layout ", static_cast<int>(layout), " threads ", threads,
                             run == 2 ? " portable" : ""));
            const NDArray image = in_layout(base, layout);
            const MaxPoolResult fused = max_pool2d(image, g.kernel, g.stride, g.padding);
            const MaxPoolResult reference = max_pool2d(image.to(ref_device()), g.kernel, g.stride, g.padding);
            const DirectPool direct = direct_max_pool(base, g);
            ASSERT_EQ(fused.values.dtype(), dtype);
            ASSERT_EQ(fused.indices.dtype(), DType::Int64);
            expect_same_values(fused.values, direct.values);
            expect_same_indices(fused.indices, direct.indices);
            expect_same_values(reference.values.to(cpu_device()), direct.values);
            expect_same_indices(reference.indices.to(cpu_device()), direct.indices);
            // A channels-last image (more than one channel, a plane of more than one cell) pools into
            // channels-last results; every other layout into contiguous ones.
            const bool channels_last = layout == Layout::ChannelsLast && !image.is_compact();
            for (const NDArray* result : {&fused.values, &fused.indices}) {
              EXPECT_TRUE(channels_last ? result->permute({0, 2, 3, 1}).is_compact() : result->is_compact());
            }
          }
        }
      }
    }
  }
  cpu::set_max_pool_portable(false);
  set_num_threads(saved_threads);
}

TEST(FusedMaxPool, EmptyBatchesAndChannelsGiveEmptyResults) {
  for (const Device d : {cpu_device(), ref_device()}) {
    for (const Shape& shape : {Shape{0, 3, 4, 4}, Shape{2, 0, 4, 3}}) {
      const MaxPoolResult r = max_pool2d(NDArray::zeros(shape, DType::Float32, d), 3, 2, 1);
      EXPECT_EQ(r.values.shape(), (Shape{shape[0], shape[1], 2, 2}));
      EXPECT_EQ(r.indices.shape(), r.values.shape());
      const NDArray back = max_pool2d_backward(r.values, r.indices, shape);
      EXPECT_EQ(back.shape(), shape);
    }
  }
}

TEST(FusedMaxPool, BackwardKernelMatchesTheReference) {
  // Indices from the forward pass (overlapping windows pick some cells twice) and arbitrary ones (many
  // windows sending their gradient to one cell), gradients of any layout.
  const int saved_threads = get_num_threads();
  std::uint64_t seed = 500;
  int channels_last_cases = 0;
  for (const int run : {0, 1, 2, 3}) {
    // Runs 2 and 3 pool a channels-last image, whose indices, and so the image gradient, are channels-last.
    const int threads = run % 2 == 0 ? 1 : 2;
    const Layout image_layout = run < 2 ? Layout::Contiguous : Layout::ChannelsLast;
    set_num_threads(threads);
    for (const PoolGeometry& g : geometries()) {
      const Shape image_shape{2, 3, 6, 5};
      const NDArray image = in_layout(tied_image(image_shape, ++seed, false), image_layout);
      const NDArray indices = max_pool2d(image, g.kernel, g.stride, g.padding).indices;
      const Shape& out = indices.shape();
      std::mt19937_64 rng(seed);
      std::uniform_int_distribution<std::int64_t> cell(0, image_shape[2] * image_shape[3] - 1);
      std::vector<std::int64_t> anywhere(static_cast<std::size_t>(numel(out)));
      for (std::int64_t& i : anywhere) i = cell(rng);
      for (const NDArray& where :
           {indices, in_layout(NDArray::from_vector(anywhere, out, cpu_device()), image_layout)}) {
        for (const DType dtype : {DType::Float32, DType::Float64}) {
          SCOPED_TRACE(str("kernel ", g.kernel, " stride ", g.stride, " padding ", g.padding, " ", dtype_name(dtype),
                           " threads ", threads));
          ++seed;
          const NDArray grad = in_layout(testing::random_array(out, cpu_device(), seed).astype(dtype),
                                         seed % 2 == 0 ? Layout::TransposedPlane : Layout::Contiguous);
          const NDArray fused = max_pool2d_backward(grad, where, image_shape);
          const NDArray reference =
              max_pool2d_backward(grad.to(ref_device()), where.to(ref_device()), image_shape).to(cpu_device());
          ASSERT_EQ(fused.shape(), image_shape);
          ASSERT_EQ(fused.dtype(), dtype);
          // Channels-last indices (windows in more than one place) give a channels-last image gradient.
          EXPECT_EQ(fused.is_compact(), where.is_compact());
          EXPECT_TRUE(fused.permute({0, 2, 3, 1}).is_compact() || where.is_compact());
          channels_last_cases += where.is_compact() ? 0 : 1;
          // Each cell sums its gradients in the same order (the windows' row-major order) in both.
          expect_same_values(fused, reference.astype(DType::Float64).to_vector<double>());
        }
      }
    }
  }
  EXPECT_GT(channels_last_cases, 100);
  set_num_threads(saved_threads);
}

TEST(FusedMaxPool, ChecksItsOperands) {
  for (const Device d : {cpu_device(), ref_device()}) {
    const NDArray image = NDArray::ones({1, 1, 4, 4}, DType::Float32, d);
    expect_error<TypeError>(
        [&] {
          (void)max_pool2d(NDArray::ones({1, 1, 4, 4}, DType::Int32, d), 2, 2, 0);
        },
        "max_pool2d: expected float32 or float64, got int32");
    expect_error<ValueError>(
        [&] {
          (void)max_pool2d(NDArray::ones({4, 4}, DType::Float32, d), 2, 2, 0);
        },
        "max_pool2d: expected an (N, C, H, W) image, got shape (4, 4)");
    expect_error<ValueError>([&] { (void)max_pool2d(image, 2, 2, 2); }, "0 <= padding <= kernel / 2");
    expect_error<ValueError>([&] { (void)max_pool2d(image, 2, 0, 0); }, "stride 0");
    expect_error<ValueError>([&] { (void)max_pool2d(image, 5, 1, 0); }, "does not fit an image of shape (1, 1, 4, 4)");
    // An empty plane with padding would make windows of padding alone.
    expect_error<ValueError>(
        [&] {
          (void)max_pool2d(NDArray::ones({1, 1, 0, 4}, DType::Float32, d), 2, 1, 1);
        },
        "does not fit an image of shape (1, 1, 0, 4)");

    const MaxPoolResult r = max_pool2d(image, 2, 2, 0);
    expect_error<IndexError>(
        [&] {
          (void)max_pool2d_backward(r.values, r.indices + Scalar(std::int64_t{6}), {1, 1, 4, 4});
        },
        "max_pool2d_backward: index 16 is out of bounds for an image plane of 16 cells");
    expect_error<IndexError>(
        [&] {
          (void)max_pool2d_backward(r.values, r.indices - Scalar(std::int64_t{1}), {1, 1, 4, 4});
        },
        "index -1 is out of bounds");
    // The same check on channels-last indices.
    const MaxPoolResult last =
        max_pool2d(NDArray::ones({1, 4, 4, 2}, DType::Float32, d).permute({0, 3, 1, 2}), 2, 2, 0);
    expect_error<IndexError>(
        [&] {
          (void)max_pool2d_backward(last.values, last.indices + Scalar(std::int64_t{6}), {1, 2, 4, 4});
        },
        "max_pool2d_backward: index 16 is out of bounds for an image plane of 16 cells");
    expect_error<TypeError>(
        [&] {
          (void)max_pool2d_backward(r.values, r.indices.astype(DType::Int32), {1, 1, 4, 4});
        },
        "expected int64 indices, got int32");
    expect_error<ValueError>(
        [&] {
          (void)max_pool2d_backward(r.values, r.indices, {1, 2, 4, 4});
        },
        "max_pool2d_backward: expected a gradient and indices of one shape");
    expect_error<ValueError>(
        [&] {
          (void)max_pool2d_backward(r.values, r.indices, {1, 1, -4, 4});
        },
        "max_pool2d_backward");
  }
}

}  // namespace
}  // namespace needle
