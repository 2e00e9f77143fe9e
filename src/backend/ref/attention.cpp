// Scaled dot-product attention as plain loops, one query row at a time, every sum accumulated in double:
// the reading of the formulas in kernels.def that the faster backends are tested against. The scores of
// one row are kept (S values); nothing larger is.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend/ref/ref_kernels.h"

namespace needle::ref {

namespace {

// q[i] . k[j] over `dim` elements, in double.
template <typename T>
double dot(const T* a, const T* b, std::int64_t dim) {
  double sum = 0.0;
  for (std::int64_t c = 0; c < dim; ++c) sum += static_cast<double>(a[c]) * static_cast<double>(b[c]);
  return sum;
}

// Row i of problem b of a (B, rows, cols) operand with contiguous rows (kernels.def).
template <typename T>
T* row(const StridedView& a, std::int64_t b, std::int64_t i) {
  return a.ptr<T>() + b * a.strides[0] + i * a.strides[1];
}

}  // namespace

void attention(const kernels::AttentionLayout& n, const StridedView& out, const StridedView& logsumexp,
               const StridedView& q, const StridedView& k, const StridedView& v, double scale, bool causal) {
  dispatch_floating(n.dtype, "attention", [&]<typename T>() {
    std::vector<double> scores(static_cast<std::size_t>(n.keys));
    for (std::int64_t b = 0; b < n.batch; ++b) {
      for (std::int64_t i = 0; i < n.queries; ++i) {
        const std::int64_t visible = kernels::visible_keys(i, n.keys, causal);
        double largest = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j < visible; ++j) {
          scores[j] = scale * dot(row<T>(q, b, i), row<T>(k, b, j), n.dim);
          largest = std::fmax(largest, scores[j]);
        }
        double sum = 0.0;
        for (std::int64_t j = 0; j < visible; ++j) sum += std::exp(scores[j] - largest);
        const double lse = visible == 0 ? -std::numeric_limits<double>::infinity() : largest + std::log(sum);
        logsumexp.ptr<T>()[b * n.queries + i] = static_cast<T>(lse);
        T* o = row<T>(out, b, i);
        for (std::int64_t c = 0; c < n.value_dim; ++c) {
          double acc = 0.0;
          for (std::int64_t j = 0; j < visible; ++j) acc += std::exp(scores[j] - lse) * row<T>(v, b, j)[c];
          o[c] = static_cast<T>(acc);
        }
      }
    }
  });
}

void attention_backward(const kernels::AttentionLayout& n, const StridedView& dq, const StridedView& dk,
                        const StridedView& dv, const StridedView& g, const StridedView& q, const StridedView& k,
                        const StridedView& v, const StridedView& out, const StridedView& logsumexp, double scale,
                        bool causal) {
  dispatch_floating(n.dtype, "attention_backward", [&]<typename T>() {
    // dk and dv gather contributions from every query, so they are summed in double and written at the end.
    std::vector<double> dk_sum(static_cast<std::size_t>(n.keys * n.dim));
    std::vector<double> dv_sum(static_cast<std::size_t>(n.keys * n.value_dim));
    std::vector<double> dq_row(static_cast<std::size_t>(n.dim));
    for (std::int64_t b = 0; b < n.batch; ++b) {
      std::fill(dk_sum.begin(), dk_sum.end(), 0.0);
      std::fill(dv_sum.begin(), dv_sum.end(), 0.0);
      for (std::int64_t i = 0; i < n.queries; ++i) {
        const T* gi = row<T>(g, b, i);
        const T* oi = row<T>(out, b, i);
        const T* qi = row<T>(q, b, i);
        const double lse = logsumexp.ptr<T>()[b * n.queries + i];
        const double d_i = dot(gi, oi, n.value_dim);  // D[i] = g[i] . out[i]
        std::fill(dq_row.begin(), dq_row.end(), 0.0);
        const std::int64_t visible = kernels::visible_keys(i, n.keys, causal);
        for (std::int64_t j = 0; j < visible; ++j) {
          const T* kj = row<T>(k, b, j);
          const double p = std::exp(scale * dot(qi, kj, n.dim) - lse);
          const double ds = p * (dot(gi, row<T>(v, b, j), n.value_dim) - d_i);
          for (std::int64_t c = 0; c < n.value_dim; ++c) dv_sum[j * n.value_dim + c] += p * gi[c];
          for (std::int64_t c = 0; c < n.dim; ++c) {
            dq_row[c] += scale * ds * kj[c];
            dk_sum[j * n.dim + c] += scale * ds * qi[c];
          }
        }
        T* dqi = row<T>(dq, b, i);
        for (std::int64_t c = 0; c < n.dim; ++c) dqi[c] = static_cast<T>(dq_row[c]);
      }
      for (std::int64_t j = 0; j < n.keys; ++j) {
        T* dkj = row<T>(dk, b, j);
        T* dvj = row<T>(dv, b, j);
        for (std::int64_t c = 0; c < n.dim; ++c) dkj[c] = static_cast<T>(dk_sum[j * n.dim + c]);
        for (std::int64_t c = 0; c < n.value_dim; ++c) dvj[c] = static_cast<T>(dv_sum[j * n.value_dim + c]);
      }
    }
  });
}

void decode_attention(const kernels::AttentionLayout& n, const StridedView& out, const StridedView& q,
                      const StridedView& k, const StridedView& v, double scale) {
  dispatch_floating(n.dtype, "decode_attention", [&]<typename T>() {
    std::vector<double> scores(static_cast<std::size_t>(n.keys));
    for (std::int64_t b = 0; b < n.batch; ++b) {
      const T* qb = q.ptr<T>() + b * n.dim;
      double largest = -std::numeric_limits<double>::infinity();
      for (std::int64_t j = 0; j < n.keys; ++j) {
        scores[j] = scale * dot(qb, row<T>(k, b, j), n.dim);
        largest = std::fmax(largest, scores[j]);
      }
      double sum = 0.0;
      for (std::int64_t j = 0; j < n.keys; ++j) sum += std::exp(scores[j] - largest);
      T* o = out.ptr<T>() + b * n.value_dim;
      for (std::int64_t c = 0; c < n.value_dim; ++c) {
        double acc = 0.0;
        for (std::int64_t j = 0; j < n.keys; ++j) {
          acc += std::exp(scores[j] - largest) * row<T>(v, b, j)[c];
        }
        o[c] = static_cast<T>(acc / sum);
      }
    }
  });
}

}  // namespace needle::ref
