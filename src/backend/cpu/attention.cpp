// The cpu backend's fused scaled dot-product attention (FlashAttention-2's schedule on the CPU). The L x S
// score matrix of a problem is never stored whole: queries and keys are cut into kBlock-sized blocks and
// each pair of blocks is one tile, so a thread needs only a few kBlock x kBlock scratch tiles whatever L
// and S are. Causal tiles entirely above the diagonal are skipped.
//
// Forward, per query block: for each key block, the tile of scores q k^T comes from cpu::gemm, then an
// online softmax keeps each row's running maximum m and sum l and rescales the partial output
// by exp(m_old - m_new) before adding exp(s - m_new) v. The work items are (problem, query block)
// pairs, split over the thread pool.
// Backward, per problem: the keys' blocks in turn, each visiting the query blocks that can see it and
// recomputing its probabilities from the saved logsumexp (no L x S matrix here either); dk and dv of the
// key block and dq of every query row are accumulated in place. Problems are split over the thread pool.
//
// Decode (one query row per problem against a cache prefix read in place through its strides): the S
// scores of a problem are one gemm row (dot products of q with the cached keys), then a softmax in place
// and one more gemm row with the cached values; problems are split over the thread pool.
//
// Every output element is computed by one thread in a fixed order (nested gemm calls run on their caller's
// thread, and gemm's own results never depend on the thread count), so results do not depend on the
// thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/vector_math.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

// Queries and keys per tile: a 64 x 64 tile of float scores is 16 KiB, so the scores, the probabilities'
// gradient and the partial products of a tile stay in L1/L2 while gemm streams q, k and v through them.
constexpr std::int64_t kBlock = 64;

// x[i] = exp(x[i]) for i < n, with the AVX2 array kernel for float when the CPU has it.
template <typename T>
void exp_in_place(T* x, std::int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    static const cpu::FloatArrayFn vector_exp = cpu::vector_unary_f32(UnaryOp::Exp);
    if (vector_exp != nullptr) {
      vector_exp(x, x, n);
      return;
    }
  }
  for (std::int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}

// C (m x n) = A (m x k) @ B (k x n) with the strides of gemm.h; empty products write nothing.
template <typename T>
void product(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t rsa, std::int64_t csa, const T* b,
             std::int64_t rsb, std::int64_t csb, T* c, std::int64_t ldc) {
  if (m > 0 && n > 0) cpu::gemm<T>(m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, 1);
}

// Independent partial results per row reduction, so that the sums and maxima run on vectors (a single
// running value would chain every addition to the one before): two GCC vectors of 32 bytes, one AVX2
// register each in the AVX2 build and two SSE2 registers in the baseline one. (Written as a loop over an
// array of partials, GCC turns the maxima into scalar compares and moves; as vectors wider than the
// registers, it spills them to the stack.)
template <typename T>
struct PartialsOf;
template <>
struct PartialsOf<float> {
  typedef float Vec __attribute__((vector_size(32)));
};
template <>
struct PartialsOf<double> {
  typedef double Vec __attribute__((vector_size(32)));
};
template <typename T>
using Partials = typename PartialsOf<T>::Vec;
template <typename T>
constexpr std::int64_t kLanes = 32 / sizeof(T);

// Through a reference: returning a vector by value from a function compiled without AVX changes the ABI,
// which GCC warns about.
template <typename T>
[[gnu::always_inline]] inline void load_partials(const T* x, Partials<T>& v) {
  std::memcpy(&v, x, sizeof(v));
}

// The largest of x[0..n), n >= 1 (a NaN is passed over; it still turns the row's exponentials into NaN).
template <typename T>
[[gnu::always_inline]] inline T lane_max(const T* x, std::int64_t n) {
  constexpr std::int64_t lanes = kLanes<T>;
  Partials<T> low = Partials<T>{} - std::numeric_limits<T>::infinity();
  Partials<T> high = low;
  std::int64_t j = 0;
  for (; j + 2 * lanes <= n; j += 2 * lanes) {
    Partials<T> a;
    Partials<T> b;
    load_partials(x + j, a);
    load_partials(x + j + lanes, b);
    low = a > low ? a : low;
    high = b > high ? b : high;
  }
  low = high > low ? high : low;
  T largest = -std::numeric_limits<T>::infinity();
  for (; j < n; ++j) largest = x[j] > largest ? x[j] : largest;
  for (std::int64_t lane = 0; lane < lanes; ++lane) largest = low[lane] > largest ? low[lane] : largest;
  return largest;
}

// The sum of x[0..n) in 2 * kLanes partial sums, combined in a fixed order.
template <typename T>
[[gnu::always_inline]] inline T lane_sum(const T* x, std::int64_t n) {
  constexpr std::int64_t lanes = kLanes<T>;
  Partials<T> low = {};
  Partials<T> high = {};
  std::int64_t j = 0;
  for (; j + 2 * lanes <= n; j += 2 * lanes) {
    Partials<T> a;
    Partials<T> b;
    load_partials(x + j, a);
    load_partials(x + j + lanes, b);
    low += a;
    high += b;
  }
  low += high;
  T tail = 0;
  for (; j < n; ++j) tail += x[j];
  T sum = 0;
  for (std::int64_t lane = 0; lane < lanes; ++lane) sum += low[lane];
  return sum + tail;
}

// Row r of dst (row stride ld) += row r of the packed rows x cols block src, for r < rows.
template <typename T>
[[gnu::always_inline]] inline void add_rows(T* dst, std::int64_t ld, const T* src, std::int64_t rows,
                                            std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    T* out = dst + r * ld;
    const T* in = src + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) out[c] += in[c];
  }
}

// Rows [0, rows) of dst (row stride ld, cols values each) set to zero.
template <typename T>
[[gnu::always_inline]] inline void zero_rows(T* dst, std::int64_t ld, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) std::fill(dst + r * ld, dst + r * ld + cols, T(0));
}

// Problem b of a (B, rows, cols) operand with contiguous rows (kernels.def): its first row; rows follow
// at view.strides[1].
template <typename T>
[[gnu::always_inline]] inline T* problem(const StridedView& view, std::int64_t b) {
  return view.ptr<T>() + b * view.strides[0];
}

// How many keys of the tile starting at key j0 (nk keys) query i sees.
[[gnu::always_inline]] inline std::int64_t visible_in_tile(std::int64_t i, std::int64_t j0, std::int64_t nk,
                                                           bool causal) {
  return causal ? std::clamp<std::int64_t>(i + 1 - j0, 0, nk) : nk;
}

// The forward of one query block [i0, i0 + nq) of problem b: out rows and logsumexp entries of that block.
template <typename T>
[[gnu::always_inline]] inline void attention_block(const kernels::AttentionLayout& n, const StridedView& q,
                                                   const StridedView& k, const StridedView& v, const StridedView& out,
                                                   T* logsumexp, T scale, bool causal, std::int64_t b, std::int64_t i0,
                                                   std::vector<T>& scratch) {
  const std::int64_t d = n.dim;
  const std::int64_t dv = n.value_dim;
  const std::int64_t nq = std::min(kBlock, n.queries - i0);
  scratch.resize(static_cast<std::size_t>(kBlock * kBlock + 2 * kBlock * dv + kBlock * d + 3 * kBlock));
  T* scores = scratch.data();
  T* partial = scores + kBlock * kBlock;  // exp(s - m) v of one tile
  T* ob = partial + kBlock * dv;          // the block's running output, written to `out` at the end
  T* qb = ob + kBlock * dv;               // scale * q of the block: the products then give the scores
  T* row_max = qb + kBlock * d;
  T* row_sum = row_max + kBlock;
  T* rescale = row_sum + kBlock;

  const std::int64_t q_stride = q.strides[1];
  const T* q_rows = problem<T>(q, b) + i0 * q_stride;
  for (std::int64_t r = 0; r < nq; ++r) {
    for (std::int64_t c = 0; c < d; ++c) qb[r * d + c] = q_rows[r * q_stride + c] * scale;
  }
  const T* kb = problem<T>(k, b);
  const T* vb = problem<T>(v, b);
  const std::int64_t k_stride = k.strides[1];
  const std::int64_t v_stride = v.strides[1];
  std::fill(ob, ob + nq * dv, T(0));
  std::fill(row_max, row_max + nq, -std::numeric_limits<T>::infinity());
  std::fill(row_sum, row_sum + nq, T(0));

  const std::int64_t key_end = causal ? std::min(n.keys, i0 + nq) : n.keys;
  for (std::int64_t j0 = 0; j0 < key_end; j0 += kBlock) {
    const std::int64_t nk = std::min(kBlock, key_end - j0);
    // scale q k^T: k read transposed in place.
    product(nq, nk, d, qb, d, 1, kb + j0 * k_stride, 1, k_stride, scores, nk);
    for (std::int64_t r = 0; r < nq; ++r) {
      T* s = scores + r * nk;
      const std::int64_t visible = visible_in_tile(i0 + r, j0, nk, causal);
      rescale[r] = T(1);
      if (visible == 0) {
        std::fill(s, s + nk, T(0));  // becomes 1 under exp, zeroed below
        continue;
      }
      const T largest = lane_max(s, visible);
      const T new_max = std::max(row_max[r], largest);
      // exp(-inf) = 0 on the first visible tile: nothing accumulated yet to rescale.
      rescale[r] = std::exp(row_max[r] - new_max);
      row_max[r] = new_max;
      for (std::int64_t j = 0; j < visible; ++j) s[j] -= new_max;
      std::fill(s + visible, s + nk, T(0));
    }
    exp_in_place(scores, nq * nk);
    for (std::int64_t r = 0; r < nq; ++r) {
      T* s = scores + r * nk;
      const std::int64_t visible = visible_in_tile(i0 + r, j0, nk, causal);
      std::fill(s + visible, s + nk, T(0));  // masked keys weigh exactly 0
      row_sum[r] = row_sum[r] * rescale[r] + lane_sum(s, visible);
      if (rescale[r] != T(1)) {
        for (std::int64_t c = 0; c < dv; ++c) ob[r * dv + c] *= rescale[r];
      }
    }
    product(nq, dv, nk, scores, nk, 1, vb + j0 * v_stride, v_stride, 1, partial, dv);
    add_rows(ob, dv, partial, nq, dv);
  }
  T* out_rows = problem<T>(out, b) + i0 * out.strides[1];
  for (std::int64_t r = 0; r < nq; ++r) {
    T* lse = logsumexp + b * n.queries + i0 + r;
    T* o = out_rows + r * out.strides[1];
    if (row_sum[r] == T(0)) {  // no visible key: the output stays 0
      *lse = -std::numeric_limits<T>::infinity();
      std::fill(o, o + dv, T(0));
      continue;
    }
    const T inverse = T(1) / row_sum[r];
    for (std::int64_t c = 0; c < dv; ++c) o[c] = ob[r * dv + c] * inverse;
    *lse = row_max[r] + std::log(row_sum[r]);
  }
}

// The backward of problem b: its rows of dq, dk and dv.
template <typename T>
[[gnu::always_inline]] inline void attention_backward_problem(const kernels::AttentionLayout& n, const StridedView& dq,
                                                              const StridedView& dk, const StridedView& dv,
                                                              const StridedView& g, const StridedView& q,
                                                              const StridedView& k, const StridedView& v,
                                                              const StridedView& out, const T* logsumexp, T scale,
                                                              bool causal, std::int64_t b, std::vector<T>& scratch) {
  const std::int64_t d = n.dim;
  const std::int64_t dvn = n.value_dim;
  const std::int64_t widest = std::max(d, dvn);
  scratch.resize(static_cast<std::size_t>(2 * kBlock * kBlock + kBlock * widest + n.queries));
  T* probs = scratch.data();
  T* dscores = probs + kBlock * kBlock;
  T* partial = dscores + kBlock * kBlock;
  T* row_dot = partial + kBlock * widest;  // D[i] = g[i] . out[i]

  // Each operand's first row of problem b and its row stride.
  const T* qb = problem<T>(q, b);
  const T* kb = problem<T>(k, b);
  const T* vb = problem<T>(v, b);
  const T* gb = problem<T>(g, b);
  const T* ob = problem<T>(out, b);
  T* dqb = problem<T>(dq, b);
  T* dkb = problem<T>(dk, b);
  T* dvb = problem<T>(dv, b);
  const std::int64_t qs = q.strides[1];
  const std::int64_t ks = k.strides[1];
  const std::int64_t vs = v.strides[1];
  const std::int64_t gs = g.strides[1];
  const T* lse = logsumexp + b * n.queries;
  for (std::int64_t i = 0; i < n.queries; ++i) {
    const T* gi = gb + i * gs;
    const T* oi = ob + i * out.strides[1];
    T sum = 0;
    for (std::int64_t c = 0; c < dvn; ++c) sum += gi[c] * oi[c];
    row_dot[i] = sum;
  }
  zero_rows(dqb, dq.strides[1], n.queries, d);
  zero_rows(dkb, dk.strides[1], n.keys, d);
  zero_rows(dvb, dv.strides[1], n.keys, dvn);

  for (std::int64_t j0 = 0; j0 < n.keys; j0 += kBlock) {
    const std::int64_t nk = std::min(kBlock, n.keys - j0);
    const T* kj = kb + j0 * ks;
    const T* vj = vb + j0 * vs;
    // Query i sees key j0 only from i = j0 on; blocks of queries and keys share one grid.
    for (std::int64_t i0 = causal ? j0 : 0; i0 < n.queries; i0 += kBlock) {
      const std::int64_t nq = std::min(kBlock, n.queries - i0);
      const T* qi = qb + i0 * qs;
      const T* gi = gb + i0 * gs;
      // p = exp(scale * q k^T - logsumexp), 0 where masked.
      product(nq, nk, d, qi, qs, 1, kj, 1, ks, probs, nk);
      for (std::int64_t r = 0; r < nq; ++r) {
        T* p = probs + r * nk;
        const std::int64_t visible = visible_in_tile(i0 + r, j0, nk, causal);
        for (std::int64_t j = 0; j < visible; ++j) p[j] = p[j] * scale - lse[i0 + r];
        std::fill(p + visible, p + nk, T(0));
      }
      exp_in_place(probs, nq * nk);
      for (std::int64_t r = 0; r < nq; ++r) {
        const std::int64_t visible = visible_in_tile(i0 + r, j0, nk, causal);
        std::fill(probs + r * nk + visible, probs + (r + 1) * nk, T(0));
      }
      // dv_j += p^T g_i.
      product(nk, dvn, nq, probs, 1, nk, gi, gs, 1, partial, dvn);
      add_rows(dvb + j0 * dv.strides[1], dv.strides[1], partial, nk, dvn);
      // ds = scale * p * (g_i v_j^T - D).
      product(nq, nk, dvn, gi, gs, 1, vj, 1, vs, dscores, nk);
      for (std::int64_t r = 0; r < nq; ++r) {
        const T* p = probs + r * nk;
        T* ds = dscores + r * nk;
        const T row = row_dot[i0 + r];
        for (std::int64_t j = 0; j < nk; ++j) ds[j] = scale * p[j] * (ds[j] - row);
      }
      // dq_i += ds k_j; dk_j += ds^T q_i.
      product(nq, d, nk, dscores, nk, 1, kj, ks, 1, partial, d);
      add_rows(dqb + i0 * dq.strides[1], dq.strides[1], partial, nq, d);
      product(nk, d, nq, dscores, 1, nk, qi, qs, 1, partial, d);
      add_rows(dkb + j0 * dk.strides[1], dk.strides[1], partial, nk, d);
    }
  }
}

// The tile loops above (row maxima and sums, scaling, masking, accumulating) are compiled twice: for the
// baseline, and for AVX2, where they run on 8-float vectors instead of 4; the run-time check picks one. The
// AVX2 build leaves FMA out, so that no product and sum are contracted into one rounding: both builds compute
// every value alike, and results do not depend on the build.
std::atomic<bool> g_force_portable{false};

bool use_avx2() {
  static const bool supported = __builtin_cpu_supports("avx2");
  return supported && !g_force_portable.load(std::memory_order_relaxed);
}

template <typename T>
void attention_block_portable(const kernels::AttentionLayout& n, const StridedView& q, const StridedView& k,
                              const StridedView& v, const StridedView& out, T* logsumexp, T scale, bool causal,
                              std::int64_t b, std::int64_t i0, std::vector<T>& scratch) {
  attention_block<T>(n, q, k, v, out, logsumexp, scale, causal, b, i0, scratch);
}

template <typename T>
__attribute__((target("avx2"))) void attention_block_avx2(const kernels::AttentionLayout& n, const StridedView& q,
                                                          const StridedView& k, const StridedView& v,
                                                          const StridedView& out, T* logsumexp, T scale, bool causal,
                                                          std::int64_t b, std::int64_t i0, std::vector<T>& scratch) {
  attention_block<T>(n, q, k, v, out, logsumexp, scale, causal, b, i0, scratch);
}

template <typename T>
void attention_backward_portable(const kernels::AttentionLayout& n, const StridedView& dq, const StridedView& dk,
                                 const StridedView& dv, const StridedView& g, const StridedView& q,
                                 const StridedView& k, const StridedView& v, const StridedView& out, const T* logsumexp,
                                 T scale, bool causal, std::int64_t b, std::vector<T>& scratch) {
  attention_backward_problem<T>(n, dq, dk, dv, g, q, k, v, out, logsumexp, scale, causal, b, scratch);
}

template <typename T>
__attribute__((target("avx2"))) void attention_backward_avx2(const kernels::AttentionLayout& n, const StridedView& dq,
                                                             const StridedView& dk, const StridedView& dv,
                                                             const StridedView& g, const StridedView& q,
                                                             const StridedView& k, const StridedView& v,
                                                             const StridedView& out, const T* logsumexp, T scale,
                                                             bool causal, std::int64_t b, std::vector<T>& scratch) {
  attention_backward_problem<T>(n, dq, dk, dv, g, q, k, v, out, logsumexp, scale, causal, b, scratch);
}

}  // namespace

namespace cpu {
void set_attention_portable(bool portable) { g_force_portable.store(portable, std::memory_order_relaxed); }
}  // namespace cpu

void CpuBackend::attention_kernel(const kernels::AttentionLayout& n, const StridedView& out,
                                  const StridedView& logsumexp, const StridedView& q, const StridedView& k,
                                  const StridedView& v, double scale, bool causal) {
  const std::int64_t blocks = (n.queries + kBlock - 1) / kBlock;
  dispatch_floating(n.dtype, "attention", [&]<typename T>() {
    const auto block = use_avx2() ? &attention_block_avx2<T> : &attention_block_portable<T>;
    parallel_for(0, n.batch * blocks, 1, [&](std::int64_t first, std::int64_t last) {
      std::vector<T> scratch;
      for (std::int64_t item = first; item < last; ++item) {
        block(n, q, k, v, out, logsumexp.ptr<T>(), static_cast<T>(scale), causal, item / blocks,
              (item % blocks) * kBlock, scratch);
      }
    });
  });
}

void CpuBackend::attention_backward_kernel(const kernels::AttentionLayout& n, const StridedView& dq,
                                           const StridedView& dk, const StridedView& dv, const StridedView& g,
                                           const StridedView& q, const StridedView& k, const StridedView& v,
                                           const StridedView& out, const StridedView& logsumexp, double scale,
                                           bool causal) {
  dispatch_floating(n.dtype, "attention_backward", [&]<typename T>() {
    const auto problem_backward = use_avx2() ? &attention_backward_avx2<T> : &attention_backward_portable<T>;
    parallel_for(0, n.batch, 1, [&](std::int64_t first, std::int64_t last) {
      std::vector<T> scratch;
      for (std::int64_t b = first; b < last; ++b) {
        problem_backward(n, dq, dk, dv, g, q, k, v, out, logsumexp.ptr<T>(), static_cast<T>(scale), causal, b, scratch);
      }
    });
  });
}

void CpuBackend::decode_attention_kernel(const kernels::AttentionLayout& n, const StridedView& out,
                                         const StridedView& q, const StridedView& k, const StridedView& v,
                                         double scale) {
  if (out.size() == 0) return;
  dispatch_floating(n.dtype, "decode_attention", [&]<typename T>() {
    parallel_for(0, n.batch, 1, [&](std::int64_t first, std::int64_t last) {
      std::vector<T> scratch(static_cast<std::size_t>(n.keys + n.dim));
      T* scores = scratch.data();
      T* scaled_q = scores + n.keys;
      for (std::int64_t b = first; b < last; ++b) {
        const T* qb = q.ptr<T>() + b * n.dim;
        for (std::int64_t c = 0; c < n.dim; ++c) scaled_q[c] = qb[c] * static_cast<T>(scale);
        // scores (1 x S) = (scale q) (1 x d) @ k^T (d x S), the cached keys read transposed in place.
        product(1, n.keys, n.dim, scaled_q, n.dim, 1, problem<T>(k, b), 1, k.strides[1], scores, n.keys);
        const T largest = lane_max(scores, n.keys);
        for (std::int64_t j = 0; j < n.keys; ++j) scores[j] -= largest;
        exp_in_place(scores, n.keys);
        const T inverse_sum = T(1) / lane_sum(scores, n.keys);
        T* ob = out.ptr<T>() + b * n.value_dim;
        product(1, n.value_dim, n.keys, scores, n.keys, 1, problem<T>(v, b), v.strides[1], 1, ob, n.value_dim);
        for (std::int64_t c = 0; c < n.value_dim; ++c) ob[c] *= inverse_sum;
      }
    });
  });
}

}  // namespace needle
