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

}  // namespace

void attention(const kernels::AttentionLayout& n, const StridedView& out, const StridedView& logsumexp,
               const StridedView& q, const StridedView& k, const StridedView& v, double scale, bool causal) {
  dispatch_floating(n.dtype, "attention", [&]<typename T>() {
    std::vector<double> scores(static_cast<std::size_t>(n.keys));
    for (std::int64_t b = 0; b < n.batch; ++b) {
      const T* qb = q.ptr<T>() + b * n.queries * n.dim;
      const T* kb = k.ptr<T>() + b * n.keys * n.dim;
      const T* vb = v.ptr<T>() + b * n.keys * n.value_dim;
      for (std::int64_t i = 0; i < n.queries; ++i) {
        const std::int64_t visible = kernels::visible_keys(i, n.keys, causal);
        double largest = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j < visible; ++j) {
          scores[j] = scale * dot(qb + i * n.dim, kb + j * n.dim, n.dim);
          largest = std::fmax(largest, scores[j]);
        }
        double sum = 0.0;
        for (std::int64_t j = 0; j < visible; ++j) sum += std::exp(scores[j] - largest);
        const double lse = visible == 0 ? -std::numeric_limits<double>::infinity() : largest + std::log(sum);
        logsumexp.ptr<T>()[b * n.queries + i] = static_cast<T>(lse);
        T* o = out.ptr<T>() + (b * n.queries + i) * n.value_dim;
        for (std::int64_t c = 0; c < n.value_dim; ++c) {
          double acc = 0.0;
          for (std::int64_t j = 0; j < visible; ++j) acc += std::exp(scores[j] - lse) * vb[j * n.value_dim + c];
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
      const T* qb = q.ptr<T>() + b * n.queries * n.dim;
      const T* kb = k.ptr<T>() + b * n.keys * n.dim;
      const T* vb = v.ptr<T>() + b * n.keys * n.value_dim;
      std::fill(dk_sum.begin(), dk_sum.end(), 0.0);
      std::fill(dv_sum.begin(), dv_sum.end(), 0.0);
      for (std::int64_t i = 0; i < n.queries; ++i) {
        const T* gi = g.ptr<T>() + (b * n.queries + i) * n.value_dim;
        const T* oi = out.ptr<T>() + (b * n.queries + i) * n.value_dim;
        const double lse = logsumexp.ptr<T>()[b * n.queries + i];
        const double d_i = dot(gi, oi, n.value_dim);  // D[i] = g[i] . out[i]
        std::fill(dq_row.begin(), dq_row.end(), 0.0);
        const std::int64_t visible = kernels::visible_keys(i, n.keys, causal);
        for (std::int64_t j = 0; j < visible; ++j) {
          const double p = std::exp(scale * dot(qb + i * n.dim, kb + j * n.dim, n.dim) - lse);
          const double ds = p * (dot(gi, vb + j * n.value_dim, n.value_dim) - d_i);
          for (std::int64_t c = 0; c < n.value_dim; ++c) dv_sum[j * n.value_dim + c] += p * gi[c];
          for (std::int64_t c = 0; c < n.dim; ++c) {
            dq_row[c] += scale * ds * kb[j * n.dim + c];
            dk_sum[j * n.dim + c] += scale * ds * qb[i * n.dim + c];
          }
        }
        T* dqi = dq.ptr<T>() + (b * n.queries + i) * n.dim;
        for (std::int64_t c = 0; c < n.dim; ++c) dqi[c] = static_cast<T>(dq_row[c]);
      }
      T* dkb = dk.ptr<T>() + b * n.keys * n.dim;
      T* dvb = dv.ptr<T>() + b * n.keys * n.value_dim;
      for (std::int64_t e = 0; e < n.keys * n.dim; ++e) dkb[e] = static_cast<T>(dk_sum[e]);
      for (std::int64_t e = 0; e < n.keys * n.value_dim; ++e) dvb[e] = static_cast<T>(dv_sum[e]);
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
        scores[j] = scale * dot(qb, k.ptr<T>() + b * k.strides[0] + j * k.strides[1], n.dim);
        largest = std::fmax(largest, scores[j]);
      }
      double sum = 0.0;
      for (std::int64_t j = 0; j < n.keys; ++j) sum += std::exp(scores[j] - largest);
      T* o = out.ptr<T>() + b * n.value_dim;
      for (std::int64_t c = 0; c < n.value_dim; ++c) {
        double acc = 0.0;
        for (std::int64_t j = 0; j < n.keys; ++j) {
          acc += std::exp(scores[j] - largest) * v.ptr<T>()[b * v.strides[0] + j * v.strides[1] + c];
        }
        o[c] = static_cast<T>(acc / sum);
      }
    }
  });
}

}  // namespace needle::ref
