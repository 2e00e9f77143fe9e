// Memory statistics return to their starting values once a step's tensors are released; the peak sees
// the step; memory_summary groups live tensors by the call site that created them.
#include <gtest/gtest.h>
#include <needle/debug/debug.h>
#include <needle/needle.h>

#include <string>

#include "gradcheck.h"

namespace needle {
namespace {

using testing::random_array;

TEST(DebugMemory, StatsReturnToTheirStartAfterAStepIsReleased) {
  const Device cpu = cpu_device();
  debug::empty_cache();  // earlier tests may have left freed blocks in the cpu backend's cache
  debug::reset_peak_memory_stats(cpu);
  const debug::MemoryStats before = debug::memory_stats(cpu);
  EXPECT_EQ(before.cached_bytes, 0U);
  EXPECT_EQ(before.peak_bytes, before.live_bytes);
  std::size_t during_live = 0;
  {
    const Tensor x(random_array({32, 64}, cpu, 1), false);
    const Tensor w(random_array({64, 10}, cpu, 2), true);
    const Tensor loss = ops::summation(ops::relu(ops::matmul(x, w)));
    loss.backward();
    const debug::MemoryStats during = debug::memory_stats(cpu);
    during_live = during.live_bytes;
    // x, w and its gradient alone hold (32*64 + 2*64*10) float64 values.
    EXPECT_GE(during.live_bytes, before.live_bytes + (32 * 64 + 2 * 64 * 10) * 8U);
    EXPECT_GT(during.live_tensors, before.live_tensors);
    EXPECT_GT(during.live_arrays, before.live_arrays);
  }
  const debug::MemoryStats after = debug::memory_stats(cpu);
  EXPECT_EQ(after.live_bytes, before.live_bytes);
  EXPECT_EQ(after.live_arrays, before.live_arrays);
  EXPECT_EQ(after.live_tensors, before.live_tensors);
  EXPECT_GE(after.peak_bytes, during_live);
  debug::reset_peak_memory_stats(cpu);
  EXPECT_EQ(debug::memory_stats(cpu).peak_bytes, after.live_bytes);
  // The step's arrays are all below the cache's 64 KiB minimum: nothing was kept.
  EXPECT_EQ(after.cached_bytes, 0U);
  EXPECT_EQ(debug::empty_cache(), 0U);
}

TEST(DebugMemory, SummaryGroupsLiveTensorsByCallSite) {
  const debug::MemoryTrackingGuard tracking;
  int line_a = 0;
  int line_b = 0;
  Tensor big;
  std::vector<Tensor> small;
  {
    line_a = __LINE__ + 1;
    NEEDLE_CALL_SITE();
    big = Tensor(NDArray::zeros({1000}, DType::Float64));
  }
  {
    line_b = __LINE__ + 1;
    NEEDLE_CALL_SITE();
    for (int i = 0; i < 3; ++i) small.emplace_back(NDArray::zeros({10}, DType::Float32));
  }
  const std::string site_a = str("test_debug_memory.cpp:", line_a);
  const std::string site_b = str("test_debug_memory.cpp:", line_b);
  const auto find = [](const std::string& site) -> const debug::SiteMemory* {
    static std::vector<debug::SiteMemory> sites;
    sites = debug::memory_by_call_site();
    for (const debug::SiteMemory& s : sites) {
      if (s.call_site.find(site) != std::string::npos) return &s;
    }
    return nullptr;
  };
  const debug::SiteMemory* a = find(site_a);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->tensors, 1U);
  EXPECT_EQ(a->bytes, 8000U);
  const debug::SiteMemory* b = find(site_b);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->tensors, 3U);
  EXPECT_EQ(b->bytes, 120U);
  const std::string summary = debug::memory_summary();
  EXPECT_NE(summary.find(site_a), std::string::npos) << summary;
  EXPECT_NE(summary.find("cpu: "), std::string::npos) << summary;

  big = Tensor();
  small.clear();
  EXPECT_EQ(find(site_a), nullptr);
  EXPECT_EQ(find(site_b), nullptr);
}

}  // namespace
}  // namespace needle
