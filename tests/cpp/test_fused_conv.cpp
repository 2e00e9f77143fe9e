// The convolution's data-movement kernels (Backend::im2col and col2im): the ref kernels against the
// patches formula built from array functions (a padded copy read through a strided window view) and
// against each other (col2im is im2col's adjoint), the cpu kernels (1 and 2 threads) and the Backend
// base-class defaults against the ref kernels on shapes with sizes 1, odd sizes, strides 1/2/4, padding
// 0/1/3, kernels 1/3/7, channels-last and permuted (NCHW-read) images, and bad operands. Then the cpu
// backend's one-pass convolution kernels against their composition on ref over the same shapes and more.
// The conv ops built on them (gradients and second gradients against finite differences) are tested in
// test_ops_conv.cpp.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../../src/backend/cpu/gemm.h"
#include "fused_test_util.h"
#include "gradcheck.h"
#include "needle/backend/backend.h"
#include "needle/core/threads.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::cpu_backend;
using testing::expect_close;
using testing::host;
using testing::ref_backend;

using testing::random_array;

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double total = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) total += a[i] * b[i];
  return total;
}

double tolerance_for(DType dtype) { return dtype == DType::Float32 ? 1e-5 : 1e-12; }

// Restores the thread count a test changes.
class ThreadsGuard {
 public:
  ThreadsGuard() : saved_(get_num_threads()) {}
  ~ThreadsGuard() { set_num_threads(saved_); }
  ThreadsGuard(const ThreadsGuard&) = delete;
  ThreadsGuard& operator=(const ThreadsGuard&) = delete;
  ThreadsGuard(ThreadsGuard&&) = delete;
  ThreadsGuard& operator=(ThreadsGuard&&) = delete;

 private:
  int saved_;
};

struct Case {
  std::int64_t n, h, w, c, k, stride, padding;
  [[nodiscard]] std::int64_t h_out() const { return (h + 2 * padding - k) / stride + 1; }
  [[nodiscard]] std::int64_t w_out() const { return (w + 2 * padding - k) / stride + 1; }
  [[nodiscard]] Shape image_shape() const { return {n, h, w, c}; }
  [[nodiscard]] Shape cols_shape() const { return {n, h_out(), w_out(), k, k, c}; }
  [[nodiscard]] std::string str() const {
    return needle::str("N=", n, " H=", h, " W=", w, " C=", c, " K=", k, " stride=", stride, " padding=", padding);
  }
};

std::vector<Case> cases() {
  return {
      {1, 1, 1, 1, 1, 1, 0},     // every size 1
      {1, 1, 1, 1, 3, 1, 1},     // a 3x3 kernel over one pixel: all but the centre tap in the padding
      {2, 5, 7, 3, 3, 1, 1},     // odd sizes, same-size output
      {2, 5, 7, 3, 3, 2, 1},     // stride 2 over odd sizes
      {3, 9, 6, 1, 7, 4, 3},     // C = 1, the resnet9 stem's kernel, stride and padding
      {2, 8, 8, 16, 7, 4, 3},    // the resnet9 stem with more channels
      {1, 6, 5, 4, 1, 1, 0},     // 1x1 kernel
      {2, 6, 5, 4, 1, 2, 0},     // 1x1 kernel with stride 2
      {1, 4, 4, 2, 1, 1, 3},     // padding larger than the kernel: whole rows of zeros
      {2, 7, 3, 5, 3, 4, 0},     // stride larger than the kernel: skipped image cells
      {1, 2, 3, 2, 7, 2, 3},     // a kernel larger than the image
      {4, 16, 16, 32, 3, 1, 1},  // a resnet9 block, large enough to be split over threads
      {32, 8, 8, 16, 3, 2, 1},
  };
}

// The reading of kernels.def's formula built from array functions: pad, then a strided window view of the
// padded copy, compacted.
NDArray formula_columns(const NDArray& image, const Case& c) {
  const std::int64_t p = c.padding;
  const NDArray padded = (p > 0 ? pad(image, {{0, 0}, {p, p}, {p, p}, {0, 0}}) : image).compact();
  const Strides& st = padded.strides();
  return padded
      .as_strided(c.cols_shape(), {st[0], st[1] * c.stride, st[2] * c.stride, st[1], st[2], st[3]}, padded.offset())
      .compact();
}

NDArray run_im2col(Backend& backend, const NDArray& image, const Case& c, bool composed = false) {
  NDArray cols = NDArray::full(c.cols_shape(), 7.0, image.dtype(), image.device());  // garbage to overwrite
  if (composed) {
    backend.composed_im2col(cols.view(), image.view(), c.stride, c.padding);
  } else {
    backend.im2col(cols.view(), image.view(), c.stride, c.padding);
  }
  return cols;
}

NDArray run_col2im(Backend& backend, const NDArray& cols, const Case& c, bool composed = false) {
  NDArray image = NDArray::full(c.image_shape(), 7.0, cols.dtype(), cols.device());
  if (composed) {
    backend.composed_col2im(image.view(), cols.view(), c.stride, c.padding);
  } else {
    backend.col2im(image.view(), cols.view(), c.stride, c.padding);
  }
  return image;
}

// An (N, H, W, C) image on `device`, either compact or the permuted view of a compact (N, C, H, W) array
// (what the Conv layer hands to the op).
NDArray make_image(const Case& c, DType dtype, Device device, bool channels_first, std::uint64_t seed) {
  if (!channels_first) return random_array(c.image_shape(), device, seed).astype(dtype);
  return random_array({c.n, c.c, c.h, c.w}, device, seed).astype(dtype).permute({0, 2, 3, 1});
}

TEST(ConvKernelsRef, Im2colMatchesThePaddedWindowFormula) {
  std::uint64_t seed = 10;
  for (const Case& c : cases()) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      for (const bool channels_first : {false, true}) {
        const NDArray image = make_image(c, dtype, ref_device(), channels_first, seed++);
        EXPECT_EQ(host(run_im2col(ref_backend(), image, c)), host(formula_columns(image, c))) << c.str();
      }
    }
  }
}

TEST(ConvKernelsRef, Col2imIsTheAdjointOfIm2col) {
  // <im2col(x), cols> = <x, col2im(cols)> for every x and cols, in float64.
  std::uint64_t seed = 20;
  for (const Case& c : cases()) {
    const NDArray image = random_array(c.image_shape(), ref_device(), seed++);
    const NDArray cols = random_array(c.cols_shape(), ref_device(), seed++);
    const double lhs = dot(host(run_im2col(ref_backend(), image, c)), host(cols));
    const double rhs = dot(host(image), host(run_col2im(ref_backend(), cols, c)));
    EXPECT_NEAR(lhs, rhs, 1e-10 * (1.0 + std::abs(lhs))) << c.str();
  }
}

TEST(ConvKernelsCpu, MatchRefOnEveryShapeDtypeLayoutAndThreadCount) {
  const ThreadsGuard restore;
  std::uint64_t seed = 30;
  for (const Case& c : cases()) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      for (const bool channels_first : {false, true}) {
        const NDArray image = make_image(c, dtype, cpu_device(), channels_first, seed++);
        const NDArray cols = random_array(c.cols_shape(), cpu_device(), seed++).astype(dtype);
        const std::vector<double> expected_cols = host(run_im2col(ref_backend(), image.to(ref_device()), c));
        const std::vector<double> expected_image = host(run_col2im(ref_backend(), cols.to(ref_device()), c));
        std::vector<double> first_image;
        for (const int threads : {1, 2}) {
          set_num_threads(threads);
          const std::string what =
              str(c.str(), " ", dtype_name(dtype), channels_first ? " permuted" : " compact", " threads ", threads);
          // im2col only moves values, so it is exact.
          EXPECT_EQ(host(run_im2col(cpu_backend(), image, c)), expected_cols) << what;
          const std::vector<double> summed = host(run_col2im(cpu_backend(), cols, c));
          expect_close(summed, expected_image, tolerance_for(dtype), what);
          if (threads == 1) {
            first_image = summed;
          } else {
            EXPECT_EQ(summed, first_image) << what << ": col2im differs from the 1-thread result";
          }
        }
      }
    }
  }
}

TEST(ConvKernelsDefault, ComposedDefaultsMatchRef) {
  // The base-class versions (what CUDA runs) through the cpu backend's primitives.
  std::uint64_t seed = 40;
  for (const Case& c : cases()) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      for (const bool channels_first : {false, true}) {
        const NDArray image = make_image(c, dtype, cpu_device(), channels_first, seed++);
        const NDArray cols = random_array(c.cols_shape(), cpu_device(), seed++).astype(dtype);
        const std::string what = str(c.str(), " ", dtype_name(dtype), channels_first ? " permuted" : " compact");
        EXPECT_EQ(host(run_im2col(cpu_backend(), image, c, true)),
                  host(run_im2col(ref_backend(), image.to(ref_device()), c)))
            << what;
        expect_close(host(run_col2im(cpu_backend(), cols, c, true)),
                     host(run_col2im(ref_backend(), cols.to(ref_device()), c)), tolerance_for(dtype), what);
      }
    }
  }
}

TEST(ConvKernels, RejectBadOperandsWithTheKernelName) {
  for (const Device device : {ref_device(), cpu_device()}) {
    Backend& backend = builtin_backend_for(device);
    const NDArray image = NDArray::zeros({1, 4, 4, 2}, DType::Float32, device);
    const NDArray cols = NDArray::zeros({1, 4, 4, 3, 3, 2}, DType::Float32, device);
    testing::expect_error<RuntimeError>(
        [&] {
          backend.im2col(NDArray::zeros({1, 3, 4, 3, 3, 2}, DType::Float32, device).view(), image.view(), 1, 1);
        },
        "im2col");
    testing::expect_error<RuntimeError>([&] { backend.im2col(cols.astype(DType::Float64).view(), image.view(), 1, 1); },
                                        "im2col");
    testing::expect_error<RuntimeError>([&] { backend.col2im(image.view(), cols.swapaxes(1, 2).view(), 1, 1); },
                                        "col2im");
    testing::expect_error<RuntimeError>([&] { backend.col2im(image.astype(DType::Int32).view(), cols.view(), 1, 1); },
                                        "col2im");
    testing::expect_error<RuntimeError>(
        [&] {
          backend.im2col(cols.view(), image.reshape({4, 4, 2}).view(), 1, 1);
        },
        "im2col");
  }
}

// ---- the one-pass convolution kernels (conv2d, conv2d_weight_grad, conv2d_input_grad) ----

// The three results of one convolution case on one device, through the array functions: the cpu backend's
// kernels on cpu, the composition of im2col, matmul and col2im (their reference) on ref.
struct ConvResults {
  std::vector<double> out, grad_weight, grad_image;
};

ConvResults run_convolution(const NDArray& image, const NDArray& weight, const NDArray& grad_out, const Case& c) {
  return {host(conv2d(image, weight, c.stride, c.padding)),
          host(conv2d_weight_grad(image, grad_out, c.k, c.stride, c.padding)),
          host(conv2d_input_grad(grad_out, weight, c.image_shape(), c.stride, c.padding))};
}

// The cases above, with output channels that fill a register tile, leave part of one or are a single one, then
// more, down to batches large enough for several blocks of output rows (and weight-gradient chunks, more than
// eight in the last but one) and an image whose columns outgrow the kept scratch buffer (the last).
std::vector<std::pair<Case, std::int64_t>> convolution_cases() {
  std::vector<std::pair<Case, std::int64_t>> all;
  const std::int64_t channels[] = {1, 5, 16, 33};
  std::size_t i = 0;
  for (const Case& c : cases()) all.emplace_back(c, channels[i++ % 4]);
  // Output rows wide enough for the direct kernels (float32 with AVX-512): the README CNN's second layer, odd
  // sizes with a wide and a narrow panel of output channels, stride 2, padding 0 and padding K - 1, and a
  // batch of more than eight chunks of blocks.
  all.push_back({{3, 14, 14, 16, 3, 1, 1}, 32});
  all.push_back({{2, 13, 21, 5, 3, 1, 0}, 33});
  all.push_back({{2, 9, 57, 3, 5, 2, 2}, 20});
  all.push_back({{1, 12, 28, 40, 3, 1, 2}, 17});
  all.push_back({{40, 14, 14, 16, 3, 1, 1}, 8});
  all.push_back({{32, 8, 8, 16, 3, 1, 1}, 32});
  all.push_back({{64, 16, 16, 8, 3, 1, 1}, 7});
  all.push_back({{5, 28, 28, 1, 3, 1, 1}, 16});
  all.push_back({{1, 64, 64, 32, 3, 1, 1}, 3});
  return all;
}

// Restores the automatic choice of the GEMM kernels a test forces.
class GemmKernelGuard {
 public:
  GemmKernelGuard() = default;
  ~GemmKernelGuard() { cpu::set_gemm_kernel(cpu::GemmKernel::Auto); }
  GemmKernelGuard(const GemmKernelGuard&) = delete;
  GemmKernelGuard& operator=(const GemmKernelGuard&) = delete;
  GemmKernelGuard(GemmKernelGuard&&) = delete;
  GemmKernelGuard& operator=(GemmKernelGuard&&) = delete;
};

// Where the AVX-512 kernels run, float32 takes the direct kernels (the image read in place); with the AVX2
// kernels forced, the blocked ones (im2col of a block, then the GEMM), which are also every float64 path.
TEST(ConvPassCpu, MatchesTheComposedReferenceOnEveryShapeDtypeLayoutThreadCountAndKernel) {
  const ThreadsGuard restore;
  const GemmKernelGuard restore_kernel;
  std::uint64_t seed = 60;
  for (const cpu::GemmKernel kernel : {cpu::GemmKernel::Auto, cpu::GemmKernel::Avx2}) {
    if (!cpu::gemm_supports(kernel)) continue;
    cpu::set_gemm_kernel(kernel);
    for (const auto& [c, c_out] : convolution_cases()) {
      for (const DType dtype : {DType::Float32, DType::Float64}) {
        for (const bool channels_first : {false, true}) {
          const NDArray image = make_image(c, dtype, cpu_device(), channels_first, seed++);
          const NDArray weight = random_array({c.k, c.k, c.c, c_out}, cpu_device(), seed++).astype(dtype);
          const NDArray grad_out = random_array({c.n, c.h_out(), c.w_out(), c_out}, cpu_device(), seed++).astype(dtype);
          const ConvResults expected =
              run_convolution(image.to(ref_device()), weight.to(ref_device()), grad_out.to(ref_device()), c);
          // Sums over up to 16384 products in float32, in another order than the reference's.
          const double tolerance = dtype == DType::Float32 ? 1e-4 : 1e-11;
          ConvResults first;
          for (const int threads : {1, 2}) {
            set_num_threads(threads);
            const std::string what =
                str(c.str(), " C_out=", c_out, " ", dtype_name(dtype), channels_first ? " permuted" : " compact",
                    " threads ", threads, kernel == cpu::GemmKernel::Auto ? " auto kernels" : " AVX2 kernels");
            const ConvResults got = run_convolution(image, weight, grad_out, c);
            expect_close(got.out, expected.out, tolerance, what + " conv2d");
            expect_close(got.grad_weight, expected.grad_weight, tolerance, what + " conv2d_weight_grad");
            expect_close(got.grad_image, expected.grad_image, tolerance, what + " conv2d_input_grad");
            if (threads == 1) {
              first = got;
            } else {
              EXPECT_EQ(got.out, first.out) << what << ": conv2d differs from the 1-thread result";
              EXPECT_EQ(got.grad_weight, first.grad_weight) << what << ": the weight gradient differs from 1 thread's";
              EXPECT_EQ(got.grad_image, first.grad_image) << what << ": the image gradient differs from 1 thread's";
            }
          }
        }
      }
    }
  }
}

TEST(ConvPassCpu, OverwritesItsOutputsAndHandlesEmptySizes) {
  const Case c{2, 5, 7, 3, 3, 1, 1};
  const NDArray image = random_array(c.image_shape(), cpu_device(), 80).astype(DType::Float32);
  const NDArray weight = random_array({3, 3, 3, 4}, cpu_device(), 81).astype(DType::Float32);
  const NDArray grad_out = random_array({2, 5, 7, 4}, cpu_device(), 82).astype(DType::Float32);
  // Outputs that start as garbage must not leak into the results.
  NDArray out = NDArray::full({2, 5, 7, 4}, 7.0, DType::Float32, cpu_device());
  NDArray grad_weight = NDArray::full({3, 3, 3, 4}, 7.0, DType::Float32, cpu_device());
  NDArray grad_image = NDArray::full(c.image_shape(), 7.0, DType::Float32, cpu_device());
  cpu_backend().conv2d(out.view(), image.view(), weight.view(), 1, 1);
  cpu_backend().conv2d_weight_grad(grad_weight.view(), image.view(), grad_out.view(), 1, 1);
  cpu_backend().conv2d_input_grad(grad_image.view(), grad_out.view(), weight.view(), 1, 1);
  const ConvResults expected =
      run_convolution(image.to(ref_device()), weight.to(ref_device()), grad_out.to(ref_device()), c);
  expect_close(host(out), expected.out, 1e-5, "conv2d into garbage");
  expect_close(host(grad_weight), expected.grad_weight, 1e-5, "conv2d_weight_grad into garbage");
  expect_close(host(grad_image), expected.grad_image, 1e-5, "conv2d_input_grad into garbage");

  // No image in the batch: a zero weight gradient. No output channel: a zero image gradient.
  const NDArray none = NDArray::zeros({0, 5, 7, 3}, DType::Float32, cpu_device());
  const NDArray zero_weight_grad =
      conv2d_weight_grad(none, NDArray::zeros({0, 5, 7, 4}, DType::Float32, cpu_device()), 3, 1, 1);
  EXPECT_EQ(host(zero_weight_grad), std::vector<double>(3 * 3 * 3 * 4, 0.0));
  const NDArray no_channels = NDArray::zeros({3, 3, 3, 0}, DType::Float32, cpu_device());
  EXPECT_EQ(conv2d(image, no_channels, 1, 1).shape(), (Shape{2, 5, 7, 0}));
  EXPECT_EQ(host(conv2d_input_grad(NDArray::zeros({2, 5, 7, 0}, DType::Float32, cpu_device()), no_channels,
                                   c.image_shape(), 1, 1)),
            std::vector<double>(static_cast<std::size_t>(2 * 5 * 7 * 3), 0.0));
}

TEST(ConvPass, RejectsBadOperandsWithTheKernelOrFunctionName) {
  Backend& backend = cpu_backend();
  const NDArray image = NDArray::zeros({1, 4, 4, 2}, DType::Float32, cpu_device());
  const NDArray weight = NDArray::zeros({3, 3, 2, 5}, DType::Float32, cpu_device());
  const NDArray cells = NDArray::zeros({1, 4, 4, 5}, DType::Float32, cpu_device());
  // The kernels' contracts.
  testing::expect_error<RuntimeError>(
      [&] {
        backend.conv2d(cells.view(), image.view(), weight.reshape({3, 3, 5, 2}).view(), 1, 1);
      },
      "conv2d");
  testing::expect_error<RuntimeError>(
      [&] { backend.conv2d(cells.view(), image.view(), weight.astype(DType::Float64).view(), 1, 1); }, "conv2d");
  testing::expect_error<RuntimeError>(
      [&] {
        backend.conv2d(NDArray::zeros({1, 4, 5, 4}, DType::Float32, cpu_device()).swapaxes(2, 3).view(), image.view(),
                       weight.view(), 1, 1);
      },
      "conv2d");
  testing::expect_error<RuntimeError>(
      [&] { backend.conv2d_weight_grad(weight.view(), image.view(), cells.view(), 2, 1); }, "conv2d_weight_grad");
  testing::expect_error<RuntimeError>(
      [&] { backend.conv2d_input_grad(image.swapaxes(1, 2).view(), cells.view(), weight.view(), 1, 1); },
      "conv2d_input_grad");
  testing::expect_error<RuntimeError>(
      [&] { backend.conv2d_input_grad(image.view(), cells.view(), weight.view(), 0, 1); }, "conv2d_input_grad");
  // The array functions', in the caller's terms.
  testing::expect_error<ValueError>([&] { (void)conv2d(image, weight.reshape({3, 3, 5, 2}), 1, 1); }, "conv2d");
  testing::expect_error<ValueError>([&] { (void)conv2d(image, weight, 1, -1); }, "conv2d");
  testing::expect_error<ValueError>([&] { (void)conv2d_weight_grad(image, cells, 3, 2, 1); }, "conv2d_weight_grad");
  testing::expect_error<ValueError>(
      [&] {
        (void)conv2d_input_grad(cells, weight, {1, 4, 4, 3}, 1, 1);
      },
      "conv2d_input_grad");
  testing::expect_error<TypeError>([&] { (void)conv2d(image.astype(DType::Int32), weight.astype(DType::Int32), 1, 1); },
                                   "conv2d");
}

}  // namespace
}  // namespace needle
