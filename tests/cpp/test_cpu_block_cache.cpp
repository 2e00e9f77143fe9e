// The cpu backend's cache of freed blocks: a freed large block is reused for the next request of its
// size class, small blocks bypass it, memory statistics report it and empty_cache releases it.
#include <gtest/gtest.h>

#include "backend/cpu/block_cache.h"
#include "needle/core/array_ops.h"
#include "needle/debug/memory.h"

namespace needle {
namespace {

TEST(BlockCache, SizeClassesRoundUpByAtMostAnEighth) {
  EXPECT_EQ(BlockCache::size_class(100), 100u);  // below the cached sizes: unchanged
  for (std::size_t n : {std::size_t{65536}, std::size_t{65537}, std::size_t{100000}, std::size_t{4} << 20,
                        (std::size_t{4} << 20) + 1, std::size_t{123456789}}) {
    const std::size_t size = BlockCache::size_class(n);
    EXPECT_GE(size, n);
    EXPECT_LE(size, n + n / 8) << n;
    EXPECT_EQ(BlockCache::size_class(size), size) << n;  // a class maps to itself
  }
}

TEST(BlockCache, ReusesFreedBlocksOfTheSameClass) {
  if (BlockCache::kMaxCachedBytes == 0) GTEST_SKIP() << "the cache is off under AddressSanitizer";
  BlockCache cache;
  void* first = cache.allocate(1 << 20);
  cache.deallocate(first, 1 << 20);
  EXPECT_EQ(cache.cached_bytes(), BlockCache::size_class(1 << 20));
  void* second = cache.allocate((1 << 20) - 10);  // same class
  EXPECT_EQ(second, first);
  EXPECT_EQ(cache.cached_bytes(), 0u);
  void* small = cache.allocate(1000);
  cache.deallocate(small, 1000);
  EXPECT_EQ(cache.cached_bytes(), 0u);  // small blocks go back to malloc
  cache.deallocate(second, (1 << 20) - 10);
  EXPECT_EQ(cache.release(), BlockCache::size_class(1 << 20));
  EXPECT_EQ(cache.cached_bytes(), 0u);
}

TEST(BlockCache, MemoryStatsReportTheCpuCacheAndEmptyCacheReleasesIt) {
  if (BlockCache::kMaxCachedBytes == 0) GTEST_SKIP() << "the cache is off under AddressSanitizer";
  debug::empty_cache();
  const std::size_t live_before = debug::memory_stats(cpu_device()).live_bytes;
  {
    const NDArray big = NDArray::zeros({512, 1024}, DType::Float32, cpu_device());  // 2 MiB
    EXPECT_EQ(debug::memory_stats(cpu_device()).live_bytes, live_before + 2u * 1024 * 1024);
  }
  const debug::MemoryStats after = debug::memory_stats(cpu_device());
  EXPECT_EQ(after.live_bytes, live_before);
  EXPECT_GE(after.cached_bytes, 2u * 1024 * 1024);
  EXPECT_GE(debug::empty_cache(), 2u * 1024 * 1024);
  EXPECT_EQ(debug::memory_stats(cpu_device()).cached_bytes, 0u);
}

}  // namespace
}  // namespace needle
