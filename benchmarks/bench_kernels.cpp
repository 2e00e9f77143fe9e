// Kernel timings on the ref and cpu devices, through the array layer:
//   build/release/benchmarks/bench_kernels --benchmark_filter=matmul
//   build/release/benchmarks/bench_kernels --benchmark_filter=sgemm
//   build/release/benchmarks/bench_kernels --benchmark_filter='softmax|layer_norm'
//   build/release/benchmarks/bench_kernels --benchmark_filter=max_pool2d
//   build/release/benchmarks/bench_kernels --benchmark_filter=attention
//   build/release/benchmarks/bench_kernels --benchmark_filter=fma_peak
#include <benchmark/benchmark.h>
#include <needle/backend/backend.h>
#include <needle/backend/cpu.h>
#include <needle/core/fused_ops.h>
#include <needle/core/threads.h>
#include <needle/needle.h>

#include <cmath>
#include <vector>

#include "../src/backend/cpu/gemm.h"
#include "../src/backend/cpu/int8_gemm.h"

namespace {

needle::Device device_arg(const benchmark::State& state) {
  return state.range(0) == 0 ? needle::ref_device() : needle::cpu_device();
}

void BM_add(benchmark::State& state) {
  const std::int64_t n = state.range(1);
  const needle::NDArray a = needle::randn({n}, 0.0, 1.0, needle::DType::Float32, device_arg(state));
  const needle::NDArray b = needle::randn({n}, 0.0, 1.0, needle::DType::Float32, device_arg(state));
  for (auto _ : state) benchmark::DoNotOptimize(needle::add(a, b));
  state.SetBytesProcessed(state.iterations() * n * 3 * 4);
}
BENCHMARK(BM_add)->ArgsProduct({{0, 1}, {1, 1 << 10, 1 << 20}});

void BM_sum_rows(benchmark::State& state) {
  const std::int64_t n = state.range(1);
  const needle::NDArray a = needle::randn({n, n}, 0.0, 1.0, needle::DType::Float32, device_arg(state));
  for (auto _ : state) benchmark::DoNotOptimize(needle::sum(a, {1}));
  state.SetBytesProcessed(state.iterations() * n * n * 4);
}
BENCHMARK(BM_sum_rows)->ArgsProduct({{0, 1}, {256, 1024}});

void BM_matmul(benchmark::State& state) {
  const std::int64_t n = state.range(1);
  const needle::NDArray a = needle::randn({n, n}, 0.0, 1.0, needle::DType::Float32, device_arg(state));
  const needle::NDArray b = needle::randn({n, n}, 0.0, 1.0, needle::DType::Float32, device_arg(state));
  for (auto _ : state) benchmark::DoNotOptimize(needle::matmul(a, b));
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(2 * n * n * n), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_matmul)->ArgsProduct({{0, 1}, {64, 256}})->Unit(benchmark::kMillisecond);

// Square float32 C = A @ B on the cpu device: args n, threads, and whether B is a transposed view (the
// backward pass's layout). GFLOP/s from wall-clock time, since several threads run.
void BM_sgemm(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const int previous_threads = needle::get_num_threads();
  needle::set_num_threads(static_cast<int>(state.range(1)));
  const needle::NDArray a = needle::randn({n, n}, 0.0, 1.0, needle::DType::Float32, needle::cpu_device());
  needle::NDArray b = needle::randn({n, n}, 0.0, 1.0, needle::DType::Float32, needle::cpu_device());
  if (state.range(2) != 0) b = b.permute({1, 0});
  for (auto _ : state) benchmark::DoNotOptimize(needle::matmul(a, b));
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(2 * n * n * n), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  needle::set_num_threads(previous_threads);
}
BENCHMARK(BM_sgemm)
    ->ArgNames({"n", "threads", "bT"})
    ->ArgsProduct({{256, 512, 1024, 2048}, {1, 2}, {0}})
    ->ArgsProduct({{1024}, {1, 2}, {1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// quantized_matmul of int8 a (M, K) and w (N, K) with per-row and per-column scales and a bias, on the cpu
// device: args M, N = K, threads, and the int8 build (0 auto, 1 AVX-512 VNNI, 2 AVX2, 3 portable). GOP/s
// counts a multiply and an add per term, like BM_sgemm's GFLOP/s, so the two compare directly.
// M = 1 is decoding one token (w streamed from memory), 4 and 16 small batches.
void BM_quantized_matmul(benchmark::State& state) {
  const std::int64_t m = state.range(0);
  const std::int64_t n = state.range(1);
  const auto kernel = static_cast<needle::cpu::Int8Kernel>(state.range(3));
  if (!needle::cpu::int8_kernel_supported(kernel)) {
    state.SkipWithError("this CPU lacks the int8 build");
    return;
  }
  const int previous_threads = needle::get_num_threads();
  needle::set_num_threads(static_cast<int>(state.range(2)));
  needle::cpu::set_int8_kernel(kernel);
  const auto cpu = needle::cpu_device();
  const needle::QuantizedRows a = needle::quantize_rows(needle::randn({m, n}, 0.0, 1.0, needle::DType::Float32, cpu));
  const needle::QuantizedRows w = needle::quantize_rows(needle::randn({n, n}, 0.0, 1.0, needle::DType::Float32, cpu));
  const needle::NDArray bias = needle::randn({n}, 0.0, 1.0, needle::DType::Float32, cpu);
  for (auto _ : state) benchmark::DoNotOptimize(needle::quantized_matmul(a.values, a.scale, w.values, w.scale, &bias));
  state.counters["GOP/s"] = benchmark::Counter(
      static_cast<double>(2 * m * n * n), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  needle::cpu::set_int8_kernel(needle::cpu::Int8Kernel::Auto);
  needle::set_num_threads(previous_threads);
}
BENCHMARK(BM_quantized_matmul)
    ->ArgNames({"m", "n", "threads", "kernel"})
    ->ArgsProduct({{1024}, {1024}, {1, 2}, {1, 2, 3}})
    ->ArgsProduct({{1, 4, 16}, {4096}, {1, 2}, {1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// BM_sgemm with the micro-kernel forced (arg kernel: 0 AVX-512, 1 AVX2 + FMA, 2 portable), to compare the
// kernels on one machine. A kernel the CPU lacks is skipped.
void BM_sgemm_kernel(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const needle::cpu::GemmKernel kernels[] = {needle::cpu::GemmKernel::Avx512, needle::cpu::GemmKernel::Avx2,
                                             needle::cpu::GemmKernel::Portable};
  const needle::cpu::GemmKernel kernel = kernels[state.range(2)];
  if (!needle::cpu::gemm_supports(kernel)) {
    state.SkipWithError("the CPU lacks this kernel");
    return;
  }
  const int previous_threads = needle::get_num_threads();
  needle::set_num_threads(static_cast<int>(state.range(1)));
  needle::cpu::set_gemm_kernel(kernel);
  const needle::NDArray a = needle::randn({n, n}, 0.0, 1.0, needle::DType::Float32, needle::cpu_device());
  const needle::NDArray b = needle::randn({n, n}, 0.0, 1.0, needle::DType::Float32, needle::cpu_device());
  for (auto _ : state) benchmark::DoNotOptimize(needle::matmul(a, b));
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(2 * n * n * n), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  needle::cpu::set_gemm_kernel(needle::cpu::GemmKernel::Auto);
  needle::set_num_threads(previous_threads);
}
BENCHMARK(BM_sgemm_kernel)
    ->ArgNames({"n", "threads", "kernel"})
    ->ArgsProduct({{512, 1024, 2048}, {1, 2}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// parallel_for's own cost: n float increments in chunks of at least 1024, over 1 or 2 threads. With n = 1
// the loop is one call of the chunk function on the calling thread, so the time is the call's overhead;
// larger n adds the pool's hand-off (one indirect call per chunk, never per element).
void BM_parallel_for(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const int previous_threads = needle::get_num_threads();
  needle::set_num_threads(static_cast<int>(state.range(1)));
  std::vector<float> data(static_cast<std::size_t>(n), 0.0F);
  for (auto _ : state) {
    needle::parallel_for(0, n, 1024, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t i = first; i < last; ++i) data[static_cast<std::size_t>(i)] += 1.0F;
    });
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
  needle::set_num_threads(previous_threads);
}
BENCHMARK(BM_parallel_for)->ArgNames({"n", "threads"})->ArgsProduct({{1, 1 << 12, 1 << 20}, {1, 2}})->UseRealTime();

// Softmax, log-softmax and layer norm on float32 cpu rows, "composed" (mode 0: the chain of array
// functions the ops used before the fused kernels, one pass over memory each) against "fused" (mode 1:
// the backend's fused kernel, as the ops now run it). Args: mode, rows, cols. Bytes processed count one
// read of each input and one write of the output.
namespace nd = needle;

nd::NDArray composed_softmax(const nd::NDArray& x, bool log) {
  const nd::NDArray shifted = x - nd::max(x, {1}, /*keepdims=*/true);
  if (log) return shifted - nd::log(nd::sum(nd::exp(shifted), {1}, /*keepdims=*/true));
  const nd::NDArray e = nd::exp(shifted);
  return e / nd::sum(e, {1}, /*keepdims=*/true);
}

void softmax_forward(benchmark::State& state, bool log) {
  const std::int64_t rows = state.range(1);
  const std::int64_t cols = state.range(2);
  const nd::NDArray x = nd::randn({rows, cols}, 0.0, 1.0, nd::DType::Float32, nd::cpu_device());
  for (auto _ : state) {
    if (state.range(0) == 0) {
      benchmark::DoNotOptimize(composed_softmax(x, log));
    } else {
      nd::NDArray out = nd::NDArray::empty(x.shape(), x.dtype(), x.device());
      nd::backend_for(x.device()).softmax(out.view(), x.view(), log);
      benchmark::DoNotOptimize(out);
    }
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 2 * 4);
}
void BM_softmax(benchmark::State& state) { softmax_forward(state, false); }
void BM_logsoftmax(benchmark::State& state) { softmax_forward(state, true); }

// dx from the output gradient g and the output y, as the softmax gradient computes it.
void BM_softmax_backward(benchmark::State& state) {
  const std::int64_t rows = state.range(1);
  const std::int64_t cols = state.range(2);
  const nd::NDArray y =
      composed_softmax(nd::randn({rows, cols}, 0.0, 1.0, nd::DType::Float32, nd::cpu_device()), false);
  const nd::NDArray g = nd::randn({rows, cols}, 0.0, 1.0, nd::DType::Float32, nd::cpu_device());
  for (auto _ : state) {
    if (state.range(0) == 0) {
      benchmark::DoNotOptimize(y * (g - nd::sum(g * y, {1}, /*keepdims=*/true)));
    } else {
      nd::NDArray dx = nd::NDArray::empty(y.shape(), y.dtype(), y.device());
      nd::backend_for(y.device()).softmax_backward(dx.view(), g.view(), y.view(), false);
      benchmark::DoNotOptimize(dx);
    }
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 3 * 4);
}

const std::vector<std::vector<std::int64_t>> kSoftmaxShapes = {{16 * 4 * 128, 128}, {700, 10000}};

void softmax_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"fused", "rows", "cols"});
  for (const auto& shape : kSoftmaxShapes) {
    for (std::int64_t mode : {0, 1}) b->Args({mode, shape[0], shape[1]});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(BM_softmax)->Apply(softmax_args);
BENCHMARK(BM_logsoftmax)->Apply(softmax_args);
BENCHMARK(BM_softmax_backward)->Apply(softmax_args);

// Layer norm forward and backward (no affine) through the ops with autograd: mode 0 composes it from ops
// as layer_norm did before (mean, subtract, square, mean, add, sqrt, divide), mode 1 is ops::layer_norm.
void BM_layer_norm_train(benchmark::State& state) {
  const std::int64_t rows = state.range(1);
  const std::int64_t cols = state.range(2);
  const nd::NDArray x0 = nd::randn({rows, cols}, 0.0, 1.0, nd::DType::Float32, nd::cpu_device());
  const nd::Tensor g(nd::randn({rows, cols}, 0.0, 1.0, nd::DType::Float32, nd::cpu_device()));
  for (auto _ : state) {
    nd::Tensor x(x0, true);
    nd::Tensor y;
    if (state.range(0) == 0) {
      const nd::Tensor centered = x - nd::ops::mean(x, {-1}, /*keepdims=*/true);
      const nd::Tensor var = nd::ops::mean(centered * centered, {-1}, /*keepdims=*/true);
      y = centered / nd::ops::sqrt(var + nd::Scalar(1e-5));
    } else {
      y = nd::ops::layer_norm(x, nd::Tensor(), nd::Tensor(), 1e-5);
    }
    y.backward(g);
    benchmark::DoNotOptimize(x.grad());
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 5 * 4);
}
BENCHMARK(BM_layer_norm_train)
    ->ArgNames({"fused", "rows", "cols"})
    ->ArgsProduct({{0, 1}, {2048}, {128}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Max pooling 2 x 2 / 2 of cnn_fmnist_step's two activations through the array layer, forward (mode 0) and
// backward (mode 1): the cpu kernels, or on ref the composition they replace (unfold, argmax, gather;
// scatter_add); the image contiguous, or channels-last as a convolution and batch norm hand it on.
void BM_max_pool2d(benchmark::State& state) {
  const std::int64_t channels = state.range(2);
  const std::int64_t size = state.range(3);
  const nd::NDArray image =
      state.range(4) == 0 ? nd::randn({128, channels, size, size}, 0.0, 1.0, nd::DType::Float32, device_arg(state))
                          : nd::randn({128, size, size, channels}, 0.0, 1.0, nd::DType::Float32, device_arg(state))
                                .permute({0, 3, 1, 2});
  const nd::MaxPoolResult pooled = nd::max_pool2d(image, 2, 2, 0);
  const nd::NDArray grad = nd::randn(pooled.values.shape(), 0.0, 1.0, nd::DType::Float32, device_arg(state));
  for (auto _ : state) {
    if (state.range(1) == 0) {
      benchmark::DoNotOptimize(nd::max_pool2d(image, 2, 2, 0));
    } else {
      benchmark::DoNotOptimize(nd::max_pool2d_backward(grad, pooled.indices, image.shape()));
    }
  }
  state.SetItemsProcessed(state.iterations() * image.size());
}
BENCHMARK(BM_max_pool2d)
    ->ArgNames({"cpu", "backward", "channels", "size", "channels_last"})
    ->ArgsProduct({{0, 1}, {0, 1}, {16}, {28}, {0, 1}})
    ->ArgsProduct({{1}, {0, 1}, {32}, {14}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Causal attention of gpt_mini_step's shape on the cpu device: batch 16, 4 heads of 32 values, 128 positions,
// the heads read in place from (batch, positions, heads, 32) projections as the layer hands them over;
// forward (mode 0) or backward (mode 1), on 1 or 2 threads.
void BM_attention(benchmark::State& state) {
  const int previous_threads = nd::get_num_threads();
  nd::set_num_threads(static_cast<int>(state.range(1)));
  const auto heads = [](std::uint64_t seed) {
    nd::manual_seed(seed);
    return nd::randn({16, 128, 4, 32}, 0.0, 1.0, nd::DType::Float32, nd::cpu_device()).permute({0, 2, 1, 3});
  };
  const nd::NDArray q = heads(1);
  const nd::NDArray k = heads(2);
  const nd::NDArray v = heads(3);
  const double scale = 1.0 / std::sqrt(32.0);
  const nd::AttentionResult forward = nd::attention(q, k, v, scale, /*causal=*/true);
  const nd::NDArray g = heads(4);
  for (auto _ : state) {
    if (state.range(0) == 0) {
      benchmark::DoNotOptimize(nd::attention(q, k, v, scale, /*causal=*/true));
    } else {
      benchmark::DoNotOptimize(nd::attention_backward(g, q, k, v, forward, scale, /*causal=*/true));
    }
  }
  nd::set_num_threads(previous_threads);
}
BENCHMARK(BM_attention)
    ->ArgNames({"backward", "threads"})
    ->ArgsProduct({{0, 1}, {1, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The float32 FMA peak as this machine delivers it now (clock, turbo, sharing), through the library's own
// measurement (needle::measure_fma_peak: the widest FMA the GEMM kernels use, twelve independent chains per
// thread), on 1 and on 2 threads at once. The sgemm GFLOP/s above are meaningful as a fraction of this.
void BM_fma_peak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  needle::FmaPeak peak;
  for (auto _ : state) peak = needle::measure_fma_peak(threads, 0.2);
  state.SetLabel(peak.isa);
  state.counters["GFLOP/s"] = peak.gflops;
  state.counters["GFLOP/s per thread"] = peak.gflops / threads;
}
BENCHMARK(BM_fma_peak)->ArgName("threads")->Arg(1)->Arg(2)->Iterations(3)->Unit(benchmark::kMillisecond);

}  // namespace
