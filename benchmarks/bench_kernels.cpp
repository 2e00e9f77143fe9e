// Kernel timings on the ref and cpu devices, through the array layer:
//   build/release/benchmarks/bench_kernels --benchmark_filter=matmul
//   build/release/benchmarks/bench_kernels --benchmark_filter=sgemm
#include <benchmark/benchmark.h>
#include <needle/core/threads.h>
#include <needle/needle.h>

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

}  // namespace
