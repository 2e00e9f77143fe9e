// The thread pool: parallel_for covers every index exactly once, splits deterministically, runs nested
// calls inline, propagates exceptions, and keeps working when several threads use it at once. Then the
// cpu kernels that split large arrays over threads (element-wise, reductions) against `ref`, at 1 and
// 2 threads.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#if defined(__unix__)
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "backend_test_util.h"
#include "needle/backend/backend.h"
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
        SCOPED_TRACE(::testing::Message() << threads << " threads, size " << size << ", grain " << grain);
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
      SCOPED_TRACE(::testing::Message() << threads << " threads, failing index " << bad);
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

#if defined(__unix__)
TEST(Threads, WorksInAForkedChild) {
  const ThreadCount guard(2);
  std::atomic<std::int64_t> warm{0};
  parallel_for(0, 1000, 1, [&](std::int64_t b, std::int64_t e) { warm.fetch_add(e - b); });  // workers exist
  ASSERT_EQ(warm.load(), 1000);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The parent's workers do not exist here: the child must neither hang nor lose work.
    std::atomic<std::int64_t> sum{0};
    parallel_for(0, 100000, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) sum.fetch_add(i, std::memory_order_relaxed);
    });
    _exit(sum.load() == std::int64_t{99999} * 100000 / 2 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}
#endif

// ---- kernels split over threads -------------------------------------------------------------------

Backend& ref_backend() { return backend_for(ref_device()); }
Backend& cpu_backend() { return backend_for(cpu_device()); }

// A contiguous array of `shape` with random values in [lo, hi) (integers: whole numbers in that range).
testing::HostArray random_array(std::mt19937_64& rng, DType dtype, const Shape& shape, double lo, double hi) {
  testing::HostArray a = testing::zeros(dtype, shape);
  std::uniform_real_distribution<double> uniform(lo, hi);
  dispatch_dtype(dtype, [&]<typename T>() {
    T* data = a.view.ptr<T>();
    for (std::int64_t i = 0; i < numel(shape); ++i) data[i] = static_cast<T>(uniform(rng));
  });
  return a;
}

// Exact equality (NaN equal to NaN, zeros of the same sign), or within `tolerance`
// for float sums.
void expect_equal(const StridedView& expected, const StridedView& actual, double tolerance = 0.0) {
  ASSERT_EQ(expected.dtype, actual.dtype);
  dispatch_dtype(expected.dtype, [&]<typename T>() {
    const std::vector<T> e = testing::values_of<T>(expected);
    const std::vector<T> a = testing::values_of<T>(actual);
    ASSERT_EQ(e.size(), a.size());
    for (std::size_t i = 0; i < e.size(); ++i) {
      bool same = e[i] == a[i];
      if constexpr (std::is_floating_point_v<T>) {
        same = (same && std::signbit(e[i]) == std::signbit(a[i])) || (std::isnan(e[i]) && std::isnan(a[i])) ||
               (tolerance > 0.0 && std::abs(double(e[i]) - double(a[i])) <= tolerance);
      }
      if (!same) {
        ADD_FAILURE() << "element " << i << " of " << e.size() << ": ref " << e[i] << ", cpu " << a[i];
        return;
      }
    }
  });
}

const std::vector<Shape> kLargeShapes = {{32769}, {2, 40001}};

TEST(ParallelKernels, UnaryAndBinaryMatchRef) {
  std::mt19937_64 rng(21);
  for (int threads : {1, 2}) {
    const ThreadCount guard(threads);
    for (DType dtype : {DType::Float32, DType::Float64, DType::Int32}) {
      for (const Shape& shape : kLargeShapes) {
        SCOPED_TRACE(::testing::Message() << threads << " threads, " << dtype_name(dtype) << " " << shape_str(shape));
        const testing::HostArray a = random_array(rng, dtype, shape, -50.0, 50.0);
        const testing::HostArray b = random_array(rng, dtype, shape, -50.0, 50.0);
        const testing::HostArray scalar =
            testing::broadcast_to(random_array(rng, dtype, Shape(shape.size(), 1), 1.0, 9.0), shape);
        // Ops whose per-element arithmetic is the same scalar code in both backends, so they must agree bit for
        // bit (float32 exp and tanh are vectorised on cpu, within ulps of ref: test_cpu_vector_math.cpp).
        for (UnaryOp op : {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Relu}) {
          if (!is_floating(dtype) && op != UnaryOp::Neg && op != UnaryOp::Abs) continue;
          testing::HostArray out_ref = testing::zeros(dtype, shape);
          testing::HostArray out_cpu = testing::zeros(dtype, shape);
          ref_backend().unary(op, out_ref.view, a.view);
          cpu_backend().unary(op, out_cpu.view, a.view);
          expect_equal(out_ref.view, out_cpu.view);
        }
        for (BinaryOp op : {BinaryOp::Add, BinaryOp::Mul, BinaryOp::Maximum}) {
          for (const auto& [x, y] : {std::pair{&a, &b}, std::pair{&scalar, &b}, std::pair{&a, &scalar}}) {
            testing::HostArray out_ref = testing::zeros(dtype, shape);
            testing::HostArray out_cpu = testing::zeros(dtype, shape);
            ref_backend().binary(op, out_ref.view, x->view, y->view);
            cpu_backend().binary(op, out_cpu.view, x->view, y->view);
            expect_equal(out_ref.view, out_cpu.view);
          }
        }
        testing::HostArray cast_ref = testing::zeros(DType::Float64, shape);
        testing::HostArray cast_cpu = testing::zeros(DType::Float64, shape);
        ref_backend().copy(cast_ref.view, a.view);
        cpu_backend().copy(cast_cpu.view, a.view);
        expect_equal(cast_ref.view, cast_cpu.view);
      }
    }
  }
}

TEST(ParallelKernels, ReductionsMatchRef) {
  std::mt19937_64 rng(22);
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int64}) {
    for (const Shape& shape : {Shape{300007}, Shape{3, 70001}, Shape{1000, 67}, Shape{40000, 2}}) {
      const testing::HostArray in = random_array(rng, dtype, shape, -1000.0, 1000.0);
      // Reduce the last axis, and every axis.
      for (bool everything : {false, true}) {
        Shape reduced = shape;
        reduced.back() = 1;
        if (everything) std::fill(reduced.begin(), reduced.end(), 1);
        const std::int64_t count = numel(shape) / numel(reduced);
        std::vector<std::vector<double>> sums;
        for (int threads : {1, 2}) {
          const ThreadCount guard(threads);
          SCOPED_TRACE(::testing::Message() << threads << " threads, " << dtype_name(dtype) << " " << shape_str(shape)
                                            << " -> " << shape_str(reduced));
          for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
            testing::HostArray out_ref = testing::zeros(dtype, reduced);
            testing::HostArray out_cpu = testing::zeros(dtype, reduced);
            ref_backend().reduce(op, out_ref.view, in.view);
            cpu_backend().reduce(op, out_cpu.view, in.view);
            // Float sums are reordered. Both orders stay within a few eps * max|x| * count of the exact sum
            // (errors of random signs grow like a random walk); one lost element (|x| ~ 500) would not.
            const double eps = dtype == DType::Float32 ? 1.2e-7 : 2.3e-16;
            const double tolerance =
                is_floating(dtype) && op == ReduceOp::Sum ? 4.0 * eps * 1000.0 * static_cast<double>(count) : 0.0;
            expect_equal(out_ref.view, out_cpu.view, tolerance);
            if (op == ReduceOp::Sum && is_floating(dtype)) {
              std::vector<double> values;
              dispatch_dtype(dtype, [&]<typename T>() {
                for (T v : testing::values_of<T>(out_cpu.view)) values.push_back(static_cast<double>(v));
              });
              sums.push_back(values);
            }
          }
        }
        // The blocks of a long sum do not depend on the thread count.
        if (sums.size() == 2) {
          EXPECT_TRUE(sums[0] == sums[1]);
        }
      }
    }
  }
}

}  // namespace
}  // namespace needle
