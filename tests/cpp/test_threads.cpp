// The thread pool: parallel_for covers every index exactly once, splits deterministically, runs nested
// calls inline, propagates exceptions, and keeps working when several threads use it at once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "needle/core/error.h"
#include "needle/core/threads.h"

namespace needle {
namespace {

// Sets the thread count for one test and restores the previous one.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : previous_(get_num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(previous_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int previous_;
};

using Chunks = std::set<std::pair<std::int64_t, std::int64_t>>;

Chunks chunks_of(std::int64_t begin, std::int64_t end, std::int64_t grain) {
  std::mutex mutex;
  Chunks chunks;
  parallel_for(begin, end, grain, [&](std::int64_t b, std::int64_t e) {
    const std::lock_guard<std::mutex> lock(mutex);
    chunks.emplace(b, e);
  });
  return chunks;
}

TEST(Threads, SetAndGet) {
  const ThreadCount guard(3);
  EXPECT_EQ(get_num_threads(), 3);
  set_num_threads(1);
  EXPECT_EQ(get_num_threads(), 1);
}

TEST(Threads, RejectsBadCounts) {
  const int before = get_num_threads();
  for (int bad : {0, -1, 100000}) {
    try {
      set_num_threads(bad);
      ADD_FAILURE() << "set_num_threads(" << bad << ") did not throw";
    } catch (const ValueError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("set_num_threads", 0), 0U) << e.what();
    }
  }
  EXPECT_EQ(get_num_threads(), before);
}

TEST(Threads, EveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 8}) {
    const ThreadCount guard(threads);
    for (std::int64_t size : {0, 1, 2, 7, 64, 1000, 100003}) {
      for (std::int64_t grain : {1, 3, 64, 5000}) {
        SCOPED_TRACE(testing::Message() << threads << " threads, size " << size << ", grain " << grain);
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(size));
        const std::int64_t offset = -17;  // ranges need not start at 0
        parallel_for(offset, offset + size, grain, [&](std::int64_t b, std::int64_t e) {
          ASSERT_LE(offset, b);
          ASSERT_LE(b, e);
          ASSERT_LE(e, offset + size);
          for (std::int64_t i = b; i < e; ++i) hits[static_cast<std::size_t>(i - offset)].fetch_add(1);
        });
        for (std::int64_t i = 0; i < size; ++i) ASSERT_EQ(hits[static_cast<std::size_t>(i)].load(), 1) << i;
      }
    }
  }
}

TEST(Threads, ChunksAreDeterministic) {
  for (int threads : {1, 2, 4}) {
    const ThreadCount guard(threads);
    for (std::int64_t size : {1, 10, 1001}) {
      for (std::int64_t grain : {1, 7, 400}) {
        const Chunks first = chunks_of(5, 5 + size, grain);
        // The count follows the documented rule; sizes differ by at most one.
        const std::int64_t pieces = (size + grain - 1) / grain;
        EXPECT_EQ(static_cast<std::int64_t>(first.size()), std::min<std::int64_t>(threads, pieces));
        std::int64_t smallest = size;
        std::int64_t largest = 0;
        for (const auto& [b, e] : first) {
          smallest = std::min(smallest, e - b);
          largest = std::max(largest, e - b);
        }
        EXPECT_LE(largest - smallest, 1);
        for (int repeat = 0; repeat < 5; ++repeat) EXPECT_EQ(chunks_of(5, 5 + size, grain), first);
      }
    }
  }
}

TEST(Threads, OneThreadRunsOnTheCaller) {
  const ThreadCount guard(1);
  const std::thread::id caller = std::this_thread::get_id();
  parallel_for(0, 1000, 1, [&](std::int64_t b, std::int64_t e) {
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 1000);
    EXPECT_EQ(std::this_thread::get_id(), caller);
  });
}

TEST(Threads, UsesSeveralThreadsWhenAllowed) {
  const ThreadCount guard(2);
  // Each chunk waits (bounded) until the other has started: both run at once only with two threads.
  // The caller claims chunks too, so this cannot hang even if the worker were slow to start.
  std::atomic<int> started{0};
  std::atomic<int> overlapped{0};
  for (int attempt = 0; attempt < 20 && overlapped.load() == 0; ++attempt) {
    started = 0;
    parallel_for(0, 2, 1, [&](std::int64_t, std::int64_t) {
      started.fetch_add(1);
      for (int spin = 0; spin < 2000000 && started.load() < 2; ++spin) std::this_thread::yield();
      if (started.load() == 2) overlapped.fetch_add(1);
    });
  }
  EXPECT_GT(overlapped.load(), 0);
}

TEST(Threads, NestedCallsRunInline) {
  for (int threads : {1, 2}) {
    const ThreadCount guard(threads);
    std::vector<std::atomic<int>> hits(64 * 64);
    parallel_for(0, 64, 1, [&](std::int64_t b, std::int64_t e) {
      EXPECT_TRUE(threads == 1 || in_parallel_region());
      for (std::int64_t i = b; i < e; ++i) {
        const std::thread::id outer = std::this_thread::get_id();
        parallel_for(0, 64, 1, [&](std::int64_t b2, std::int64_t e2) {
          if (threads > 1) {
            EXPECT_EQ(std::this_thread::get_id(), outer);  // inline: no deadlock waiting on the pool
            EXPECT_EQ(b2, 0);
            EXPECT_EQ(e2, 64);
          }
          for (std::int64_t j = b2; j < e2; ++j) hits[static_cast<std::size_t>(i * 64 + j)].fetch_add(1);
        });
      }
    });
    for (const auto& h : hits) ASSERT_EQ(h.load(), 1);
    EXPECT_FALSE(in_parallel_region());
  }
}

TEST(Threads, ExceptionsPropagate) {
  for (int threads : {1, 2}) {
    const ThreadCount guard(threads);
    for (std::int64_t bad : {0, 499, 999}) {
      SCOPED_TRACE(testing::Message() << threads << " threads, failing index " << bad);
      EXPECT_THROW(parallel_for(0, 1000, 1,
                                [&](std::int64_t b, std::int64_t e) {
                                  if (b <= bad && bad < e) throw ValueError("chunk failed");
                                }),
                   ValueError);
      EXPECT_FALSE(in_parallel_region());
      // The pool still works afterwards.
      std::atomic<std::int64_t> sum{0};
      parallel_for(0, 1000, 1, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) sum.fetch_add(i);
      });
      EXPECT_EQ(sum.load(), 999 * 1000 / 2);
    }
  }
}

TEST(Threads, ManyCallersAtOnce) {
  const ThreadCount guard(2);
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&failures, c] {
      for (int round = 0; round < 200; ++round) {
        const std::int64_t size = 100 + c * 37 + round;
        std::vector<int> hits(static_cast<std::size_t>(size), 0);
        parallel_for(0, size, 1, [&](std::int64_t b, std::int64_t e) {
          for (std::int64_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(i)];
        });
        for (int h : hits) {
          if (h != 1) failures.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace needle
