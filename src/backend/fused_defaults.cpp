// The Backend base class's versions of the fused row, attention and batch-norm kernels, composed from the
// primitive kernels (reduce, binary, unary, fill) on memory from allocate() (the LSTM cell's are in
// lstm_defaults.cpp, the optimizer updates' in optim_defaults.cpp, the convolution's in conv_defaults.cpp). They exist
// so that a device without fused kernels of its own (CUDA today, any new one tomorrow) still runs softmax and layer
// norm through the same op-layer code; they make several passes and use temporaries, the fused overrides do not. Some
// steps update a small per-row array in place (output and input the same view), which every element-wise kernel
// supports since each output element depends only on the same element of its inputs.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "backend/scratch.h"
#include "needle/backend/backend.h"

namespace needle {

namespace {

using kernels::RowLayout;
using kernels::Scratch;

// Writes mean(x) and sqrt(var(x) + eps) of each row of x into `mean` and `std_dev` (one value per row),
// using `centered` (rows x cols) as the scratch that ends up holding x - mean.
void row_mean_and_std(Backend& backend, const RowLayout& layout, const StridedView& x, void* mean, void* std_dev,
                      void* centered, double eps) {
  Scratch constants(backend, 2, layout.dtype);  // 1 / cols and eps
  const StridedView inv_cols{constants.data(), layout.dtype, {1}, {1}};
  void* const eps_data = static_cast<char*>(constants.data()) + itemsize(layout.dtype);
  backend.fill(inv_cols, Scalar(1.0 / static_cast<double>(layout.cols)));
  backend.fill({eps_data, layout.dtype, {1}, {1}}, Scalar(eps));

  backend.reduce(ReduceOp::Sum, layout.per_row(mean), layout.full(x.data));
  backend.binary(BinaryOp::Mul, layout.per_row(mean), layout.per_row(mean), layout.scalar_per_row(constants.data()));
  backend.binary(BinaryOp::Sub, layout.full(centered), layout.full(x.data), layout.row_broadcast(mean));
  Scratch squares(backend, layout.size(), layout.dtype);
  backend.binary(BinaryOp::Mul, layout.full(squares.data()), layout.full(centered), layout.full(centered));
  backend.reduce(ReduceOp::Sum, layout.per_row(std_dev), layout.full(squares.data()));
  backend.binary(BinaryOp::Mul, layout.per_row(std_dev), layout.per_row(std_dev),
                 layout.scalar_per_row(constants.data()));
  backend.binary(BinaryOp::Add, layout.per_row(std_dev), layout.per_row(std_dev), layout.scalar_per_row(eps_data));
  backend.unary(UnaryOp::Sqrt, layout.per_row(std_dev), layout.per_row(std_dev));
}

// Writes the (B, L, S) scores scale * q k^T of every attention problem into `scores`, with -inf above the
// diagonal (key j > query i) when causal: a host-built (L, S) bias of 0 and -inf added to every problem.
void attention_scores(Backend& backend, const kernels::AttentionLayout& n, const StridedView& q, const StridedView& k,
                      double scale, bool causal, void* scores) {
  const StridedView all{scores, n.dtype, {n.batch, n.queries, n.keys}, {n.queries * n.keys, n.keys, 1}};
  const StridedView k_transposed{k.data, n.dtype, {n.batch, n.dim, n.keys}, {k.strides[0], 1, k.strides[1]}};
  backend.matmul(all, q, k_transposed);
  Scratch factor(backend, 1, n.dtype);
  backend.fill({factor.data(), n.dtype, {1}, {1}}, Scalar(scale));
  backend.binary(BinaryOp::Mul, all, all, {factor.data(), n.dtype, all.shape, {0, 0, 0}});
  if (!causal) return;
  Scratch bias(backend, n.queries * n.keys, n.dtype);
  dispatch_floating(n.dtype, "attention", [&]<typename T>() {
    std::vector<T> host(static_cast<std::size_t>(n.queries * n.keys), T(0));
    for (std::int64_t i = 0; i < n.queries; ++i) {
      for (std::int64_t j = kernels::visible_keys(i, n.keys, true); j < n.keys; ++j) {
        host[static_cast<std::size_t>(i * n.keys + j)] = -std::numeric_limits<T>::infinity();
      }
    }
    backend.copy_from_host(bias.data(), host.data(), host.size() * sizeof(T));
  });
  backend.binary(BinaryOp::Add, all, all, {bias.data(), n.dtype, all.shape, {0, n.keys, 1}});
}

}  // namespace

// Composed: max-reduce, subtract, exp, sum-reduce, then divide (softmax) or log and subtract (log).
void Backend::softmax_kernel(const kernels::RowLayout& layout, const StridedView& out, const StridedView& in,
                             bool log) {
  if (layout.size() == 0) return;
  Scratch row_max(*this, layout.rows, layout.dtype);
  Scratch row_sum(*this, layout.rows, layout.dtype);
  Scratch shifted(*this, layout.size(), layout.dtype);
  Scratch exps(*this, layout.size(), layout.dtype);
  reduce(ReduceOp::Max, layout.per_row(row_max.data()), layout.full(in.data));
  binary(BinaryOp::Sub, layout.full(shifted.data()), layout.full(in.data), layout.row_broadcast(row_max.data()));
  unary(UnaryOp::Exp, layout.full(exps.data()), layout.full(shifted.data()));
  reduce(ReduceOp::Sum, layout.per_row(row_sum.data()), layout.full(exps.data()));
  if (log) {
    // The sum includes exp(0) = 1, so its log is finite.
    Scratch log_sum(*this, layout.rows, layout.dtype);
    unary(UnaryOp::Log, layout.per_row(log_sum.data()), layout.per_row(row_sum.data()));
    binary(BinaryOp::Sub, layout.full(out.data), layout.full(shifted.data()), layout.row_broadcast(log_sum.data()));
  } else {
    binary(BinaryOp::Div, layout.full(out.data), layout.full(exps.data()), layout.row_broadcast(row_sum.data()));
  }
}

// Composed: max-reduce, replace an infinite maximum by 0, subtract, exp, sum-reduce, log, add the shift.
void Backend::logsumexp_kernel(const kernels::RowLayout& layout, const StridedView& out, const StridedView& in) {
  if (layout.rows == 0) return;
  const StridedView out_rows = layout.per_row(out.data);
  if (layout.cols == 0) {  // the log of an empty sum
    fill(out_rows, Scalar(-std::numeric_limits<double>::infinity()));
    return;
  }
  Scratch constants(*this, 2, layout.dtype);  // +inf and 0
  void* const inf = constants.data();
  void* const zero = static_cast<char*>(constants.data()) + itemsize(layout.dtype);
  fill({inf, layout.dtype, {1}, {1}}, Scalar(std::numeric_limits<double>::infinity()));
  fill({zero, layout.dtype, {1}, {1}}, Scalar(0.0));
  Scratch row_max(*this, layout.rows, layout.dtype);
  Scratch magnitude(*this, layout.rows, layout.dtype);
  Scratch finite(*this, layout.rows, DType::Bool);
  Scratch shift(*this, layout.rows, layout.dtype);
  Scratch exps(*this, layout.size(), layout.dtype);
  reduce(ReduceOp::Max, layout.per_row(row_max.data()), layout.full(in.data));
  // inf - inf would be NaN in the shifted row; shifting by 0 there gives -inf or +inf directly.
  unary(UnaryOp::Abs, layout.per_row(magnitude.data()), layout.per_row(row_max.data()));
  binary(BinaryOp::Lt, {finite.data(), DType::Bool, {layout.rows, 1}, {1, 1}}, layout.per_row(magnitude.data()),
         layout.scalar_per_row(inf));
  where(layout.per_row(shift.data()), {finite.data(), DType::Bool, {layout.rows, 1}, {1, 1}},
        layout.per_row(row_max.data()), layout.scalar_per_row(zero));
  binary(BinaryOp::Sub, layout.full(exps.data()), layout.full(in.data), layout.row_broadcast(shift.data()));
  unary(UnaryOp::Exp, layout.full(exps.data()), layout.full(exps.data()));
  reduce(ReduceOp::Sum, out_rows, layout.full(exps.data()));
  unary(UnaryOp::Log, out_rows, out_rows);
  binary(BinaryOp::Add, out_rows, out_rows, layout.per_row(shift.data()));
}

// Composed: softmax: dx = y * (g - sum(g * y)); log-softmax: dx = g - exp(y) * sum(g).
void Backend::softmax_backward_kernel(const kernels::RowLayout& layout, const StridedView& dx, const StridedView& g,
                                      const StridedView& y, bool log) {
  if (layout.size() == 0) return;
  Scratch row_sum(*this, layout.rows, layout.dtype);
  Scratch temp(*this, layout.size(), layout.dtype);
  if (log) {
    reduce(ReduceOp::Sum, layout.per_row(row_sum.data()), layout.full(g.data));
    unary(UnaryOp::Exp, layout.full(dx.data), layout.full(y.data));
    binary(BinaryOp::Mul, layout.full(temp.data()), layout.full(dx.data), layout.row_broadcast(row_sum.data()));
    binary(BinaryOp::Sub, layout.full(dx.data), layout.full(g.data), layout.full(temp.data()));
  } else {
    binary(BinaryOp::Mul, layout.full(temp.data()), layout.full(g.data), layout.full(y.data));
    reduce(ReduceOp::Sum, layout.per_row(row_sum.data()), layout.full(temp.data()));
    binary(BinaryOp::Sub, layout.full(temp.data()), layout.full(g.data), layout.row_broadcast(row_sum.data()));
    binary(BinaryOp::Mul, layout.full(dx.data), layout.full(y.data), layout.full(temp.data()));
  }
}

// Composed: row mean and standard deviation, then (x - mean) / std.
void Backend::layer_norm_kernel(const kernels::RowLayout& layout, const StridedView& out, const StridedView& x,
                                double eps) {
  if (layout.size() == 0) return;
  Scratch mean(*this, layout.rows, layout.dtype);
  Scratch std_dev(*this, layout.rows, layout.dtype);
  Scratch centered(*this, layout.size(), layout.dtype);
  row_mean_and_std(*this, layout, x, mean.data(), std_dev.data(), centered.data(), eps);
  binary(BinaryOp::Div, layout.full(out.data), layout.full(centered.data()), layout.row_broadcast(std_dev.data()));
}

// Composed: xhat from the row statistics, then dx = (g - mean(g) - xhat * mean(g * xhat)) / std.
void Backend::layer_norm_backward_kernel(const kernels::RowLayout& layout, const StridedView& dx, const StridedView& g,
                                         const StridedView& x, double eps) {
  if (layout.size() == 0) return;
  Scratch mean(*this, layout.rows, layout.dtype);
  Scratch std_dev(*this, layout.rows, layout.dtype);
  Scratch xhat(*this, layout.size(), layout.dtype);
  row_mean_and_std(*this, layout, x, mean.data(), std_dev.data(), xhat.data(), eps);
  binary(BinaryOp::Div, layout.full(xhat.data()), layout.full(xhat.data()), layout.row_broadcast(std_dev.data()));

  Scratch inv_cols(*this, 1, layout.dtype);
  fill({inv_cols.data(), layout.dtype, {1}, {1}}, Scalar(1.0 / static_cast<double>(layout.cols)));
  Scratch mean_g(*this, layout.rows, layout.dtype);
  Scratch mean_g_xhat(*this, layout.rows, layout.dtype);
  Scratch temp(*this, layout.size(), layout.dtype);
  reduce(ReduceOp::Sum, layout.per_row(mean_g.data()), layout.full(g.data));
  binary(BinaryOp::Mul, layout.per_row(mean_g.data()), layout.per_row(mean_g.data()),
         layout.scalar_per_row(inv_cols.data()));
  binary(BinaryOp::Mul, layout.full(temp.data()), layout.full(g.data), layout.full(xhat.data()));
  reduce(ReduceOp::Sum, layout.per_row(mean_g_xhat.data()), layout.full(temp.data()));
  binary(BinaryOp::Mul, layout.per_row(mean_g_xhat.data()), layout.per_row(mean_g_xhat.data()),
         layout.scalar_per_row(inv_cols.data()));

  binary(BinaryOp::Mul, layout.full(temp.data()), layout.full(xhat.data()), layout.row_broadcast(mean_g_xhat.data()));
  binary(BinaryOp::Sub, layout.full(dx.data), layout.full(g.data), layout.row_broadcast(mean_g.data()));
  binary(BinaryOp::Sub, layout.full(xhat.data()), layout.full(dx.data), layout.full(temp.data()));
  binary(BinaryOp::Div, layout.full(dx.data), layout.full(xhat.data()), layout.row_broadcast(std_dev.data()));
}

// Composed: dx = layer_norm_backward(g * weight, x); xhat = layer_norm(x) for dweight = column sums of
// g * xhat; dbias = column sums of g.
void Backend::layer_norm_affine_backward_kernel(const kernels::RowLayout& layout, const StridedView& dx,
                                                const StridedView& dweight, const StridedView& dbias,
                                                const StridedView& g, const StridedView& x, const StridedView& weight,
                                                double eps) {
  if (layout.cols == 0) return;
  if (layout.rows == 0) {
    fill(dweight, Scalar(0.0));
    fill(dbias, Scalar(0.0));
    return;
  }
  Scratch temp(*this, layout.size(), layout.dtype);
  binary(BinaryOp::Mul, layout.full(temp.data()), layout.full(g.data), layout.column_broadcast(weight.data));
  layer_norm_backward(dx, layout.full(temp.data()), x, eps);
  layer_norm(layout.full(temp.data()), x, eps);
  binary(BinaryOp::Mul, layout.full(temp.data()), layout.full(temp.data()), layout.full(g.data));
  reduce(ReduceOp::Sum, layout.per_column(dweight.data), layout.full(temp.data()));
  reduce(ReduceOp::Sum, layout.per_column(dbias.data), layout.full(g.data));
}

// Composed: the full (B, L, S) scores, their row logsumexp (max, subtract, exp, sum, log, add back), the
// probabilities exp(s - logsumexp), and out = p v by matmul.
void Backend::attention_kernel(const kernels::AttentionLayout& n, const StridedView& out, const StridedView& logsumexp,
                               const StridedView& q, const StridedView& k, const StridedView& v, double scale,
                               bool causal) {
  if (n.batch * n.queries == 0) return;
  if (n.keys == 0) {  // no key to see: softmax over nothing
    if (out.size() > 0) fill(out, Scalar(0.0));
    fill(logsumexp, Scalar(-std::numeric_limits<double>::infinity()));
    return;
  }
  const RowLayout rows{n.batch * n.queries, n.keys, n.dtype};
  Scratch scores(*this, rows.size(), n.dtype);
  attention_scores(*this, n, q, k, scale, causal, scores.data());
  // Key 0 is visible to every query, so each row's maximum is finite.
  Scratch row_max(*this, rows.rows, n.dtype);
  Scratch row_sum(*this, rows.rows, n.dtype);
  Scratch probs(*this, rows.size(), n.dtype);
  reduce(ReduceOp::Max, rows.per_row(row_max.data()), rows.full(scores.data()));
  binary(BinaryOp::Sub, rows.full(probs.data()), rows.full(scores.data()), rows.row_broadcast(row_max.data()));
  unary(UnaryOp::Exp, rows.full(probs.data()), rows.full(probs.data()));
  reduce(ReduceOp::Sum, rows.per_row(row_sum.data()), rows.full(probs.data()));
  unary(UnaryOp::Log, rows.per_row(row_sum.data()), rows.per_row(row_sum.data()));
  binary(BinaryOp::Add, rows.per_row(logsumexp.data), rows.per_row(row_max.data()), rows.per_row(row_sum.data()));
  binary(BinaryOp::Sub, rows.full(probs.data()), rows.full(scores.data()), rows.row_broadcast(logsumexp.data));
  unary(UnaryOp::Exp, rows.full(probs.data()), rows.full(probs.data()));
  matmul(out, {probs.data(), n.dtype, {n.batch, n.queries, n.keys}, {n.queries * n.keys, n.keys, 1}}, v);
}

// Composed: the scores q k^T of every problem as one batched matmul reading the cache in place (k seen
// transposed through its strides), scaled, a softmax per row, then one batched matmul with v.
void Backend::decode_attention_kernel(const kernels::AttentionLayout& n, const StridedView& out, const StridedView& q,
                                      const StridedView& k, const StridedView& v, double scale) {
  if (out.size() == 0) return;
  const RowLayout rows{n.batch, n.keys, n.dtype};
  Scratch scores(*this, rows.size(), n.dtype);
  const StridedView score_view{scores.data(), n.dtype, {n.batch, 1, n.keys}, {n.keys, n.keys, 1}};
  const StridedView q_rows{q.data, n.dtype, {n.batch, 1, n.dim}, {n.dim, n.dim, 1}};
  const StridedView k_transposed{k.data, n.dtype, {n.batch, n.dim, n.keys}, {k.strides[0], 1, k.strides[1]}};
  matmul(score_view, q_rows, k_transposed);
  Scratch factor(*this, 1, n.dtype);
  fill({factor.data(), n.dtype, {1}, {1}}, Scalar(scale));
  binary(BinaryOp::Mul, rows.full(scores.data()), rows.full(scores.data()),
         {factor.data(), n.dtype, {n.batch, n.keys}, {0, 0}});
  softmax(rows.full(scores.data()), rows.full(scores.data()), /*log=*/false);
  matmul({out.data, n.dtype, {n.batch, 1, n.value_dim}, {n.value_dim, n.value_dim, 1}}, score_view, v);
}

// Composed: p recomputed from the scores and logsumexp, then dv = p^T g, ds = scale * p * (g v^T - D) with
// D = rowsum(g * out), dq = ds k and dk = ds^T q, each product one batched matmul.
void Backend::attention_backward_kernel(const kernels::AttentionLayout& n, const StridedView& dq, const StridedView& dk,
                                        const StridedView& dv, const StridedView& g, const StridedView& q,
                                        const StridedView& k, const StridedView& v, const StridedView& out,
                                        const StridedView& logsumexp, double scale, bool causal) {
  if (n.batch * n.queries * n.keys == 0) {  // no (query, key) pair: every gradient is 0
    for (const StridedView* grad : {&dq, &dk, &dv}) {
      if (grad->size() > 0) fill(*grad, Scalar(0.0));
    }
    return;
  }
  const RowLayout rows{n.batch * n.queries, n.keys, n.dtype};
  const Shape square{n.batch, n.queries, n.keys};
  const auto as_scores = [&](void* data) {
    return StridedView{data, n.dtype, square, {n.queries * n.keys, n.keys, 1}};
  };
  const auto transposed = [&](void* data) {
    return StridedView{data, n.dtype, {n.batch, n.keys, n.queries}, {n.queries * n.keys, 1, n.keys}};
  };
  Scratch probs(*this, rows.size(), n.dtype);
  attention_scores(*this, n, q, k, scale, causal, probs.data());
  binary(BinaryOp::Sub, rows.full(probs.data()), rows.full(probs.data()), rows.row_broadcast(logsumexp.data));
  unary(UnaryOp::Exp, rows.full(probs.data()), rows.full(probs.data()));  // masked: exp(-inf) = 0
  matmul(dv, transposed(probs.data()), g);

  const RowLayout out_rows{n.batch * n.queries, n.value_dim, n.dtype};
  Scratch row_dot(*this, rows.rows, n.dtype);
  Scratch products(*this, out_rows.size(), n.dtype);
  binary(BinaryOp::Mul, {products.data(), n.dtype, out.shape, compact_strides(out.shape)}, g, out);
  reduce(ReduceOp::Sum, out_rows.per_row(row_dot.data()), out_rows.full(products.data()));
  Scratch dscores(*this, rows.size(), n.dtype);
  matmul(as_scores(dscores.data()), g,
         {v.data, n.dtype, {n.batch, n.value_dim, n.keys}, {v.strides[0], 1, v.strides[1]}});
  binary(BinaryOp::Sub, rows.full(dscores.data()), rows.full(dscores.data()), rows.row_broadcast(row_dot.data()));
  binary(BinaryOp::Mul, rows.full(dscores.data()), rows.full(dscores.data()), rows.full(probs.data()));
  Scratch factor(*this, 1, n.dtype);
  fill({factor.data(), n.dtype, {1}, {1}}, Scalar(scale));
  binary(BinaryOp::Mul, rows.full(dscores.data()), rows.full(dscores.data()),
         {factor.data(), n.dtype, {rows.rows, rows.cols}, {0, 0}});
  matmul(dq, as_scores(dscores.data()), k);
  matmul(dk, transposed(dscores.data()), q);
}
// Composed batch norm: per-channel sums over N and S by reductions, then broadcast element-wise steps.
// Writes mean and var, and into `std_dev` (C values) sqrt(var + eps); `centered` ((N, C, S)) ends up
// holding x - mean.
namespace {

void channel_statistics(Backend& backend, const kernels::ChannelLayout& layout, const StridedView& x,
                        const StridedView& mean, const StridedView& var, void* std_dev, void* centered, double eps) {
  Scratch constants(backend, 2, layout.dtype);  // 1 / M and eps
  void* const inv_count = constants.data();
  void* const eps_data = static_cast<char*>(constants.data()) + itemsize(layout.dtype);
  backend.fill({inv_count, layout.dtype, {1}, {1}}, Scalar(1.0 / static_cast<double>(layout.per_channel())));
  backend.fill({eps_data, layout.dtype, {1}, {1}}, Scalar(eps));

  backend.reduce(ReduceOp::Sum, layout.per_channel_view(mean.data), layout.full(x.data));
  backend.binary(BinaryOp::Mul, layout.vector(mean.data), layout.vector(mean.data), layout.scalar_vector(inv_count));
  backend.binary(BinaryOp::Sub, layout.full(centered), layout.full(x.data), layout.channel_broadcast(mean.data));
  Scratch squares(backend, layout.size(), layout.dtype);
  backend.binary(BinaryOp::Mul, layout.full(squares.data()), layout.full(centered), layout.full(centered));
  backend.reduce(ReduceOp::Sum, layout.per_channel_view(var.data), layout.full(squares.data()));
  backend.binary(BinaryOp::Mul, layout.vector(var.data), layout.vector(var.data), layout.scalar_vector(inv_count));
  backend.binary(BinaryOp::Add, layout.vector(std_dev), layout.vector(var.data), layout.scalar_vector(eps_data));
  backend.unary(UnaryOp::Sqrt, layout.vector(std_dev), layout.vector(std_dev));
}

}  // namespace

// Composed: statistics, then (x - mean) / std * weight + bias.
void Backend::batch_norm_kernel(const kernels::ChannelLayout& layout, const StridedView& y, const StridedView& mean,
                                const StridedView& var, const StridedView& x, const StridedView& weight,
                                const StridedView& bias, double eps) {
  if (layout.size() == 0) return;
  Scratch std_dev(*this, layout.channels, layout.dtype);
  Scratch centered(*this, layout.size(), layout.dtype);
  channel_statistics(*this, layout, x, mean, var, std_dev.data(), centered.data(), eps);
  binary(BinaryOp::Div, layout.full(y.data), layout.full(centered.data()), layout.channel_broadcast(std_dev.data()));
  binary(BinaryOp::Mul, layout.full(y.data), layout.full(y.data), layout.channel_broadcast(weight.data));
  binary(BinaryOp::Add, layout.full(y.data), layout.full(y.data), layout.channel_broadcast(bias.data));
}

// Composed: xhat from the given statistics, the two per-channel sums, then
// dx = weight / std * (g - dbias / M - xhat * dweight / M).
void Backend::batch_norm_backward_kernel(const kernels::ChannelLayout& layout, const StridedView& dx,
                                         const StridedView& dweight, const StridedView& dbias, const StridedView& g,
                                         const StridedView& x, const StridedView& mean, const StridedView& var,
                                         const StridedView& weight, double eps) {
  if (layout.channels == 0) return;
  Scratch constants(*this, 2, layout.dtype);  // 1 / M and eps
  void* const inv_count = constants.data();
  void* const eps_data = static_cast<char*>(constants.data()) + itemsize(layout.dtype);
  fill({inv_count, layout.dtype, {1}, {1}}, Scalar(1.0 / static_cast<double>(layout.per_channel())));
  fill({eps_data, layout.dtype, {1}, {1}}, Scalar(eps));
  Scratch std_dev(*this, layout.channels, layout.dtype);
  binary(BinaryOp::Add, layout.vector(std_dev.data()), layout.vector(var.data), layout.scalar_vector(eps_data));
  unary(UnaryOp::Sqrt, layout.vector(std_dev.data()), layout.vector(std_dev.data()));

  Scratch xhat(*this, layout.size(), layout.dtype);
  Scratch temp(*this, layout.size(), layout.dtype);
  binary(BinaryOp::Sub, layout.full(xhat.data()), layout.full(x.data), layout.channel_broadcast(mean.data));
  binary(BinaryOp::Div, layout.full(xhat.data()), layout.full(xhat.data()), layout.channel_broadcast(std_dev.data()));
  reduce(ReduceOp::Sum, layout.per_channel_view(dbias.data), layout.full(g.data));
  binary(BinaryOp::Mul, layout.full(temp.data()), layout.full(g.data), layout.full(xhat.data()));
  reduce(ReduceOp::Sum, layout.per_channel_view(dweight.data), layout.full(temp.data()));

  Scratch mean_g(*this, layout.channels, layout.dtype);
  Scratch mean_g_xhat(*this, layout.channels, layout.dtype);
  Scratch scale(*this, layout.channels, layout.dtype);
  binary(BinaryOp::Mul, layout.vector(mean_g.data()), layout.vector(dbias.data), layout.scalar_vector(inv_count));
  binary(BinaryOp::Mul, layout.vector(mean_g_xhat.data()), layout.vector(dweight.data),
         layout.scalar_vector(inv_count));
  binary(BinaryOp::Div, layout.vector(scale.data()), layout.vector(weight.data), layout.vector(std_dev.data()));
  binary(BinaryOp::Mul, layout.full(temp.data()), layout.full(xhat.data()),
         layout.channel_broadcast(mean_g_xhat.data()));
  binary(BinaryOp::Sub, layout.full(dx.data), layout.full(g.data), layout.channel_broadcast(mean_g.data()));
  binary(BinaryOp::Sub, layout.full(dx.data), layout.full(dx.data), layout.full(temp.data()));
  binary(BinaryOp::Mul, layout.full(dx.data), layout.full(dx.data), layout.channel_broadcast(scale.data()));
}

}  // namespace needle
