// The array layer's fused computations (fused_ops.h): check, bring the operands into the kernel's layout,
// allocate, call one fused kernel. The kernels then check their own promise again (a failure there is a
// bug here, raised as RuntimeError); what a user can get wrong is raised here, naming the function.
#include "needle/core/fused_ops.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <numeric>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "core/array_checks.h"
#include "core/dense_layout.h"
#include "needle/core/array_ops.h"
#include "needle/core/checked_math.h"

namespace needle {

namespace {

using detail::backend_of;
using detail::check_same_device;

void check_floating(std::string_view op, const NDArray& a) {
  NEEDLE_CHECK(a.dtype() == DType::Float32 || a.dtype() == DType::Float64, TypeError, op,
               ": expected float32 or float64, got ", dtype_name(a.dtype()));
}

void check_same_dtype(std::string_view op, const std::vector<const NDArray*>& arrays) {
  for (const NDArray* a : arrays) {
    NEEDLE_CHECK(a->dtype() == arrays.front()->dtype(), TypeError, op, ": expected one dtype, got ",
                 dtype_name(arrays.front()->dtype()), " and ", dtype_name(a->dtype()));
  }
}

void check_shape(std::string_view op, std::string_view name, const NDArray& a, const Shape& expected) {
  NEEDLE_CHECK(a.shape() == expected, ValueError, op, ": ", name, " has shape ", shape_str(a.shape()), ", expected ",
               shape_str(expected));
}

void check_axis(std::string_view op, const NDArray& a, std::int64_t axis) {
  NEEDLE_CHECK(axis >= 0 && axis < std::max<std::int64_t>(a.ndim(), 1), IndexError, op, ": axis ", axis,
               " is out of range for an array of shape ", shape_str(a.shape()));
}

// The row kernels read contiguous rows along the last axis: `axis` moved there (a view), then compacted;
// restore_axis moves it back in a result (a view again), so any axis and any layout work.
NDArray rows_along(const NDArray& a, std::int64_t axis) {
  const std::int64_t last = a.ndim() - 1;
  return (a.ndim() > 1 && axis != last ? a.swapaxes(axis, last) : a).compact();
}
NDArray restore_axis(const NDArray& rows, std::int64_t axis) {
  const std::int64_t last = rows.ndim() - 1;
  return rows.ndim() > 1 && axis != last ? rows.swapaxes(axis, last) : rows;
}

// An operand of the LSTM cell as its kernel reads it: 2-D with unit column stride, any row stride.
NDArray unit_column_stride(const NDArray& a) { return a.shape()[1] <= 1 || a.strides()[1] == 1 ? a : a.compact(); }
StridedView optional_view(const NDArray* a) { return a != nullptr ? a->view() : StridedView{}; }

}  // namespace

// ---- rows --------------------------------------------------------------------------------------------

NDArray softmax(const NDArray& a, std::int64_t axis, bool log) {
  const std::string_view op = log ? "logsoftmax" : "softmax";
  check_floating(op, a);
  check_axis(op, a, axis);
  const NDArray in = rows_along(a, axis);
  NDArray out = NDArray::empty(in.shape(), in.dtype(), in.device());
  if (out.size() > 0) backend_of(out).softmax(out.view(), in.view(), log);
  return restore_axis(out, axis);
}

NDArray softmax_backward(const NDArray& g, const NDArray& y, std::int64_t axis, bool log) {
  const std::string_view op = log ? "logsoftmax_backward" : "softmax_backward";
  check_same_device(op, {&g, &y});
  check_floating(op, g);
  check_shape(op, "y", y, g.shape());
  check_axis(op, g, axis);
  const NDArray grad = rows_along(g, axis);
  const NDArray out = rows_along(y.astype(g.dtype()), axis);
  NDArray dx = NDArray::empty(grad.shape(), grad.dtype(), grad.device());
  if (dx.size() > 0) backend_of(dx).softmax_backward(dx.view(), grad.view(), out.view(), log);
  return restore_axis(dx, axis);
}

NDArray logsumexp(const NDArray& a, std::int64_t axis, bool keepdims) {
  check_floating("logsumexp", a);
  check_axis("logsumexp", a, axis);
  // The axis moved last with the other axes in their order, so the result needs no permutation back.
  std::vector<std::int64_t> order;
  for (std::int64_t i = 0; i < a.ndim(); ++i) {
    if (i != axis) order.push_back(i);
  }
  if (a.ndim() > 0) order.push_back(axis);
  const NDArray rows = a.permute(order).compact();
  const Shape row_shape = rows.ndim() > 0 ? Shape(rows.shape().begin(), rows.shape().end() - 1) : Shape{};
  NDArray out = NDArray::empty(row_shape, a.dtype(), a.device());
  backend_of(out).logsumexp(out.view(), rows.view());
  if (!keepdims || a.ndim() == 0) return out;
  Shape kept = a.shape();
  kept[static_cast<std::size_t>(axis)] = 1;
  return out.reshape(kept);
}

NDArray layer_norm(const NDArray& x, double eps) {
  check_floating("layer_norm", x);
  const NDArray in = x.compact();
  NDArray out = NDArray::empty(in.shape(), in.dtype(), in.device());
  if (out.size() > 0) backend_of(out).layer_norm(out.view(), in.view(), eps);
  return out;
}

NDArray layer_norm_backward(const NDArray& g, const NDArray& x, double eps) {
  check_same_device("layer_norm_backward", {&g, &x});
  check_floating("layer_norm_backward", g);
  check_shape("layer_norm_backward", "x", x, g.shape());
  const NDArray grad = g.compact();
  const NDArray in = x.astype(g.dtype()).compact();
  NDArray dx = NDArray::empty(grad.shape(), grad.dtype(), grad.device());
  if (dx.size() > 0) backend_of(dx).layer_norm_backward(dx.view(), grad.view(), in.view(), eps);
  return dx;
}

AffineLayerNormGrads layer_norm_affine_backward(const NDArray& g, const NDArray& x, const NDArray& weight, double eps) {
  constexpr std::string_view op = "layer_norm_affine_backward";
  check_same_device(op, {&g, &x, &weight});
  check_floating(op, g);
  check_shape(op, "x", x, g.shape());
  NEEDLE_CHECK(g.ndim() >= 1, ValueError, op, ": expected at least 1 dimension, got shape ", shape_str(g.shape()));
  const std::int64_t dim = g.shape().back();
  check_shape(op, "weight", weight, Shape{dim});
  const NDArray grad = g.compact();
  const NDArray in = x.astype(g.dtype()).compact();
  const NDArray w = weight.astype(g.dtype()).compact();
  AffineLayerNormGrads grads{NDArray::empty(grad.shape(), grad.dtype(), grad.device()),
                             NDArray::empty({dim}, grad.dtype(), grad.device()),
                             NDArray::empty({dim}, grad.dtype(), grad.device())};
  if (dim > 0) {
    backend_of(grad).layer_norm_affine_backward(grads.dx.view(), grads.dweight.view(), grads.dbias.view(), grad.view(),
                                                in.view(), w.view(), eps);
  }
  return grads;
}

NDArray rms_norm(const NDArray& x, double eps) {
  check_floating("rms_norm", x);
  NEEDLE_CHECK(x.ndim() >= 1, ValueError, "rms_norm: expected at least 1 dimension, got shape ", shape_str(x.shape()));
  Backend& backend = backend_of(x);
  if (!backend.implements(OptionalKernel::rms_norm) || x.shape().back() == 0) {
    return x * (Scalar(1.0) / sqrt(mean(x * x, {-1}, /*keepdims=*/true) + Scalar(eps)));
  }
  const NDArray in = x.compact();
  NDArray out = NDArray::empty(in.shape(), in.dtype(), in.device());
  if (out.size() > 0) backend.rms_norm(out.view(), in.view(), eps);
  return out;
}

// ---- relu and gelu backward ----------------------------------------------------------------------------

namespace {

using GradientKernel = void (Backend::*)(const StridedView&, const StridedView&, const StridedView&);

// An activation's gradient from g and the activation's input x, through the optional `kernel` when the
// device has it and g and x are one floating dtype, laid out alike and densely; std::nullopt otherwise (the
// caller composes its reference).
std::optional<NDArray> fused_activation_gradient(std::string_view op, OptionalKernel which, GradientKernel kernel,
                                                 const NDArray& g, const NDArray& x) {
  check_same_device(op, {&g, &x});
  NEEDLE_CHECK(g.shape() == x.shape(), ValueError, op, ": expected a gradient of the input's shape ",
               shape_str(x.shape()), ", got ", shape_str(g.shape()));
  Backend& backend = backend_of(x);
  if (!backend.implements(which) || !is_floating(x.dtype()) || g.dtype() != x.dtype()) return std::nullopt;
  // Operands in one dense memory order (a channels-last image) are read, and the result written, in it.
  if (const auto dense = detail::SharedDenseLayout::of({&g, &x})) {
    NDArray out = dense->empty(x.shape(), x.dtype(), x.device());
    (backend.*kernel)(dense->flat(out).view(), dense->flat(g).view(), dense->flat(x).view());
    return out;
  }
  if (g.is_compact() && x.is_compact()) {
    NDArray out = NDArray::empty(x.shape(), x.dtype(), x.device());
    if (out.size() > 0) (backend.*kernel)(out.view(), g.view(), x.view());
    return out;
  }
  return std::nullopt;
}

}  // namespace

NDArray relu_backward(const NDArray& g, const NDArray& x) {
  if (auto fused =
          fused_activation_gradient("relu_backward", OptionalKernel::relu_backward, &Backend::relu_backward, g, x)) {
    return std::move(*fused);
  }
  // The reference, and mixed layouts: a comparison and a select, which read any strides.
  return where(gt(x, NDArray::zeros({}, x.dtype(), x.device())), g, NDArray::zeros({}, g.dtype(), g.device()));
}

NDArray gelu_backward(const NDArray& g, const NDArray& x) {
  if (auto fused =
          fused_activation_gradient("gelu_backward", OptionalKernel::gelu_backward, &Backend::gelu_backward, g, x)) {
    return std::move(*fused);
  }
  return mul(g, gelu_grad(x));  // the reference, and mixed layouts
}

// ---- batch norm ----------------------------------------------------------------------------------------

BatchNormResult batch_norm(const NDArray& x, const NDArray& weight, const NDArray& bias, double eps) {
  check_same_device("batch_norm", {&x, &weight, &bias});
  check_same_dtype("batch_norm", {&x, &weight, &bias});
  check_floating("batch_norm", x);
  NEEDLE_CHECK(x.ndim() == 3, ValueError, "batch_norm: x must be (N, C, S), got shape ", shape_str(x.shape()));
  const std::int64_t channels = x.shape()[1];
  check_shape("batch_norm", "weight", weight, {channels});
  check_shape("batch_norm", "bias", bias, {channels});
  const NDArray in = x.compact();
  BatchNormResult r{NDArray::empty(in.shape(), in.dtype(), in.device()),
                    NDArray::empty({channels}, in.dtype(), in.device()),
                    NDArray::empty({channels}, in.dtype(), in.device())};
  backend_of(in).batch_norm(r.y.view(), r.mean.view(), r.var.view(), in.view(), weight.compact().view(),
                            bias.compact().view(), eps);
  return r;
}

BatchNormGrads batch_norm_backward(const NDArray& g, const NDArray& x, const NDArray& mean, const NDArray& var,
                                   const NDArray& weight, double eps) {
  check_same_device("batch_norm_backward", {&g, &x, &mean, &var, &weight});
  check_same_dtype("batch_norm_backward", {&x, &mean, &var, &weight});
  check_floating("batch_norm_backward", x);
  NEEDLE_CHECK(x.ndim() == 3, ValueError, "batch_norm_backward: x must be (N, C, S), got shape ", shape_str(x.shape()));
  check_shape("batch_norm_backward", "g", g, x.shape());
  const std::int64_t channels = x.shape()[1];
  for (const NDArray* a : {&mean, &var, &weight}) check_shape("batch_norm_backward", "statistic", *a, {channels});
  const NDArray in = x.compact();
  const NDArray grad = g.astype(x.dtype()).compact();
  BatchNormGrads r{NDArray::empty(in.shape(), in.dtype(), in.device()),
                   NDArray::empty({channels}, in.dtype(), in.device()),
                   NDArray::empty({channels}, in.dtype(), in.device())};
  backend_of(in).batch_norm_backward(r.dx.view(), r.dweight.view(), r.dbias.view(), grad.view(), in.view(),
                                     mean.compact().view(), var.compact().view(), weight.compact().view(), eps);
  return r;
}

// ---- attention -------------------------------------------------------------------------------------------

namespace {

void check_attention(std::string_view op, const NDArray& q, const NDArray& k, const NDArray& v) {
  check_same_device(op, {&q, &k, &v});
  check_same_dtype(op, {&q, &k, &v});
  check_floating(op, q);
  const std::size_t ndim = q.shape().size();
  const bool shapes_fit = ndim >= 3 && k.shape().size() == ndim && v.shape().size() == ndim &&
                          std::equal(q.shape().begin(), q.shape().end() - 2, k.shape().begin()) &&
                          std::equal(q.shape().begin(), q.shape().end() - 2, v.shape().begin()) &&
                          k.shape().back() == q.shape().back() && v.shape()[ndim - 2] == k.shape()[ndim - 2];
  NEEDLE_CHECK(shapes_fit, ValueError, op, ": expected q (..., L, d), k (..., S, d) and v (..., S, dv), got shapes ",
               shape_str(q.shape()), ", ", shape_str(k.shape()), " and ", shape_str(v.shape()));
}

// An attention operand as the kernels read it: itself when its rows are contiguous and its strides
// non-negative (a head of a (batch, length, heads, d) projection is), else a compact copy.
NDArray rows_in_place(const NDArray& a) {
  const Strides& s = a.strides();
  const bool in_place = (a.shape().back() <= 1 || s.back() == 1) &&
                        std::all_of(s.begin(), s.end(), [](std::int64_t stride) { return stride >= 0; });
  return in_place ? a : a.compact();
}

// A new array of `shape` whose memory follows the order of `like`'s axes (larger strides outside, the
// last axis innermost). Attention over the heads of a projection (batch, heads, length, d), a permuted
// view of (batch, length, heads, d), so writes its result and its gradients as (batch, length, heads, ...),
// and joining the heads again is a view, not a copy.
NDArray empty_in_order_of(const NDArray& like, const Shape& shape) {
  const auto ndim = static_cast<std::int64_t>(shape.size());
  Axes order(static_cast<std::size_t>(ndim - 1));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  const Strides& strides = like.strides();
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t x, std::int64_t y) {
    return strides[static_cast<std::size_t>(x)] > strides[static_cast<std::size_t>(y)];
  });
  order.push_back(ndim - 1);
  return detail::empty_in_memory_order(shape, order, like.dtype(), like.device());
}

// How the attention kernels walk the batch dimensions of the (..., rows, cols) operands (one batch shape for
// all) and of the (..., L) logsumexp. A kernel takes one batch stride per operand. When every operand's
// batch dimensions step through memory with one stride, one call covers every problem. Otherwise one batch
// axis is walked by the kernel and the others are looped over, one call per index. The walked axis is the
// longest (the last among equals): for the heads of a (batch, length, heads, d) projection, the kernel then
// walks the sequences of one head. A call's threads work on different sequences, far apart in memory;
// walking the heads of one sequence instead, they wrote heads that share rows (attention's backward of
// gpt_mini's shape, bench_kernels: 3.0 ms that way on 2 threads, 2.2 ms this way; on 1 thread the heads of a
// sequence were the better order, 3.9 against 4.3 ms, as they reuse the rows' cache lines).
class BatchSlabs {
 public:
  BatchSlabs(const Shape& batch, const std::vector<const NDArray*>& arrays) : batch_(batch) {
    const auto merges = [&](const NDArray& a) {
      for (std::size_t d = 0; d + 1 < batch_.size(); ++d) {
        if (batch_[d] != 1 && a.strides()[d] != a.strides()[d + 1] * batch_[d + 1]) return false;
      }
      return true;
    };
    one_call_ = std::all_of(arrays.begin(), arrays.end(), [&](const NDArray* a) { return merges(*a); });
    walked_ = batch_.size() - 1;
    for (std::size_t d = batch_.size(); d-- > 0;) {
      if (batch_[d] > batch_[walked_]) walked_ = d;
    }
    // The logsumexp's memory order: the looped axes, then the walked one, then L; all in order for one call.
    for (std::size_t d = 0; d < batch_.size(); ++d) {
      if (one_call_ || d != walked_) rows_order_.push_back(static_cast<std::int64_t>(d));
    }
    if (!one_call_) rows_order_.push_back(static_cast<std::int64_t>(walked_));
    rows_order_.push_back(static_cast<std::int64_t>(batch_.size()));
  }

  // A new (..., L) logsumexp whose rows each call reads as one contiguous (count, L) block.
  [[nodiscard]] NDArray empty_rows(std::int64_t length, DType dtype, Device device) const {
    Shape shape = batch_;
    shape.push_back(length);
    return detail::empty_in_memory_order(shape, rows_order_, dtype, device);
  }
  // `rows` (..., L) laid out as empty_rows lays it out: itself when it is, else a copy.
  [[nodiscard]] NDArray rows_for_kernels(const NDArray& rows) const {
    if (rows.permute(rows_order_).is_compact()) return rows;
    NDArray copy = empty_rows(rows.shape().back(), rows.dtype(), rows.device());
    copy.assign(rows);
    return copy;
  }

  // Calls kernel(views, rows_view): (count, rows, cols) views of `arrays` and the (count, L) view of `rows` (from
  // empty_rows or rows_for_kernels) for each slab of problems.
  template <typename Kernel>
  void run(const std::vector<const NDArray*>& arrays, const NDArray& rows, Kernel&& kernel) const {
    const std::size_t batch_dims = batch_.size();
    const std::int64_t problems = one_call_ ? numel(batch_) : batch_[walked_];
    const std::int64_t calls = numel(batch_) / std::max<std::int64_t>(problems, 1);
    // The problem axis's stride: for one call, that of the last batch axis, through which all merge.
    const std::size_t step_axis = one_call_ ? batch_dims - 1 : walked_;
    const auto slab = [&](const NDArray& a, const std::vector<std::int64_t>& index) {
      StridedView view = a.view();
      std::int64_t offset = 0;
      for (std::size_t d = 0; d < index.size(); ++d) offset += index[d] * view.strides[d];
      view.data = static_cast<std::byte*>(view.data) + offset * static_cast<std::int64_t>(itemsize(view.dtype));
      const Shape& shape = a.shape();
      if (shape.size() == batch_dims + 1) {  // the logsumexp
        view.shape = {problems, shape.back()};
        view.strides = {view.strides[step_axis], view.strides.back()};
      } else {
        view.shape = {problems, shape[batch_dims], shape.back()};
        view.strides = {view.strides[step_axis], view.strides[batch_dims], view.strides.back()};
      }
      return view;
    };
    std::vector<std::int64_t> index(batch_dims, 0);  // the walked axis (and all, for one call) stays 0
    for (std::int64_t call = 0; call < calls; ++call) {
      std::vector<StridedView> views;
      views.reserve(arrays.size());
      for (const NDArray* a : arrays) views.push_back(slab(*a, index));
      kernel(views, slab(rows, index));
      for (std::size_t d = batch_dims; d-- > 0;) {  // the next index of the looped axes, the last fastest
        if (one_call_ || d == walked_) continue;
        if (++index[d] < batch_[d]) break;
        index[d] = 0;
      }
    }
  }

 private:
  Shape batch_;
  bool one_call_ = true;
  std::size_t walked_ = 0;
  Axes rows_order_;
};

}  // namespace

AttentionResult attention(const NDArray& q, const NDArray& k, const NDArray& v, double scale, bool causal) {
  check_attention("attention", q, k, v);
  const NDArray qc = rows_in_place(q);
  const NDArray kc = rows_in_place(k);
  const NDArray vc = rows_in_place(v);
  Shape out_shape = q.shape();
  out_shape.back() = v.shape().back();
  NDArray out = empty_in_order_of(qc, out_shape);
  const BatchSlabs slabs(Shape(q.shape().begin(), q.shape().end() - 2), {&qc, &kc, &vc, &out});
  AttentionResult r{out, slabs.empty_rows(q.shape()[q.ndim() - 2], q.dtype(), q.device())};
  if (r.logsumexp.size() == 0) return r;
  Backend& backend = backend_of(q);
  slabs.run({&qc, &kc, &vc, &r.out}, r.logsumexp, [&](const std::vector<StridedView>& s, const StridedView& lse) {
    backend.attention(s[3], lse, s[0], s[1], s[2], scale, causal);
  });
  return r;
}

NDArray decode_attention(const NDArray& q, const NDArray& k, const NDArray& v, double scale) {
  constexpr std::string_view op = "decode_attention";
  check_same_device(op, {&q, &k, &v});
  check_same_dtype(op, {&q, &k, &v});
  check_floating(op, q);
  NEEDLE_CHECK(q.ndim() == 2 && k.ndim() == 3 && v.ndim() == 3 && k.shape()[0] == q.shape()[0] &&
                   v.shape()[0] == q.shape()[0] && k.shape()[2] == q.shape()[1] && v.shape()[1] == k.shape()[1] &&
                   k.shape()[1] >= 1,
               ValueError, op, ": expected q (B, d), k (B, S, d) and v (B, S, dv) with S >= 1, got shapes ",
               shape_str(q.shape()), ", ", shape_str(k.shape()), " and ", shape_str(v.shape()));
  // The kernel reads k and v through their batch and row strides; only the last axis must be contiguous.
  const NDArray qc = q.compact();
  const NDArray kc = rows_in_place(k);
  const NDArray vc = rows_in_place(v);
  NDArray out = NDArray::empty({q.shape()[0], v.shape()[2]}, q.dtype(), q.device());
  if (out.size() > 0) backend_of(q).decode_attention(out.view(), qc.view(), kc.view(), vc.view(), scale);
  return out;
}

AttentionGrads attention_backward(const NDArray& g, const NDArray& q, const NDArray& k, const NDArray& v,
                                  const AttentionResult& forward, double scale, bool causal) {
  check_attention("attention_backward", q, k, v);
  check_same_device("attention_backward", {&q, &g, &forward.out, &forward.logsumexp});
  check_shape("attention_backward", "g", g, forward.out.shape());
  check_shape("attention_backward", "logsumexp", forward.logsumexp, Shape(q.shape().begin(), q.shape().end() - 1));
  const NDArray qc = rows_in_place(q);
  const NDArray kc = rows_in_place(k);
  const NDArray vc = rows_in_place(v);
  const NDArray gc = rows_in_place(g.astype(q.dtype()));
  const NDArray out = rows_in_place(forward.out.astype(q.dtype()));
  // Each gradient laid out like its input, so that the heads' gradients join again as views.
  AttentionGrads r{empty_in_order_of(qc, q.shape()), empty_in_order_of(kc, k.shape()),
                   empty_in_order_of(vc, v.shape())};
  if (r.dq.size() + r.dk.size() + r.dv.size() == 0) return r;
  const std::vector<const NDArray*> operands = {&qc, &kc, &vc, &gc, &out, &r.dq, &r.dk, &r.dv};
  const BatchSlabs slabs(Shape(q.shape().begin(), q.shape().end() - 2), operands);
  const NDArray lse = slabs.rows_for_kernels(forward.logsumexp.astype(q.dtype()));
  Backend& backend = backend_of(q);
  slabs.run(operands, lse, [&](const std::vector<StridedView>& s, const StridedView& rows) {
    backend.attention_backward(s[5], s[6], s[7], s[3], s[0], s[1], s[2], s[4], rows, scale, causal);
  });
  return r;
}

// ---- LSTM cell ---------------------------------------------------------------------------------------------

void lstm_cell(const NDArray& h, const NDArray& c, const NDArray& gates, const NDArray* gates2, const NDArray* c_prev) {
  std::vector<const NDArray*> operands = {&h, &c, &gates};
  if (gates2 != nullptr) operands.push_back(gates2);
  if (c_prev != nullptr) operands.push_back(c_prev);
  check_same_device("lstm_cell", operands);
  check_same_dtype("lstm_cell", operands);
  check_floating("lstm_cell", h);
  NEEDLE_CHECK(h.ndim() == 2 && gates.ndim() == 2, ValueError, "lstm_cell: expected h (B, H) and gates (B, 4H), got ",
               shape_str(h.shape()), " and ", shape_str(gates.shape()));
  if (h.size() == 0) return;
  // Views of the inputs must outlive the kernel call: keep the (possibly compacted) arrays alive.
  const NDArray z = unit_column_stride(gates);
  const NDArray z2 = gates2 != nullptr ? unit_column_stride(*gates2) : NDArray();
  const NDArray cp = c_prev != nullptr ? unit_column_stride(*c_prev) : NDArray();
  backend_of(h).lstm_cell(h.view(), c.view(), z.view(), gates2 != nullptr ? z2.view() : StridedView{},
                          c_prev != nullptr ? cp.view() : StridedView{});
}

void lstm_cell_backward(const NDArray& dgates, const NDArray* dc_prev, const NDArray& dh, const NDArray& dc,
                        const NDArray& gates, const NDArray* gates2, const NDArray* c_prev) {
  NEEDLE_CHECK((dc_prev != nullptr) == (c_prev != nullptr), ValueError,
               "lstm_cell_backward: dc_prev must be given exactly when c_prev is");
  std::vector<const NDArray*> operands = {&dgates, &dh, &dc, &gates};
  if (gates2 != nullptr) operands.push_back(gates2);
  if (c_prev != nullptr) operands.push_back(c_prev);
  if (dc_prev != nullptr) operands.push_back(dc_prev);
  check_same_device("lstm_cell_backward", operands);
  check_same_dtype("lstm_cell_backward", {&dgates, &gates});
  check_floating("lstm_cell_backward", gates);
  NEEDLE_CHECK(gates.ndim() == 2, ValueError, "lstm_cell_backward: expected gates (B, 4H), got ",
               shape_str(gates.shape()));
  if (gates.size() == 0) return;
  const DType dtype = gates.dtype();
  const NDArray z = unit_column_stride(gates);
  const NDArray z2 = gates2 != nullptr ? unit_column_stride(gates2->astype(dtype)) : NDArray();
  const NDArray cp = c_prev != nullptr ? unit_column_stride(c_prev->astype(dtype)) : NDArray();
  const NDArray gh = unit_column_stride(dh.astype(dtype));
  const NDArray gc = unit_column_stride(dc.astype(dtype));
  backend_of(gates).lstm_cell_backward(dgates.view(), optional_view(dc_prev), gh.view(), gc.view(), z.view(),
                                       gates2 != nullptr ? z2.view() : StridedView{},
                                       c_prev != nullptr ? cp.view() : StridedView{});
}

// ---- convolution data movement ----------------------------------------------------------------------------

NDArray im2col(const NDArray& image, std::int64_t kernel, std::int64_t stride, std::int64_t padding) {
  check_floating("im2col", image);
  NEEDLE_CHECK(image.ndim() == 4, ValueError, "im2col: expected an (N, H, W, C) image, got shape ",
               shape_str(image.shape()));
  const Shape& s = image.shape();
  NEEDLE_CHECK(
      kernel >= 1 && stride >= 1 && padding >= 0 && s[1] + 2 * padding >= kernel && s[2] + 2 * padding >= kernel,
      ValueError, "im2col: kernel size ", kernel, ", stride ", stride, " and padding ", padding,
      " do not fit an image of shape ", shape_str(s));
  const std::int64_t h_out = (s[1] + 2 * padding - kernel) / stride + 1;
  const std::int64_t w_out = (s[2] + 2 * padding - kernel) / stride + 1;
  NDArray cols = NDArray::empty({s[0], h_out, w_out, kernel, kernel, s[3]}, image.dtype(), image.device());
  backend_of(image).im2col(cols.view(), image.view(), stride, padding);
  return cols;
}

NDArray col2im(const NDArray& cols, const Shape& image_shape, std::int64_t stride, std::int64_t padding) {
  check_floating("col2im", cols);
  NEEDLE_CHECK(cols.ndim() == 6 && image_shape.size() == 4, ValueError,
               "col2im: expected columns (N, H_out, W_out, K, K, C) and an (N, H, W, C) image, got shapes ",
               shape_str(cols.shape()), " and ", shape_str(image_shape));
  const NDArray columns = cols.compact();
  NDArray image = NDArray::empty(image_shape, cols.dtype(), cols.device());
  backend_of(image).col2im(image.view(), columns.view(), stride, padding);
  return image;
}

// ---- convolution -------------------------------------------------------------------------------------------

namespace {

// The geometry of a K x K convolution of an (N, H, W, C) image into C_out channels, checked as the conv ops
// check it, with the names of the array function the user's call reached.
struct ConvShape {
  std::int64_t n, h, w, c, k, c_out, stride, padding;
  [[nodiscard]] std::int64_t h_out() const { return (h + 2 * padding - k) / stride + 1; }
  [[nodiscard]] std::int64_t w_out() const { return (w + 2 * padding - k) / stride + 1; }
  [[nodiscard]] std::int64_t rows() const { return n * h_out() * w_out(); }
  [[nodiscard]] std::int64_t patch() const { return k * k * c; }
  [[nodiscard]] Shape cells() const { return {n, h_out(), w_out(), c_out}; }
  [[nodiscard]] Shape weight() const { return {k, k, c, c_out}; }
  [[nodiscard]] Shape image() const { return {n, h, w, c}; }
};

ConvShape conv_shape(std::string_view op, const Shape& image, std::int64_t kernel, std::int64_t c_out,
                     std::int64_t stride, std::int64_t padding) {
  NEEDLE_CHECK(image.size() == 4, ValueError, op, ": expected an (N, H, W, C) image, got shape ", shape_str(image));
  NEEDLE_CHECK(kernel >= 1 && stride >= 1 && padding >= 0 && image[1] + 2 * padding >= kernel &&
                   image[2] + 2 * padding >= kernel,
               ValueError, op, ": kernel size ", kernel, ", stride ", stride, " and padding ", padding,
               " do not fit an image of shape ", shape_str(image));
  return {image[0], image[1], image[2], image[3], kernel, c_out, stride, padding};
}

// Both operands floating, of one dtype and device, the second 4-d (`expected` names its axes).
void check_conv_operands(std::string_view op, const NDArray& first, const NDArray& second, std::string_view expected) {
  check_floating(op, first);
  check_same_dtype(op, {&first, &second});
  check_same_device(op, {&first, &second});
  NEEDLE_CHECK(second.ndim() == 4, ValueError, op, ": expected ", expected, ", got shape ", shape_str(second.shape()));
}

void check_conv_operand(std::string_view op, std::string_view name, const NDArray& a, const Shape& expected) {
  NEEDLE_CHECK(a.shape() == expected, ValueError, op, ": expected ", name, " of shape ", shape_str(expected), ", got ",
               shape_str(a.shape()));
}

}  // namespace

NDArray conv2d(const NDArray& image, const NDArray& weight, std::int64_t stride, std::int64_t padding) {
  constexpr std::string_view op = "conv2d";
  check_conv_operands(op, image, weight, "a (K, K, C, C_out) weight");
  const ConvShape s = conv_shape(op, image.shape(), weight.shape()[0], weight.shape()[3], stride, padding);
  check_conv_operand(op, "weight", weight, s.weight());
  Backend& backend = backend_of(image);
  if (backend.implements(OptionalKernel::conv2d)) {
    NDArray out = NDArray::empty(s.cells(), image.dtype(), image.device());
    if (out.size() > 0) backend.conv2d(out.view(), image.view(), weight.compact().view(), stride, padding);
    return out;
  }
  return matmul(im2col(image, s.k, stride, padding).reshape({s.rows(), s.patch()}),
                weight.reshape({s.patch(), s.c_out}))
      .reshape(s.cells());
}

NDArray conv2d_weight_grad(const NDArray& image, const NDArray& grad_out, std::int64_t kernel, std::int64_t stride,
                           std::int64_t padding) {
  constexpr std::string_view op = "conv2d_weight_grad";
  check_conv_operands(op, image, grad_out, "an (N, H_out, W_out, C_out) gradient");
  const ConvShape s = conv_shape(op, image.shape(), kernel, grad_out.shape()[3], stride, padding);
  check_conv_operand(op, "grad_out", grad_out, s.cells());
  Backend& backend = backend_of(image);
  if (backend.implements(OptionalKernel::conv2d_weight_grad)) {
    NDArray out = NDArray::empty(s.weight(), image.dtype(), image.device());
    if (out.size() > 0) {
      backend.conv2d_weight_grad(out.view(), image.view(), grad_out.compact().view(), stride, padding);
    }
    return out;
  }
  return matmul(im2col(image, s.k, stride, padding).reshape({s.rows(), s.patch()}).swapaxes(0, 1),
                grad_out.reshape({s.rows(), s.c_out}))
      .reshape(s.weight());
}

NDArray conv2d_input_grad(const NDArray& grad_out, const NDArray& weight, const Shape& image_shape, std::int64_t stride,
                          std::int64_t padding) {
  constexpr std::string_view op = "conv2d_input_grad";
  check_conv_operands(op, grad_out, weight, "a (K, K, C, C_out) weight");
  check_valid_shape(image_shape, op);
  const ConvShape s = conv_shape(op, image_shape, weight.shape()[0], weight.shape()[3], stride, padding);
  check_conv_operand(op, "weight", weight, s.weight());
  check_conv_operand(op, "grad_out", grad_out, s.cells());
  Backend& backend = backend_of(grad_out);
  if (backend.implements(OptionalKernel::conv2d_input_grad)) {
    NDArray out = NDArray::empty(image_shape, grad_out.dtype(), grad_out.device());
    if (out.size() > 0) {
      backend.conv2d_input_grad(out.view(), grad_out.compact().view(), weight.compact().view(), stride, padding);
    }
    return out;
  }
  const NDArray columns =
      matmul(grad_out.reshape({s.rows(), s.c_out}), weight.reshape({s.patch(), s.c_out}).swapaxes(0, 1))
          .reshape({s.n, s.h_out(), s.w_out(), s.k, s.k, s.c});
  return col2im(columns, image_shape, stride, padding);
}

// ---- max pooling ------------------------------------------------------------------------------------------

namespace {

// The (N', C', H_out, W_out, K * K) windows of `padded` (N', C', H + 2p, W + 2p), compact.
NDArray pool_windows(const NDArray& padded, std::int64_t kernel, std::int64_t stride, std::int64_t h_out,
                     std::int64_t w_out) {
  const NDArray a = padded.compact();
  const Shape& s = a.shape();
  const Strides& st = a.strides();
  // With one window along an axis its step is never taken; stride * (row stride) might not fit then.
  const std::int64_t step_y = h_out > 1 ? st[2] * stride : st[2];
  const std::int64_t step_x = w_out > 1 ? st[3] * stride : st[3];
  return a
      .as_strided({s[0], s[1], h_out, w_out, kernel, kernel}, {st[0], st[1], step_y, step_x, st[2], st[3]}, a.offset())
      .compact()
      .reshape({s[0], s[1], h_out, w_out, kernel * kernel});
}

NDArray pad_plane(const NDArray& a, std::int64_t padding, const Scalar& value) {
  return padding == 0 ? a : pad(a, {{0, 0}, {0, 0}, {padding, padding}, {padding, padding}}, value);
}

}  // namespace

MaxPoolResult max_pool2d(const NDArray& image, std::int64_t kernel, std::int64_t stride, std::int64_t padding) {
  check_floating("max_pool2d", image);
  NEEDLE_CHECK(image.ndim() == 4, ValueError, "max_pool2d: expected an (N, C, H, W) image, got shape ",
               shape_str(image.shape()));
  const Shape& s = image.shape();
  NEEDLE_CHECK(kernel >= 1 && stride >= 1 && padding >= 0 && padding <= kernel / 2, ValueError,
               "max_pool2d: expected kernel >= 1, stride >= 1 and 0 <= padding <= kernel / 2, got kernel ", kernel,
               ", stride ", stride, ", padding ", padding);
  // padding <= kernel / 2, so 2 * padding fits; every window then holds an image cell once H, W >= 1.
  const std::optional<std::int64_t> height = checked_add(s[2], 2 * padding);
  const std::optional<std::int64_t> width = checked_add(s[3], 2 * padding);
  NEEDLE_CHECK(s[2] >= 1 && s[3] >= 1 && height && width && *height >= kernel && *width >= kernel, ValueError,
               "max_pool2d: kernel ", kernel, " with padding ", padding, " does not fit an image of shape ",
               shape_str(s));
  const Shape pooled{s[0], s[1], (*height - kernel) / stride + 1, (*width - kernel) / stride + 1};
  Backend& backend = backend_of(image);
  if (backend.implements(OptionalKernel::max_pool2d)) {
    // A channels-last image (a convolution's or batch norm's result) pools into channels-last results, which
    // the next convolution reads in place.
    const bool channels_last = detail::is_channels_last(image);
    const auto result = [&](DType dtype) {
      return channels_last ? detail::empty_in_memory_order(pooled, detail::kToChannelsLast, dtype, image.device())
                           : NDArray::empty(pooled, dtype, image.device());
    };
    MaxPoolResult r{result(image.dtype()), result(DType::Int64)};
    if (r.values.size() > 0)
      backend.max_pool2d(r.values.view(), r.indices.view(), image.view(), kernel, stride, padding);
    return r;
  }
  // The reference: argmax over the unfolded windows of the image padded with -inf. The same unfolding of
  // the plane positions iy * W + ix, padded with H * W, gives the argmax's position; a window whose maximum
  // is -inf may have it in the padding, and then its first image cell is the answer (the smallest position,
  // positions growing in row-major order).
  NEEDLE_CHECK(checked_numel({s[0], s[1], pooled[2], pooled[3], kernel, kernel}), ValueError, "max_pool2d: kernel ",
               kernel, " and stride ", stride, " make too many window cells for an image of shape ", shape_str(s));
  if (image.size() == 0) {
    return {NDArray::empty(pooled, image.dtype(), image.device()),
            NDArray::empty(pooled, DType::Int64, image.device())};
  }
  const NDArray windows = pool_windows(pad_plane(image, padding, Scalar(-std::numeric_limits<double>::infinity())),
                                       kernel, stride, pooled[2], pooled[3]);
  const NDArray picked = argmax(windows, 4, /*keepdims=*/true);
  const std::int64_t plane = s[2] * s[3];
  const NDArray positions =
      pool_windows(pad_plane(NDArray::arange(plane, DType::Int64, image.device()).reshape({1, 1, s[2], s[3]}), padding,
                             Scalar(plane)),
                   kernel, stride, pooled[2], pooled[3]);
  const NDArray position = gather(positions.broadcast_to(windows.shape()), 4, picked);
  const NDArray first_cell = min(positions, {4}, /*keepdims=*/true).broadcast_to(position.shape());
  return {gather(windows, 4, picked).reshape(pooled),
          where(ge(position, NDArray::full({}, Scalar(plane), DType::Int64, image.device())), first_cell, position)
              .reshape(pooled)};
}

NDArray max_pool2d_backward(const NDArray& grad_out, const NDArray& indices, const Shape& image_shape) {
  check_same_device("max_pool2d_backward", {&grad_out, &indices});
  check_floating("max_pool2d_backward", grad_out);
  NEEDLE_CHECK(indices.dtype() == DType::Int64, TypeError, "max_pool2d_backward: expected int64 indices, got ",
               dtype_name(indices.dtype()));
  NEEDLE_CHECK(grad_out.ndim() == 4 && image_shape.size() == 4 && indices.shape() == grad_out.shape() &&
                   grad_out.shape()[0] == image_shape[0] && grad_out.shape()[1] == image_shape[1],
               ValueError,
               "max_pool2d_backward: expected a gradient and indices of one shape (N, C, H_out, W_out) and an image "
               "shape (N, C, H, W), got ",
               shape_str(grad_out.shape()), ", ", shape_str(indices.shape()), " and ", shape_str(image_shape));
  check_valid_shape(image_shape, "max_pool2d_backward");
  const Shape& g = grad_out.shape();
  const std::int64_t plane = image_shape[2] * image_shape[3];
  Backend& backend = backend_of(grad_out);
  if (backend.implements(OptionalKernel::max_pool2d_backward)) {
    // The kernel checks each index as it reads it (kernels.def). Channels-last indices (of a channels-last
    // image) give a channels-last image gradient, which the convolution's backward reads in place.
    const bool channels_last = detail::is_channels_last(indices);
    const auto in_layout = [&](const NDArray& a) {
      return channels_last ? a.permute(detail::kToChannelsLast).compact().permute(detail::kFromChannelsLast)
                           : a.compact();
    };
    const NDArray grad = in_layout(grad_out);
    const NDArray where_from = in_layout(indices);
    NDArray out = channels_last ? detail::empty_in_memory_order(image_shape, detail::kToChannelsLast, grad_out.dtype(),
                                                                grad_out.device())
                                : NDArray::empty(image_shape, grad_out.dtype(), grad_out.device());
    if (out.size() > 0) backend.max_pool2d_backward(out.view(), grad.view(), where_from.view());
    return out;
  }
  if (indices.size() > 0) {
    const std::int64_t lowest = min(indices).item().to<std::int64_t>();
    const std::int64_t highest = max(indices).item().to<std::int64_t>();
    NEEDLE_CHECK(lowest >= 0 && highest < plane, IndexError, "max_pool2d_backward: index ",
                 lowest < 0 ? lowest : highest, " is out of bounds for an image plane of ", plane, " cells");
  }
  const Shape flat_out{g[0], g[1], g[2] * g[3]};
  return scatter_add_to_zeros({image_shape[0], image_shape[1], plane}, 2, indices.reshape(flat_out),
                              grad_out.reshape(flat_out))
      .reshape(image_shape);
}

// ---- optimizer updates ------------------------------------------------------------------------------------

namespace {

// An update visits each element once, in any order. So the arrays it writes may be laid out in any dense
// memory order, as long as they share it: a PyTorch-shaped view of a weight stored in Needle's layout and its
// optimizer state are updated as compact views in their memory order, with no layout copy. Returns the axes
// from the largest stride to the smallest (the identity for contiguous arrays); permuting by them makes every
// written array contiguous.
std::vector<std::int64_t> update_order(std::string_view op, const NDArray& param,
                                       std::initializer_list<const NDArray*> state) {
  Axes order = detail::memory_order(param);
  NEEDLE_CHECK(param.permute(order).is_compact(), ValueError, op,
               ": the parameter must be dense in memory (contiguous, or a permuted view of contiguous memory), "
               "got strides ",
               shape_str(param.strides()), " for shape ", shape_str(param.shape()));
  for (const NDArray* a : state) {
    NEEDLE_CHECK(a == nullptr || detail::same_layout(*a, param), ValueError, op, ": optimizer state with strides ",
                 shape_str(a->strides()), " must be laid out like the parameter, strides ", shape_str(param.strides()),
                 " for shape ", shape_str(param.shape()));
  }
  return order;
}

}  // namespace

void adam_update(NDArray& param, const NDArray& grad, NDArray& exp_avg, NDArray& exp_avg_sq, const AdamStep& step) {
  check_same_device("adam_update", {&param, &grad, &exp_avg, &exp_avg_sq});
  NEEDLE_CHECK(is_floating(param.dtype()), TypeError, "adam_update: parameters must be floating point, got dtype ",
               dtype_name(param.dtype()));
  for (const NDArray* a : {&grad, static_cast<const NDArray*>(&exp_avg), static_cast<const NDArray*>(&exp_avg_sq)}) {
    NEEDLE_CHECK(a->shape() == param.shape(), ValueError, "adam_update: expected shape ", shape_str(param.shape()),
                 " like the parameter, got ", shape_str(a->shape()));
  }
  for (const NDArray* a : {static_cast<const NDArray*>(&exp_avg), static_cast<const NDArray*>(&exp_avg_sq)}) {
    NEEDLE_CHECK(a->dtype() == param.dtype(), TypeError, "adam_update: optimizer state of dtype ",
                 dtype_name(a->dtype()), " for a parameter of dtype ", dtype_name(param.dtype()));
  }
  const std::vector<std::int64_t> order = update_order("adam_update", param, {&exp_avg, &exp_avg_sq});
  if (param.size() == 0) return;
  const NDArray g = grad.permute(order).astype(param.dtype()).compact();
  // In-place writes: a graph that saved the parameter must notice (Storage::version).
  for (NDArray* a : {&param, &exp_avg, &exp_avg_sq}) a->storage()->increment_version();
  backend_of(param).adam_update(param.permute(order).view(), g.view(), exp_avg.permute(order).view(),
                                exp_avg_sq.permute(order).view(), step);
}

void sgd_update(NDArray& param, const NDArray& grad, NDArray* momentum_buffer, const SgdStep& step) {
  NEEDLE_CHECK(momentum_buffer != nullptr || step.momentum == 0.0, ValueError, "sgd_update: momentum ", step.momentum,
               " needs a momentum buffer");
  std::vector<const NDArray*> operands = {&param, &grad};
  if (momentum_buffer != nullptr) operands.push_back(momentum_buffer);
  check_same_device("sgd_update", operands);
  NEEDLE_CHECK(is_floating(param.dtype()), TypeError, "sgd_update: parameters must be floating point, got dtype ",
               dtype_name(param.dtype()));
  for (std::size_t k = 1; k < operands.size(); ++k) {
    NEEDLE_CHECK(operands[k]->shape() == param.shape(), ValueError, "sgd_update: expected shape ",
                 shape_str(param.shape()), " like the parameter, got ", shape_str(operands[k]->shape()));
  }
  if (momentum_buffer != nullptr) {
    NEEDLE_CHECK(momentum_buffer->dtype() == param.dtype(), TypeError, "sgd_update: momentum buffer of dtype ",
                 dtype_name(momentum_buffer->dtype()), " for a parameter of dtype ", dtype_name(param.dtype()));
  }
  const std::vector<std::int64_t> order = update_order("sgd_update", param, {momentum_buffer});
  if (param.size() == 0) return;
  const NDArray g = grad.permute(order).astype(param.dtype()).compact();
  const StridedView u = momentum_buffer != nullptr ? momentum_buffer->permute(order).view() : StridedView{};
  // In-place writes: a graph that saved the parameter must notice (Storage::version).
  param.storage()->increment_version();
  if (momentum_buffer != nullptr) momentum_buffer->storage()->increment_version();
  backend_of(param).sgd_update(param.permute(order).view(), g.view(), u, step);
}

}  // namespace needle
