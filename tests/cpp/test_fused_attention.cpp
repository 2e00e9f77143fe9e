// The fused attention kernels and op: the ref kernels against the formula composed from array functions,
// the cpu kernels (1 and 2 threads) and the Backend base-class defaults against the ref kernels on many
// shapes, bad operands, and the op (fused and composed paths) against the composed formula, with
// gradients and second gradients against finite differences and the transformer layer against the
// composed attention.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
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

using testing::expect_gradients_match;
using testing::expect_second_gradients_match;
using testing::random_array;
using V = std::vector<Tensor>;

double tolerance_for(DType dtype) { return dtype == DType::Float32 ? 2e-5 : 1e-11; }

struct Problem {
  std::int64_t batch;
  std::int64_t queries;
  std::int64_t keys;
  std::int64_t dim;
  std::int64_t value_dim;
};

std::string problem_str(const Problem& p, bool causal, DType dtype) {
  return str("B ", p.batch, " L ", p.queries, " S ", p.keys, " d ", p.dim, " dv ", p.value_dim,
             causal ? " causal " : " ", dtype_name(dtype));
}

// Random operands of one problem (q, k, v, and an output gradient g) on the host.
struct Operands {
  NDArray q, k, v, g;
};

Operands make_operands(const Problem& p, DType dtype, std::uint64_t seed) {
  // Scores of a few units, so the softmax is neither flat nor one-hot.
  return {random_array({p.batch, p.queries, p.dim}, cpu_device(), seed, -1.5, 1.5).astype(dtype),
          random_array({p.batch, p.keys, p.dim}, cpu_device(), seed + 1, -1.5, 1.5).astype(dtype),
          random_array({p.batch, p.keys, p.value_dim}, cpu_device(), seed + 2, -1.0, 1.0).astype(dtype),
          random_array({p.batch, p.queries, p.value_dim}, cpu_device(), seed + 3, -1.0, 1.0).astype(dtype)};
}

double scale_of(const Problem& p) { return 1.0 / std::sqrt(static_cast<double>(std::max<std::int64_t>(p.dim, 1))); }

struct Results {
  NDArray out, logsumexp, dq, dk, dv;
};

// The forward, then the backward from its out and logsumexp, by `backend` (or its base-class defaults).
Results run_kernels(Backend& backend, const Problem& p, const Operands& in, bool causal, bool base_default = false) {
  const DType dtype = in.q.dtype();
  // Outputs start as NaN so that any element a kernel forgets to write shows.
  const auto blank = [&](const Shape& shape) {
    return NDArray::full(shape, Scalar(std::numeric_limits<double>::quiet_NaN()), dtype, cpu_device());
  };
  Results r{blank({p.batch, p.queries, p.value_dim}), blank({p.batch, p.queries}), blank(in.q.shape()),
            blank(in.k.shape()), blank(in.v.shape())};
  const double scale = scale_of(p);
  if (base_default) {
    backend.composed_attention(r.out.view(), r.logsumexp.view(), in.q.view(), in.k.view(), in.v.view(), scale, causal);
    backend.composed_attention_backward(r.dq.view(), r.dk.view(), r.dv.view(), in.g.view(), in.q.view(), in.k.view(),
                                        in.v.view(), r.out.view(), r.logsumexp.view(), scale, causal);
  } else {
    backend.attention(r.out.view(), r.logsumexp.view(), in.q.view(), in.k.view(), in.v.view(), scale, causal);
    backend.attention_backward(r.dq.view(), r.dk.view(), r.dv.view(), in.g.view(), in.q.view(), in.k.view(),
                               in.v.view(), r.out.view(), r.logsumexp.view(), scale, causal);
  }
  return r;
}

void expect_results_close(const Results& actual, const Results& expected, double tolerance, const std::string& what) {
  expect_close(host(actual.out), host(expected.out), tolerance, what + " out");
  expect_close(host(actual.logsumexp), host(expected.logsumexp), tolerance, what + " logsumexp");
  expect_close(host(actual.dq), host(expected.dq), tolerance, what + " dq");
  expect_close(host(actual.dk), host(expected.dk), tolerance, what + " dk");
  expect_close(host(actual.dv), host(expected.dv), tolerance, what + " dv");
}

// The (L, S) mask of visible keys: key j is visible to query i iff j <= i (or always without `causal`).
NDArray visible_mask(std::int64_t queries, std::int64_t keys, bool causal) {
  const NDArray rows = NDArray::arange(queries, DType::Int64, cpu_device()).reshape({queries, 1});
  const NDArray cols = NDArray::arange(keys, DType::Int64, cpu_device()).reshape({1, keys});
  return causal ? le(cols, rows) : NDArray::ones({queries, keys}, DType::Bool, cpu_device());
}

// ---- ref kernels against the composed formula -----------------------------------------------------

TEST(FusedAttentionRefKernels, MatchTheFormulaComposedFromArrayFunctions) {
  for (const bool causal : {false, true}) {
    // L > S and L < S: the causal mask stays top-left aligned.
    for (const Problem& p : std::vector<Problem>{{2, 5, 5, 3, 4}, {3, 7, 4, 2, 3}, {1, 3, 6, 4, 2}}) {
      const std::string what = problem_str(p, causal, DType::Float64);
      const Operands in = make_operands(p, DType::Float64, 7);
      const double scale = scale_of(p);
      const NDArray mask = visible_mask(p.queries, p.keys, causal).broadcast_to({p.batch, p.queries, p.keys});
      const NDArray neg_inf =
          NDArray::full({}, Scalar(-std::numeric_limits<double>::infinity()), DType::Float64, cpu_device());
      const NDArray s = where(mask, matmul(in.q, in.k.swapaxes(1, 2)) * Scalar(scale), neg_inf);
      const NDArray largest = max(s, {2}, true);
      const NDArray lse = largest + log(sum(exp(s - largest), {2}, true));
      const NDArray probs = exp(s - lse);
      const NDArray out = matmul(probs, in.v);
      const NDArray dp = matmul(in.g, in.v.swapaxes(1, 2));
      const NDArray ds = probs * (dp - sum(in.g * out, {2}, true)) * Scalar(scale);
      const Results expected{out, lse.reshape({p.batch, p.queries}), matmul(ds, in.k), matmul(ds.swapaxes(1, 2), in.q),
                             matmul(probs.swapaxes(1, 2), in.g)};
      expect_results_close(run_kernels(ref_backend(), p, in, causal), expected, 1e-12, what);
    }
  }
}

TEST(FusedAttentionRefKernels, GiveZeroOutputAndMinusInfinityWithoutKeys) {
  const Problem p{2, 3, 0, 4, 5};
  const Operands in = make_operands(p, DType::Float64, 9);
  for (Backend* backend : {&ref_backend(), &cpu_backend()}) {
    for (const bool base_default : {false, true}) {
      const Results r = run_kernels(*backend, p, in, false, base_default);
      for (const double x : host(r.out)) EXPECT_EQ(x, 0.0) << backend->name();
      for (const double x : host(r.logsumexp)) EXPECT_EQ(x, -std::numeric_limits<double>::infinity());
      for (const double x : host(r.dq)) EXPECT_EQ(x, 0.0) << backend->name();
    }
  }
}

// ---- cpu kernels and base-class defaults against ref ---------------------------------------------

// Restores the thread count at the end of a test.
class ThreadCount {
 public:
  ThreadCount() : threads_(get_num_threads()) {}
  ~ThreadCount() { set_num_threads(threads_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int threads_;
};

TEST(FusedAttentionCpuKernels, MatchRefOnEveryShapeDtypeThreadCountAndBuild) {
  const ThreadCount restore;
  std::vector<Problem> problems;
  const std::vector<std::int64_t> lengths = {1, 7, 8, 9, 33, 64, 65, 130, 257};
  // Every (L, S) pair with small head dimensions, and the head dimensions on a few lengths.
  for (const std::int64_t queries : lengths) {
    for (const std::int64_t keys : lengths) problems.push_back({1, queries, keys, 8, 17});
  }
  for (const std::int64_t dim : {1, 8, 17, 32, 64}) {
    for (const std::int64_t value_dim : {1, 8, 17, 32, 64}) problems.push_back({3, 65, 33, 0 + dim, value_dim});
    problems.push_back({3, 130, 130, dim, dim});
  }
  problems.push_back({0, 9, 9, 8, 8});
  problems.push_back({0, 0, 0, 8, 8});
  problems.push_back({3, 0, 7, 8, 8});
  std::uint64_t seed = 100;
  for (const Problem& p : problems) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const Operands in = make_operands(p, dtype, seed++);
      for (const bool causal : {false, true}) {
        const Results expected = run_kernels(ref_backend(), p, in, causal);
        Results first;
        for (const int run : {0, 1, 2}) {
          // 1 and 2 threads, then 1 thread on the baseline build of the tile loops.
          const int threads = run == 1 ? 2 : 1;
          set_num_threads(threads);
          cpu::set_attention_portable(run == 2);
          const std::string what =
              str(problem_str(p, causal, dtype), " threads ", threads, run == 2 ? " portable" : "");
          const Results actual = run_kernels(cpu_backend(), p, in, causal);
          cpu::set_attention_portable(false);
          expect_results_close(actual, expected, tolerance_for(dtype), what);
          // Each output element is computed by one thread in a fixed order, the same in both builds.
          if (run == 0) first = actual;
          if (run > 0) {
            EXPECT_EQ(host(actual.out), host(first.out)) << what;
            EXPECT_EQ(host(actual.dq), host(first.dq)) << what;
            EXPECT_EQ(host(actual.dk), host(first.dk)) << what;
            EXPECT_EQ(host(actual.dv), host(first.dv)) << what;
          }
        }
      }
    }
  }
}

TEST(FusedAttentionBaseDefaults, MatchRefOnTheCpuAndRefBackends) {
  std::uint64_t seed = 500;
  for (const Problem& p : std::vector<Problem>{{1, 1, 1, 1, 1},
                                               {3, 9, 7, 8, 17},
                                               {2, 7, 9, 17, 8},
                                               {1, 65, 65, 32, 32},
                                               {0, 4, 4, 2, 2},
                                               {2, 0, 3, 2, 2}}) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const Operands in = make_operands(p, dtype, seed++);
      for (const bool causal : {false, true}) {
        const Results expected = run_kernels(ref_backend(), p, in, causal);
        for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
          expect_results_close(run_kernels(*backend, p, in, causal, /*base_default=*/true), expected,
                               tolerance_for(dtype),
                               str(problem_str(p, causal, dtype), " default on ", backend->name()));
        }
      }
    }
  }
}

// A (B, R, C) operand as one head of each of the B heads of an (R, B, C + 3) buffer: the (B, R, C) view has
// batch stride C + 3 and row stride B * (C + 3), as the heads of a projection have, and three values after
// each row that belong to no operand. The buffer starts as `fill`; `values`, when given, is copied in.
struct HeadsView {
  NDArray buffer;
  NDArray view;
};
HeadsView heads_view(const Shape& shape, DType dtype, double fill, const NDArray* values = nullptr) {
  NDArray buffer = NDArray::full({shape[1], shape[0], shape[2] + 3}, Scalar(fill), dtype, cpu_device());
  NDArray view = buffer.index({IndexItem::range(), IndexItem::range(), IndexItem::range(0, shape[2])}).swapaxes(0, 1);
  if (values != nullptr) view.assign(*values);
  return {buffer, view};
}

TEST(FusedAttentionKernels, ReadAndWriteHeadsWhereTheyLie) {
  // Every operand but the logsumexp strided like the heads of a projection: the cpu kernels (1 and 2
  // threads), ref and the composed defaults against ref on compact copies, and no value outside the
  // written views touched (the padding after each row stays NaN).
  const ThreadCount restore;
  std::uint64_t seed = 900;
  for (const Problem& p : std::vector<Problem>{{3, 9, 7, 8, 5}, {4, 65, 130, 16, 16}, {2, 1, 1, 1, 1}}) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const Operands compact = make_operands(p, dtype, seed++);
      const double nan = std::numeric_limits<double>::quiet_NaN();
      const HeadsView q = heads_view(compact.q.shape(), dtype, 0.0, &compact.q);
      const HeadsView k = heads_view(compact.k.shape(), dtype, 0.0, &compact.k);
      const HeadsView v = heads_view(compact.v.shape(), dtype, 0.0, &compact.v);
      const HeadsView g = heads_view(compact.g.shape(), dtype, 0.0, &compact.g);
      for (const bool causal : {false, true}) {
        const Results expected = run_kernels(ref_backend(), p, compact, causal);
        for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
          for (const bool base_default : {false, true}) {
            for (const int threads : {1, 2}) {
              set_num_threads(threads);
              const std::string what = str(problem_str(p, causal, dtype), " on ", backend->name(),
                                           base_default ? " (default)" : "", " threads ", threads);
              const HeadsView out = heads_view({p.batch, p.queries, p.value_dim}, dtype, nan);
              const HeadsView dq = heads_view(compact.q.shape(), dtype, nan);
              const HeadsView dk = heads_view(compact.k.shape(), dtype, nan);
              const HeadsView dv = heads_view(compact.v.shape(), dtype, nan);
              NDArray lse = NDArray::full({p.batch, p.queries}, Scalar(nan), dtype, cpu_device());
              const double scale = scale_of(p);
              if (base_default) {
                backend->composed_attention(out.view.view(), lse.view(), q.view.view(), k.view.view(), v.view.view(),
                                            scale, causal);
                backend->composed_attention_backward(dq.view.view(), dk.view.view(), dv.view.view(), g.view.view(),
                                                     q.view.view(), k.view.view(), v.view.view(), out.view.view(),
                                                     lse.view(), scale, causal);
              } else {
                backend->attention(out.view.view(), lse.view(), q.view.view(), k.view.view(), v.view.view(), scale,
                                   causal);
                backend->attention_backward(dq.view.view(), dk.view.view(), dv.view.view(), g.view.view(),
                                            q.view.view(), k.view.view(), v.view.view(), out.view.view(), lse.view(),
                                            scale, causal);
              }
              expect_results_close({out.view, lse, dq.view, dk.view, dv.view}, expected, tolerance_for(dtype), what);
              for (const HeadsView* written : {&out, &dq, &dk, &dv}) {
                const std::int64_t width = written->buffer.shape()[2];
                for (const double x : host(written->buffer.index(
                         {IndexItem::range(), IndexItem::range(), IndexItem::range(width - 3, width)}))) {
                  ASSERT_TRUE(std::isnan(x)) << what << ": a kernel wrote past the end of a row";
                }
              }
            }
          }
        }
      }
    }
  }
}

// The array functions on the heads of (batch, length, heads, d) projections, whose batch axes do not merge:
// the kernels walk the longer batch axis (the sequences of 5 > 3 heads, or the 6 > 2 heads of a sequence),
// one call per index of the other. Each problem is computed as on compact copies (one call for all), to
// the bit, on both devices and thread counts, and the backward takes the forward's logsumexp in any layout.
TEST(FusedAttentionArrayFunctions, HeadsInPlaceMatchCompactCopiesWhicheverBatchAxisIsWalked) {
  const ThreadCount restore;
  std::uint64_t seed = 1300;
  for (const auto& [batch, heads] : std::vector<std::pair<std::int64_t, std::int64_t>>{{5, 3}, {2, 6}}) {
    for (const Device device : {cpu_device(), ref_device()}) {
      for (const int threads : {1, 2}) {
        set_num_threads(threads);
        const auto projection_heads = [&](std::int64_t length, std::int64_t dim) {
          return random_array({batch, length, heads, dim}, device, ++seed).permute({0, 2, 1, 3});
        };
        const NDArray q = projection_heads(70, 8);
        const NDArray k = projection_heads(70, 8);
        const NDArray v = projection_heads(70, 5);
        const NDArray g = projection_heads(70, 5);
        const std::string what = str("batch ", batch, " heads ", heads, " on ", device.name(), " threads ", threads);
        const AttentionResult strided = attention(q, k, v, 0.3, /*causal=*/true);
        const AttentionResult compact = attention(q.compact(), k.compact(), v.compact(), 0.3, /*causal=*/true);
        EXPECT_EQ(host(strided.out), host(compact.out)) << what;
        EXPECT_EQ(host(strided.logsumexp), host(compact.logsumexp)) << what;
        const AttentionGrads from_strided = attention_backward(g, q, k, v, strided, 0.3, /*causal=*/true);
        const AttentionGrads from_compact =
            attention_backward(g.compact(), q.compact(), k.compact(), v.compact(), compact, 0.3, /*causal=*/true);
        // The strided operands with the compact copies' logsumexp, laid out for one call.
        const AttentionGrads mixed =
            attention_backward(g, q, k, v, {strided.out, compact.logsumexp.compact()}, 0.3, /*causal=*/true);
        for (const AttentionGrads* grads : {&from_strided, &mixed}) {
          EXPECT_EQ(host(grads->dq), host(from_compact.dq)) << what;
          EXPECT_EQ(host(grads->dk), host(from_compact.dk)) << what;
          EXPECT_EQ(host(grads->dv), host(from_compact.dv)) << what;
        }
      }
    }
  }
}

TEST(FusedAttentionKernels, RejectBadOperands) {
  const NDArray q = NDArray::ones({2, 3, 4}, DType::Float64, cpu_device());
  const NDArray k = NDArray::ones({2, 5, 4}, DType::Float64, cpu_device());
  const NDArray v = NDArray::ones({2, 5, 6}, DType::Float64, cpu_device());
  NDArray out = NDArray::empty({2, 3, 6}, DType::Float64, cpu_device());
  NDArray lse = NDArray::empty({2, 3}, DType::Float64, cpu_device());
  const NDArray bad_k = NDArray::ones({2, 5, 3}, DType::Float64, cpu_device());
  const NDArray q32 = NDArray::ones({2, 3, 4}, DType::Float32, cpu_device());
  const NDArray ints = NDArray::ones({2, 3, 4}, DType::Int64, cpu_device());
  NDArray wrong_lse = NDArray::empty({2, 4}, DType::Float64, cpu_device());
  const NDArray strided_q = NDArray::ones({2, 4, 3}, DType::Float64, cpu_device()).swapaxes(1, 2);
  for (Backend* backend : {&cpu_backend(), &ref_backend()}) {
    for (const bool base_default : {false, true}) {
      const auto forward = [&](const NDArray& q_in, const NDArray& k_in, NDArray& lse_out) {
        if (base_default) {
          backend->composed_attention(out.view(), lse_out.view(), q_in.view(), k_in.view(), v.view(), 0.5, false);
        } else {
          backend->attention(out.view(), lse_out.view(), q_in.view(), k_in.view(), v.view(), 0.5, false);
        }
      };
      testing::expect_error<RuntimeError>([&] { forward(q, bad_k, lse); }, "attention: k has shape");
      testing::expect_error<RuntimeError>([&] { forward(q32, k, lse); }, "dtype");
      testing::expect_error<RuntimeError>([&] { forward(ints, k, lse); }, "float32 or float64");
      testing::expect_error<RuntimeError>([&] { forward(q, k, wrong_lse); }, "expected (2, 3)");
      testing::expect_error<RuntimeError>([&] { forward(strided_q, k, lse); }, "contiguous");
      NDArray dq = NDArray::empty({2, 3, 4}, DType::Float64, cpu_device());
      NDArray dk = NDArray::empty({2, 5, 4}, DType::Float64, cpu_device());
      NDArray dv = NDArray::empty({2, 5, 5}, DType::Float64, cpu_device());
      testing::expect_error<RuntimeError>(
          [&] {
            backend->attention_backward(dq.view(), dk.view(), dv.view(), out.view(), q.view(), k.view(), v.view(),
                                        out.view(), lse.view(), 0.5, false);
          },
          "attention_backward");
    }
  }
}

// ---- ops ----------------------------------------------------------------------------------------

class FusedAttentionOpsTest : public ::testing::TestWithParam<Device> {};

// The attention formula by tensor ops, differentiable: the reference for the fused op.
Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  const std::int64_t queries = q.shape()[q.ndim() - 2];
  const std::int64_t keys = k.shape()[k.ndim() - 2];
  Tensor s = ops::mul_scalar(ops::matmul(q, ops::transpose(k)),
                             Scalar(1.0 / std::sqrt(static_cast<double>(q.shape().back()))));
  const NDArray neg_inf = NDArray::full({}, Scalar(-std::numeric_limits<double>::infinity()), s.dtype(), s.device());
  s = ops::where(Tensor(visible_mask(queries, keys, causal).to(s.device())), s, Tensor(neg_inf));
  return ops::matmul(ops::softmax(s, -1), v);
}

TEST_P(FusedAttentionOpsTest, MatchesTheComposedFormulaForFusedAndBroadcastBatches) {
  const Device device = GetParam();
  for (const bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "full");
    // Equal batch dimensions (the fused path), in float64 and float32.
    for (const DType dtype : {DType::Float64, DType::Float32}) {
      const Tensor q(random_array({2, 3, 9, 8}, device, 1).astype(dtype));
      const Tensor k(random_array({2, 3, 7, 8}, device, 2).astype(dtype));
      const Tensor v(random_array({2, 3, 7, 5}, device, 3).astype(dtype));
      const Tensor out = ops::scaled_dot_product_attention(q, k, v, causal);
      EXPECT_EQ(out.shape(), (Shape{2, 3, 9, 5}));
      EXPECT_EQ(out.dtype(), dtype);
      expect_close(testing::values_of(out), testing::values_of(composed_attention(q, k, v, causal)),
                   dtype == DType::Float32 ? 1e-5 : 1e-12, "fused");
    }
    // Batch dimensions that broadcast, and no batch dimension at all: the composed path.
    const Tensor q(random_array({2, 1, 6, 4}, device, 4));
    const Tensor k(random_array({3, 5, 4}, device, 5));
    const Tensor v(random_array({1, 5, 2}, device, 6));
    expect_close(testing::values_of(ops::scaled_dot_product_attention(q, k, v, causal)),
                 testing::values_of(composed_attention(q, k, v, causal)), 1e-12, "broadcast");
    const Tensor q2(random_array({6, 4}, device, 7));
    const Tensor k2(random_array({5, 4}, device, 8));
    const Tensor v2(random_array({5, 3}, device, 9));
    expect_close(testing::values_of(ops::scaled_dot_product_attention(q2, k2, v2, causal)),
                 testing::values_of(composed_attention(q2, k2, v2, causal)), 1e-12, "2-d");
  }
}

TEST_P(FusedAttentionOpsTest, GradientsAndSecondGradientsMatchFiniteDifferences) {
  const Device device = GetParam();
  const NDArray q = random_array({2, 5, 3}, device, 11);
  const NDArray k = random_array({2, 4, 3}, device, 12);
  const NDArray v = random_array({2, 4, 2}, device, 13);
  const NDArray q_broadcast = random_array({2, 1, 5, 3}, device, 14);
  for (const bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "full");
    const auto attention = [causal](const V& t) { return ops::scaled_dot_product_attention(t[0], t[1], t[2], causal); };
    expect_gradients_match(attention, {q, k, v});
    expect_gradients_match(attention, {q_broadcast, k, v});  // composed path
    // The second-gradient check differentiates the first gradient of input 0: rotate the inputs so that
    // q, k and v each take that place.
    expect_second_gradients_match(attention, {q, k, v}, 1e-5, 1e-5);
    expect_second_gradients_match(
        [causal](const V& t) { return ops::scaled_dot_product_attention(t[1], t[0], t[2], causal); }, {k, q, v}, 1e-5,
        1e-5);
    expect_second_gradients_match(
        [causal](const V& t) { return ops::scaled_dot_product_attention(t[1], t[2], t[0], causal); }, {v, q, k}, 1e-5,
        1e-5);
  }
}

TEST_P(FusedAttentionOpsTest, GradientsMatchTheComposedFormulaOnLongerSequences) {
  const Device device = GetParam();
  for (const bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "full");
    const NDArray values[] = {random_array({2, 2, 70, 16}, device, 21), random_array({2, 2, 70, 16}, device, 22),
                              random_array({2, 2, 70, 16}, device, 23)};
    const NDArray w = random_array({2, 2, 70, 16}, device, 24);
    std::vector<std::vector<double>> grads[2];
    for (int fused = 0; fused < 2; ++fused) {
      V t;
      for (const NDArray& a : values) t.emplace_back(a.copy(), true);
      const Tensor out = fused == 1 ? ops::scaled_dot_product_attention(t[0], t[1], t[2], causal)
                                    : composed_attention(t[0], t[1], t[2], causal);
      out.backward(Tensor(w));
      for (const Tensor& x : t) grads[fused].push_back(testing::values_of(x.grad()));
    }
    for (std::size_t i = 0; i < 3; ++i) expect_close(grads[1][i], grads[0][i], 1e-11, str("gradient ", i));
  }
}

TEST_P(FusedAttentionOpsTest, RejectsBadOperandsNamingTheOp) {
  const Device device = GetParam();
  const Tensor q(random_array({2, 3, 4}, device, 1));
  const Tensor k(random_array({2, 5, 4}, device, 2));
  const Tensor v(random_array({2, 5, 6}, device, 3));
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::scaled_dot_product_attention(q, Tensor(random_array({2, 5, 3}, device, 4)), v);
      },
      "scaled_dot_product_attention: expected q (..., L, d)");
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::scaled_dot_product_attention(q, k, Tensor(random_array({2, 4, 6}, device, 5)));
      },
      "scaled_dot_product_attention");
  testing::expect_error<ValueError>(
      [&] { (void)ops::scaled_dot_product_attention(Tensor(random_array({3}, device, 6)), k, v); },
      "at least 2 dimensions");
  testing::expect_error<ValueError>(
      [&] {
        (void)ops::scaled_dot_product_attention(Tensor(random_array({3, 3, 4}, device, 7)), k, v);
      },
      "scaled_dot_product_attention");
  testing::expect_error<TypeError>(
      [&] {
        (void)ops::scaled_dot_product_attention(Tensor(NDArray::ones({2, 3, 4}, DType::Int64, device)), k, v);
      },
      "scaled_dot_product_attention");
}

TEST_P(FusedAttentionOpsTest, EmptyShapesWork) {
  const Device device = GetParam();
  for (const Problem& p : std::vector<Problem>{{0, 3, 3, 2, 2}, {2, 0, 3, 2, 2}, {2, 3, 3, 2, 0}}) {
    SCOPED_TRACE(problem_str(p, false, DType::Float64));
    Tensor q(NDArray::zeros({p.batch, p.queries, p.dim}, DType::Float64, device), true);
    Tensor k(NDArray::zeros({p.batch, p.keys, p.dim}, DType::Float64, device), true);
    Tensor v(NDArray::zeros({p.batch, p.keys, p.value_dim}, DType::Float64, device), true);
    const Tensor out = ops::scaled_dot_product_attention(q, k, v, true);
    EXPECT_EQ(out.shape(), (Shape{p.batch, p.queries, p.value_dim}));
    ops::summation(out).backward();
    EXPECT_EQ(q.grad().shape(), q.shape());
    EXPECT_EQ(k.grad().shape(), k.shape());
    EXPECT_EQ(v.grad().shape(), v.shape());
  }
}

// The multi-head layer (which takes the fused path) against the same layer with the attention composed from
// ops, on sequences longer than one tile: outputs and every parameter's gradient.
TEST_P(FusedAttentionOpsTest, MultiHeadAttentionLayerMatchesTheComposedAttention) {
  const Device device = GetParam();
  for (const bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "full");
    nn::MultiHeadAttention mha(16, 2, causal, 0.0, true, device, DType::Float64);
    const Tensor x(random_array({2, 70, 16}, device, 31));
    const NDArray w = random_array({2, 70, 16}, device, 32);
    const auto parameter_grads = [&] {
      std::vector<std::vector<double>> grads;
      for (const Tensor& p : mha.parameters()) {
        grads.push_back(testing::values_of(p.grad()));
        Tensor(p).reset_grad();
      }
      return grads;
    };
    const Tensor fused = mha(x);
    fused.backward(Tensor(w));
    const std::vector<std::vector<double>> fused_grads = parameter_grads();

    const auto split_heads = [](const Tensor& t) { return ops::permute(ops::reshape(t, {2, 70, 2, 8}), {0, 2, 1, 3}); };
    const Tensor heads =
        composed_attention(split_heads(mha.q_projection()->forward(x)), split_heads(mha.k_projection()->forward(x)),
                           split_heads(mha.v_projection()->forward(x)), causal);
    const Tensor composed = mha.out_projection()->forward(ops::reshape(ops::permute(heads, {0, 2, 1, 3}), {2, 70, 16}));
    composed.backward(Tensor(w));
    expect_close(testing::values_of(fused), testing::values_of(composed), 1e-12, "output");
    const std::vector<std::vector<double>> composed_grads = parameter_grads();
    ASSERT_EQ(fused_grads.size(), composed_grads.size());
    for (std::size_t i = 0; i < fused_grads.size(); ++i) {
      expect_close(fused_grads[i], composed_grads[i], 1e-11, str("parameter ", i));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, FusedAttentionOpsTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
