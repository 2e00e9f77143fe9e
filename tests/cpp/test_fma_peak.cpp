// needle::measure_fma_peak: which FMA it measures, on how many threads, and its argument checks. (Its
// number is a speed, so only its sign is a test's business; BENCHMARKS.md reports the values.)
#include <gtest/gtest.h>
#include <needle/backend/cpu.h>
#include <needle/core/error.h>

#include <string>

#include "ops_test_util.h"

namespace needle {
namespace {

std::string expected_isa() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
  return "scalar";
}

TEST(FmaPeak, MeasuresTheWidestFmaOnEachThread) {
  for (const int threads : {1, 2, 3}) {
    const FmaPeak peak = measure_fma_peak(threads, 0.01);
    EXPECT_EQ(peak.isa, expected_isa());
    EXPECT_EQ(peak.threads, threads);
    EXPECT_GT(peak.gflops, 0.0) << threads << " threads";
  }
}

TEST(FmaPeak, RejectsBadArguments) {
  testing::expect_error<ValueError>([] { (void)measure_fma_peak(0); }, "measure_fma_peak: threads");
  testing::expect_error<ValueError>([] { (void)measure_fma_peak(1, 0.0); }, "measure_fma_peak: seconds");
  testing::expect_error<ValueError>([] { (void)measure_fma_peak(1, -1.0); }, "measure_fma_peak: seconds");
}

}  // namespace
}  // namespace needle
