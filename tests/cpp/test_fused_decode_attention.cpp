// The decode attention kernel (one query row against a cache prefix read in place): ref against the full
// attention kernel on a compacted copy, the cpu kernel (1 and 2 threads) and the Backend base-class default
// against ref on many shapes and cache strides, bad operands, and the array function.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

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
using testing::random_array;
using testing::ref_backend;

double tolerance_for(DType dtype) { return dtype == DType::Float32 ? 2e-5 : 1e-11; }

// One decode problem: B query rows (d), and a cache of `capacity` rows per problem whose first `keys` are
// read, keys of width d and values of width dv.
struct Problem {
  std::int64_t batch;
  std::int64_t keys;
  std::int64_t capacity;
  std::int64_t dim;
  std::int64_t value_dim;
};

std::string problem_str(const Problem& p, DType dtype) {
  return str("B ", p.batch, " S ", p.keys, " capacity ", p.capacity, " d ", p.dim, " dv ", p.value_dim, " ",
             dtype_name(dtype));
}

struct Operands {
  NDArray q;        // (B, d)
  NDArray k_cache;  // (B, capacity, d)
  NDArray v_cache;  // (B, capacity, dv)
  // The prefixes (B, S, d) and (B, S, dv): views into the caches with the caches' strides.
  [[nodiscard]] NDArray k(std::int64_t keys) const {
    return k_cache.index({IndexItem::range(), IndexItem::range(0, keys), IndexItem::range()});
  }
  [[nodiscard]] NDArray v(std::int64_t keys) const {
    return v_cache.index({IndexItem::range(), IndexItem::range(0, keys), IndexItem::range()});
  }
};

Operands make_operands(const Problem& p, DType dtype, std::uint64_t seed) {
  return {random_array({p.batch, p.dim}, cpu_device(), seed, -1.5, 1.5).astype(dtype),
          random_array({p.batch, p.capacity, p.dim}, cpu_device(), seed + 1, -1.5, 1.5).astype(dtype),
          random_array({p.batch, p.capacity, p.value_dim}, cpu_device(), seed + 2, -1.0, 1.0).astype(dtype)};
}

double scale_of(const Problem& p) { return 1.0 / std::sqrt(static_cast<double>(std::max<std::int64_t>(p.dim, 1))); }

// out (B, dv) by `backend`'s kernel (or its base-class default), starting as NaN so a missed element shows.
NDArray run_kernel(Backend& backend, const Problem& p, const Operands& in, bool base_default = false) {
  NDArray out = NDArray::full({p.batch, p.value_dim}, Scalar(std::numeric_limits<double>::quiet_NaN()), in.q.dtype(),
                              cpu_device());
  const NDArray k = in.k(p.keys);
  const NDArray v = in.v(p.keys);
  if (base_default) {
    backend.composed_decode_attention(out.view(), in.q.view(), k.view(), v.view(), scale_of(p));
  } else {
    backend.decode_attention(out.view(), in.q.view(), k.view(), v.view(), scale_of(p));
  }
  return out;
}

std::vector<Problem> problems() {
  std::vector<Problem> out;
  for (const std::int64_t keys : {1, 2, 7, 16, 17, 64, 65, 300}) {
    out.push_back({4, keys, keys, 8, 8});        // the prefix is the whole cache (contiguous)
    out.push_back({3, keys, keys + 13, 16, 5});  // a prefix of a longer cache (strided rows)
  }
  for (const std::int64_t dim : {0, 1, 15, 16, 17, 64}) {
    for (const std::int64_t value_dim : {0, 1, 17, 64}) out.push_back({2, 33, 40, dim, value_dim});
  }
  out.push_back({0, 5, 5, 8, 8});
  out.push_back({1, 1, 1, 1, 1});
  return out;
}

// ref's plain loops against the full attention kernel (itself tested against the formula) on compacted
// copies of the prefixes: one query row, no mask.
TEST(DecodeAttentionRefKernel, MatchesTheAttentionKernelOnACompactedPrefix) {
  std::uint64_t seed = 10;
  for (const Problem& p : problems()) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const Operands in = make_operands(p, dtype, seed++);
      const NDArray actual = run_kernel(ref_backend(), p, in);
      const AttentionResult full =
          attention(in.q.reshape({p.batch, 1, p.dim}).to(ref_device()), in.k(p.keys).compact().to(ref_device()),
                    in.v(p.keys).compact().to(ref_device()), scale_of(p), false);
      expect_close(host(actual), host(full.out), tolerance_for(dtype), problem_str(p, dtype));
    }
  }
}

class ThreadCount {
 public:
  ThreadCount() : threads_(get_num_threads()) {}
  ~ThreadCount() { set_num_threads(threads_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int threads_;
};

TEST(DecodeAttentionCpuKernel, MatchesRefOnEveryShapeDtypeAndThreadCount) {
  const ThreadCount restore;
  std::uint64_t seed = 200;
  for (const Problem& p : problems()) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const Operands in = make_operands(p, dtype, seed++);
      const NDArray expected = run_kernel(ref_backend(), p, in);
      std::vector<double> first;
      for (const int threads : {1, 2}) {
        set_num_threads(threads);
        const std::string what = str(problem_str(p, dtype), " threads ", threads);
        const std::vector<double> actual = host(run_kernel(cpu_backend(), p, in));
        expect_close(actual, host(expected), tolerance_for(dtype), what);
        // Each problem is computed by one thread in a fixed order.
        if (threads == 1) first = actual;
        if (threads == 2) {
          EXPECT_EQ(actual, first) << what;
        }
      }
    }
  }
}

TEST(DecodeAttentionBaseDefault, MatchesRefOnTheCpuAndRefBackends) {
  std::uint64_t seed = 400;
  for (const Problem& p : problems()) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const Operands in = make_operands(p, dtype, seed++);
      const NDArray expected = run_kernel(ref_backend(), p, in);
      for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
        expect_close(host(run_kernel(*backend, p, in, /*base_default=*/true)), host(expected), tolerance_for(dtype),
                     str(problem_str(p, dtype), " default on ", backend->name()));
      }
    }
  }
}

TEST(DecodeAttentionKernel, RejectsBadOperands) {
  const NDArray q = NDArray::ones({2, 4}, DType::Float64, cpu_device());
  const NDArray k = NDArray::ones({2, 5, 4}, DType::Float64, cpu_device());
  const NDArray v = NDArray::ones({2, 5, 6}, DType::Float64, cpu_device());
  NDArray out = NDArray::empty({2, 6}, DType::Float64, cpu_device());
  const NDArray no_keys = NDArray::ones({2, 0, 4}, DType::Float64, cpu_device());
  const NDArray no_values = NDArray::ones({2, 0, 6}, DType::Float64, cpu_device());
  const NDArray wide_k = NDArray::ones({2, 5, 3}, DType::Float64, cpu_device());
  const NDArray k32 = NDArray::ones({2, 5, 4}, DType::Float32, cpu_device());
  const NDArray column_k = NDArray::ones({2, 4, 5}, DType::Float64, cpu_device()).swapaxes(1, 2);
  for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
    const auto run = [&](const NDArray& k_in, const NDArray& v_in) {
      backend->decode_attention(out.view(), q.view(), k_in.view(), v_in.view(), 0.5);
    };
    testing::expect_error<RuntimeError>([&] { run(wide_k, v); }, "decode_attention: k has shape");
    testing::expect_error<RuntimeError>([&] { run(no_keys, no_values); }, "at least one cached key");
    testing::expect_error<RuntimeError>([&] { run(k32, v); }, "dtype");
    testing::expect_error<RuntimeError>([&] { run(column_k, v); }, "unit last stride");
  }
}

// The array function reads row-strided prefixes in place, compacts other layouts, and names itself in errors.
TEST(DecodeAttentionArrayFunction, MatchesRefForInPlaceAndCompactedLayoutsAndRejectsBadShapes) {
  const Problem p{3, 9, 12, 8, 8};
  const Operands in = make_operands(p, DType::Float64, 900);
  const NDArray expected = run_kernel(ref_backend(), p, in);
  const NDArray in_place = decode_attention(in.q, in.k(p.keys), in.v(p.keys), scale_of(p));
  expect_close(host(in_place), host(expected), 1e-11, "prefix read in place");
  // Keys stored transposed (B, d, S) and viewed as (B, S, d): the function compacts them first.
  const NDArray transposed = in.k(p.keys).swapaxes(1, 2).compact().swapaxes(1, 2);
  const NDArray compacted = decode_attention(in.q, transposed, in.v(p.keys), scale_of(p));
  expect_close(host(compacted), host(expected), 1e-11, "keys compacted");
  testing::expect_error<ValueError>([&] { (void)decode_attention(in.q, in.k(0), in.v(0), 1.0); },
                                    "decode_attention: expected q (B, d)");
  testing::expect_error<ValueError>(
      [&] {
        (void)decode_attention(in.q.reshape({3, 1, 8}), in.k(p.keys), in.v(p.keys), 1.0);
      },
      "got shapes (3, 1, 8)");
}

}  // namespace
}  // namespace needle
