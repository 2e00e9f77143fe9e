// The float32 FMA peak of this machine, measured: the denominator of every "fraction of peak" figure.
//
// Each thread runs kChains independent accumulators through acc = acc * scale + shift. One chain would
// measure the FMA's latency (4 cycles on current cores); with two FMA units, 8 chains in flight cover it,
// and 12 leave margin. The values stay bounded (scale < 1), so no denormals or infinities slow the loop.
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "needle/backend/cpu.h"
#include "needle/core/error.h"

namespace needle {

namespace {

constexpr int kChains = 12;
constexpr std::int64_t kStepsPerRound = 1 << 16;

bool has_avx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

bool has_avx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

// Each returns the floating-point operations it performed; `sink` keeps the result observable.
#if defined(__x86_64__)
__attribute__((target("avx512f"))) std::int64_t fma_rounds_avx512(std::int64_t rounds, float& sink) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001F * static_cast<float>(i));
  const __m512 scale = _mm512_set1_ps(0.9999F);
  const __m512 shift = _mm512_set1_ps(0.0001F);
  for (std::int64_t step = 0; step < rounds * kStepsPerRound; ++step) {
#pragma GCC unroll 12
    for (__m512& a : acc) a = _mm512_fmadd_ps(scale, a, shift);
  }
  __m512 total = acc[0];
  for (int i = 1; i < kChains; ++i) total = _mm512_add_ps(total, acc[i]);
  float lanes[16];
  _mm512_storeu_ps(lanes, total);
  for (const float lane : lanes) sink += lane;
  return rounds * kStepsPerRound * kChains * 16 * 2;
}

__attribute__((target("avx2,fma"))) std::int64_t fma_rounds_avx2(std::int64_t rounds, float& sink) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(0.001F * static_cast<float>(i));
  const __m256 scale = _mm256_set1_ps(0.9999F);
  const __m256 shift = _mm256_set1_ps(0.0001F);
  for (std::int64_t step = 0; step < rounds * kStepsPerRound; ++step) {
#pragma GCC unroll 12
    for (__m256& a : acc) a = _mm256_fmadd_ps(scale, a, shift);
  }
  __m256 total = acc[0];
  for (int i = 1; i < kChains; ++i) total = _mm256_add_ps(total, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, total);
  for (const float lane : lanes) sink += lane;
  return rounds * kStepsPerRound * kChains * 8 * 2;
}
#endif

std::int64_t fma_rounds_scalar(std::int64_t rounds, float& sink) {
  float acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = 0.001F * static_cast<float>(i);
  for (std::int64_t step = 0; step < rounds * kStepsPerRound; ++step) {
    for (float& a : acc) a = a * 0.9999F + 0.0001F;
  }
  for (const float a : acc) sink += a;
  return rounds * kStepsPerRound * kChains * 2;
}

using FmaRounds = std::int64_t (*)(std::int64_t, float&);

struct Choice {
  const char* isa;
  FmaRounds run;
};

Choice widest_fma() {
#if defined(__x86_64__)
  if (has_avx512()) return {"avx512", &fma_rounds_avx512};
  if (has_avx2()) return {"avx2", &fma_rounds_avx2};
#endif
  return {"scalar", &fma_rounds_scalar};
}

}  // namespace

FmaPeak measure_fma_peak(int threads, double seconds) {
  NEEDLE_CHECK(threads >= 1, ValueError, "measure_fma_peak: threads must be at least 1, got ", threads);
  NEEDLE_CHECK(seconds > 0.0, ValueError, "measure_fma_peak: seconds must be positive, got ", seconds);
  const Choice fma = widest_fma();
  using Clock = std::chrono::steady_clock;

  // One round first, to size the measured run at about `seconds` (and to wake the core from idle clocks).
  float sink = 0.0F;
  const Clock::time_point probe_start = Clock::now();
  fma.run(1, sink);
  const double round_seconds = std::chrono::duration<double>(Clock::now() - probe_start).count();
  const auto rounds = static_cast<std::int64_t>(seconds / (round_seconds > 0.0 ? round_seconds : 1e-6)) + 1;

  // All threads start together and the rate counts until the last one ends, so a thread that shares its
  // core (or its clock budget) with another lowers the result, as it would a multi-threaded GEMM's.
  std::atomic<int> waiting{threads};
  std::vector<std::int64_t> operations(static_cast<std::size_t>(threads), 0);
  std::vector<float> sinks(static_cast<std::size_t>(threads), 0.0F);
  Clock::time_point start;
  std::vector<std::thread> workers;
  workers.reserve(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      if (waiting.fetch_sub(1) == 1) start = Clock::now();
      while (waiting.load() > 0) {
      }
      operations[static_cast<std::size_t>(t)] = fma.run(rounds, sinks[static_cast<std::size_t>(t)]);
    });
  }
  for (std::thread& worker : workers) worker.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::int64_t total = 0;
  for (const std::int64_t n : operations) total += n;
  return {fma.isa, threads, static_cast<double>(total) / elapsed / 1e9};
}

}  // namespace needle
