// The array layer's computations: validate, choose dtypes, broadcast, allocate, call the backend.
// Kernels never see mismatched shapes or dtypes; every error is raised here with the op's name.
#include "needle/core/array_ops.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "core/array_checks.h"
#include "core/dense_layout.h"
#include "needle/core/checked_math.h"

namespace needle {

namespace {

using detail::backend_of;
using detail::check_same_device;
using detail::SharedDenseLayout;

// The dtype the kernel computes in for `op` on operands promoted to `common`.
DType binary_compute_dtype(BinaryOp op, DType common) {
  if (op == BinaryOp::Div) return float_result_type(common);  // true division, as in Python 3
  if (common == DType::Bool && (op == BinaryOp::Sub || op == BinaryOp::Pow)) {
    throw TypeError(str(binary_op_name(op), ": not supported for bool arrays"));
  }
  return common;
}

// Bool addition and multiplication are logical or/and (NumPy's and PyTorch's behaviour).
BinaryOp bool_equivalent(BinaryOp op, DType compute) {
  if (compute != DType::Bool) return op;
  if (op == BinaryOp::Add) return BinaryOp::Maximum;
  if (op == BinaryOp::Mul) return BinaryOp::Minimum;
  return op;
}

// A binary operand converted to `compute` and broadcast to `shape`, kept in `holder`; or `a` itself when
// neither step would change anything, which is the common case: for tiny arrays the copies of shape and
// strides those steps make cost more than the arithmetic.
const NDArray& as_operand(const NDArray& a, DType compute, const Shape& shape, std::optional<NDArray>& holder) {
  if (a.dtype() == compute && a.shape() == shape) return a;
  holder = a.astype(compute).broadcast_to(shape);
  return *holder;
}

NDArray run_binary(BinaryOp op, const NDArray& a, const NDArray& b, DType compute, const Shape& out_shape) {
  const DType out_dtype = is_comparison(op) ? DType::Bool : compute;
  std::optional<NDArray> lhs_holder;
  std::optional<NDArray> rhs_holder;
  const NDArray& lhs = as_operand(a, compute, out_shape, lhs_holder);
  const NDArray& rhs = as_operand(b, compute, out_shape, rhs_holder);
  if (const auto dense = SharedDenseLayout::of({&lhs, &rhs})) {
    NDArray out = dense->empty(out_shape, out_dtype, a.device());
    backend_of(a).binary(bool_equivalent(op, compute), dense->flat(out).view(), dense->flat(lhs).view(),
                         dense->flat(rhs).view());
    return out;
  }
  NDArray out = NDArray::empty(out_shape, out_dtype, a.device());
  if (out.size() == 0) return out;
  backend_of(a).binary(bool_equivalent(op, compute), out.view(), lhs.view(), rhs.view());
  return out;
}

// The reduced axes of `a` (all of them when `axes` is empty) and the keepdims shape of the result.
struct Reduction {
  std::vector<std::int64_t> axes;
  Shape kept_shape;    // a's shape with reduced axes set to 1
  Shape result_shape;  // kept_shape without the reduced axes (keepdims=false)
  std::int64_t count;  // number of elements folded into each output
};

Reduction plan_reduction(const NDArray& a, const Axes& axes, std::string_view op) {
  Reduction r;
  if (axes.empty()) {
    r.axes.resize(static_cast<std::size_t>(a.ndim()));
    std::iota(r.axes.begin(), r.axes.end(), 0);
  } else {
    r.axes = normalize_axes(axes, a.ndim(), op);
  }
  r.kept_shape = a.shape();
  r.count = 1;
  for (std::int64_t axis : r.axes) {
    r.count *= a.shape()[static_cast<std::size_t>(axis)];
    r.kept_shape[static_cast<std::size_t>(axis)] = 1;
  }
  for (std::size_t i = 0; i < r.kept_shape.size(); ++i) {
    if (std::find(r.axes.begin(), r.axes.end(), static_cast<std::int64_t>(i)) == r.axes.end()) {
      r.result_shape.push_back(r.kept_shape[i]);
    }
  }
  return r;
}

NDArray run_reduce(ReduceOp op, std::string_view name, const NDArray& a, DType dtype, const Axes& axes, bool keepdims) {
  const Reduction r = plan_reduction(a, axes, name);
  NEEDLE_CHECK(op == ReduceOp::Sum || r.count > 0 || numel(r.kept_shape) == 0, ValueError, name,
               ": cannot reduce over an empty axis (array of shape ", shape_str(a.shape()), ", axes ",
               shape_str(r.axes), ") because the operation has no identity");
  NDArray out = NDArray::empty(r.kept_shape, dtype, a.device());
  if (out.size() > 0) backend_of(a).reduce(op, out.view(), a.astype(dtype).view());
  return keepdims ? out : out.reshape(r.result_shape);
}

NDArray run_arg_reduce(ArgReduceOp op, std::string_view name, const NDArray& a, std::optional<std::int64_t> axis,
                       bool keepdims) {
  // Bool is compared as 0/1, which gives NumPy's answer.
  const NDArray input = a.dtype() == DType::Bool ? a.astype(DType::Int32) : a;
  if (!axis) {
    NEEDLE_CHECK(a.size() > 0, ValueError, name, ": attempt to get ", name, " of an empty array of shape ",
                 shape_str(a.shape()));
    NDArray flat_result = run_arg_reduce(op, name, input.reshape({a.size()}), 0, false);
    return keepdims ? flat_result.reshape(Shape(static_cast<std::size_t>(a.ndim()), 1)) : flat_result;
  }
  const std::int64_t ax = normalize_axis(*axis, a.ndim(), name);
  const Reduction r = plan_reduction(a, {ax}, name);
  NEEDLE_CHECK(r.count > 0 || numel(r.kept_shape) == 0, ValueError, name, ": attempt to get ", name,
               " of an empty axis ", ax, " (array of shape ", shape_str(a.shape()), ")");
  NDArray out = NDArray::empty(r.kept_shape, DType::Int64, a.device());
  if (out.size() > 0) backend_of(a).arg_reduce(op, out.view(), input.view(), ax);
  return keepdims ? out : out.reshape(r.result_shape);
}

// An index along `axis` selecting [start, start + length) and full slices elsewhere.
Index slab(std::int64_t ndim, std::int64_t axis, std::int64_t start, std::int64_t length) {
  Index idx(static_cast<std::size_t>(ndim), IndexItem::range());
  idx[static_cast<std::size_t>(axis)] = IndexItem::range(start, start + length);
  return idx;
}

DType common_dtype(const std::vector<NDArray>& arrays) {
  DType dtype = arrays.front().dtype();
  for (const NDArray& a : arrays) dtype = promote_types(dtype, a.dtype());
  return dtype;
}

// Checks an integer index array for gather/scatter_add and returns it as int64 with negative
// entries wrapped, raising IndexError for entries outside [-size, size).
NDArray checked_index(const NDArray& index, std::int64_t size, std::int64_t axis, std::string_view op) {
  NEEDLE_CHECK(is_integral(index.dtype()), TypeError, op, ": index must be an integer array, got dtype ",
               dtype_name(index.dtype()));
  NDArray idx = index.astype(DType::Int64);
  if (idx.size() == 0) return idx;
  const std::int64_t lowest = min(idx).item().to<std::int64_t>();
  const std::int64_t highest = max(idx).item().to<std::int64_t>();
  const std::int64_t bad = lowest < -size ? lowest : highest;
  NEEDLE_CHECK(lowest >= -size && highest < size, IndexError, op, ": index ", bad, " is out of bounds for axis ", axis,
               " with size ", size);
  if (lowest < 0) idx = where(lt(idx, NDArray::zeros({}, DType::Int64, idx.device())), idx + Scalar(size), idx);
  return idx;
}

}  // namespace

// ---- element-wise --------------------------------------------------------------------------------

NDArray binary(BinaryOp op, const NDArray& a, const NDArray& b) {
  const std::string_view name = binary_op_name(op);
  check_same_device(name, {&a, &b});
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  return run_binary(op, a, b, binary_compute_dtype(op, promote_types(a.dtype(), b.dtype())), out_shape);
}

void binary_in_place(BinaryOp op, NDArray& out, const NDArray& b) {
  const std::string_view name = binary_op_name(op);
  check_same_device(name, {&out, &b});
  NEEDLE_CHECK(
      out.is_compact() && !is_comparison(op) && b.dtype() == out.dtype() &&
          broadcast_shapes(out.shape(), b.shape(), name) == out.shape(),
      ValueError, name, " in place: needs a compact result and an operand of its dtype that broadcasts to it, got ",
      shape_str(out.shape()), " ", dtype_name(out.dtype()), " and ", shape_str(b.shape()), " ", dtype_name(b.dtype()));
  if (out.size() == 0) return;
  out.storage()->increment_version();
  backend_of(out).binary(op, out.view(), out.view(), b.broadcast_to(out.shape()).view());
}

NDArray binary(BinaryOp op, const NDArray& a, const Scalar& s, bool scalar_first) {
  const DType compute = binary_compute_dtype(op, promote_with_scalar(a.dtype(), s));
  const NDArray scalar = NDArray::full({}, s, compute, a.device());
  return scalar_first ? run_binary(op, scalar, a, compute, a.shape()) : run_binary(op, a, scalar, compute, a.shape());
}

NDArray unary(UnaryOp op, const NDArray& a) {
  const std::string_view name = unary_op_name(op);
  DType compute = a.dtype();
  if (unary_op_domain(op) == UnaryDomain::Float) {
    compute = float_result_type(a.dtype());
  } else {
    NEEDLE_CHECK(a.dtype() != DType::Bool, TypeError, name, ": not supported for bool arrays");
  }
  const NDArray in = a.astype(compute);
  if (const auto dense = SharedDenseLayout::of({&in})) {
    NDArray out = dense->empty(a.shape(), compute, a.device());
    backend_of(a).unary(op, dense->flat(out).view(), dense->flat(in).view());
    return out;
  }
  NDArray out = NDArray::empty(a.shape(), compute, a.device());
  if (out.size() > 0) backend_of(a).unary(op, out.view(), in.view());
  return out;
}

NDArray add(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Add, a, b); }
NDArray sub(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Sub, a, b); }
NDArray mul(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Mul, a, b); }
NDArray div(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Div, a, b); }
NDArray pow(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Pow, a, b); }
NDArray maximum(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Maximum, a, b); }
NDArray minimum(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Minimum, a, b); }
NDArray eq(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Eq, a, b); }
NDArray ne(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Ne, a, b); }
NDArray lt(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Lt, a, b); }
NDArray le(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Le, a, b); }
NDArray gt(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Gt, a, b); }
NDArray ge(const NDArray& a, const NDArray& b) { return binary(BinaryOp::Ge, a, b); }

#define NEEDLE_UNARY(kind, name, ...) \
  NDArray name(const NDArray& a) { return unary(UnaryOp::kind, a); }
#include "needle/core/unary_ops.def"

NDArray where(const NDArray& cond, const NDArray& a, const NDArray& b) {
  check_same_device("where", {&cond, &a, &b});
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  const DType dtype = promote_types(a.dtype(), b.dtype());
  const NDArray c_in = cond.astype(DType::Bool).broadcast_to(shape);
  const NDArray a_in = a.astype(dtype).broadcast_to(shape);
  const NDArray b_in = b.astype(dtype).broadcast_to(shape);
  if (const auto dense = SharedDenseLayout::of({&c_in, &a_in, &b_in})) {
    NDArray out = dense->empty(shape, dtype, a.device());
    backend_of(a).where(dense->flat(out).view(), dense->flat(c_in).view(), dense->flat(a_in).view(),
                        dense->flat(b_in).view());
    return out;
  }
  NDArray out = NDArray::empty(shape, dtype, a.device());
  if (out.size() == 0) return out;
  backend_of(a).where(out.view(), c_in.view(), a_in.view(), b_in.view());
  return out;
}

// ---- reductions ----------------------------------------------------------------------------------

NDArray sum(const NDArray& a, const Axes& axes, bool keepdims) {
  // Small integer types accumulate in int64 so sums of bools count and int32 sums do not overflow early.
  const DType dtype = is_floating(a.dtype()) ? a.dtype() : DType::Int64;
  return run_reduce(ReduceOp::Sum, "sum", a, dtype, axes, keepdims);
}

NDArray max(const NDArray& a, const Axes& axes, bool keepdims) {
  return run_reduce(ReduceOp::Max, "max", a, a.dtype(), axes, keepdims);
}

NDArray min(const NDArray& a, const Axes& axes, bool keepdims) {
  return run_reduce(ReduceOp::Min, "min", a, a.dtype(), axes, keepdims);
}

NDArray mean(const NDArray& a, const Axes& axes, bool keepdims) {
  const DType dtype = float_result_type(a.dtype());
  const Reduction r = plan_reduction(a, axes, "mean");
  const NDArray total = run_reduce(ReduceOp::Sum, "mean", a, dtype, axes, keepdims);
  // An empty mean is 0/0 = NaN, as in NumPy.
  return binary(BinaryOp::Div, total, Scalar(static_cast<double>(r.count)));
}

NDArray argmax(const NDArray& a, std::optional<std::int64_t> axis, bool keepdims) {
  return run_arg_reduce(ArgReduceOp::Argmax, "argmax", a, axis, keepdims);
}

NDArray argmin(const NDArray& a, std::optional<std::int64_t> axis, bool keepdims) {
  return run_arg_reduce(ArgReduceOp::Argmin, "argmin", a, axis, keepdims);
}

// ---- linear algebra ------------------------------------------------------------------------------

namespace {

// True when every row of `a` (its last axis) starts a fixed distance after the previous one, so that
// reshaping all its axes but the last into one is a view.
bool rows_are_one_matrix(const NDArray& a) {
  std::int64_t expected = -1;  // the stride the next outer axis must have; -1 before the first axis
  for (std::int64_t d = a.ndim() - 2; d >= 0; --d) {
    const std::int64_t size = a.shape()[static_cast<std::size_t>(d)];
    const std::int64_t stride = a.strides()[static_cast<std::size_t>(d)];
    if (size == 1) continue;  // a length-1 axis has no step to match
    if (expected != -1 && stride != expected) return false;
    expected = stride * size;
  }
  return true;
}

}  // namespace

NDArray matmul(const NDArray& a, const NDArray& b) {
  check_same_device("matmul", {&a, &b});
  NEEDLE_CHECK(a.ndim() >= 1 && b.ndim() >= 1, ValueError, "matmul: 0-d arrays are not allowed, got shapes ",
               shape_str(a.shape()), " and ", shape_str(b.shape()));
  const DType dtype = promote_types(a.dtype(), b.dtype());
  NEEDLE_CHECK(dtype != DType::Bool, TypeError, "matmul: not supported for bool arrays");
  // NumPy's rule for vectors: a 1-d left operand is a row, a 1-d right operand a column, and the
  // added axis is removed from the result.
  const NDArray lhs = a.ndim() == 1 ? a.unsqueeze(0) : a;
  const NDArray rhs = b.ndim() == 1 ? b.unsqueeze(1) : b;
  const std::int64_t m = lhs.shape()[lhs.shape().size() - 2];
  const std::int64_t k = lhs.shape().back();
  const std::int64_t k2 = rhs.shape()[rhs.shape().size() - 2];
  const std::int64_t n = rhs.shape().back();
  NEEDLE_CHECK(k == k2, ValueError, "matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
               " are not aligned: ", k, " (last dim of a) != ", k2, " (", b.ndim() == 1 ? "only" : "second-to-last",
               " dim of b)");
  const Shape a_batch(lhs.shape().begin(), lhs.shape().end() - 2);
  const Shape b_batch(rhs.shape().begin(), rhs.shape().end() - 2);
  Shape out_shape;
  try {
    out_shape = broadcast_shapes(a_batch, b_batch, "matmul");
  } catch (const ValueError&) {
    throw ValueError(str("matmul: batch dimensions of shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
                         " cannot be broadcast together"));
  }
  if (rhs.ndim() == 2 && lhs.ndim() > 2 && rows_are_one_matrix(lhs)) {
    // x @ W for a batch x (..., m, k) and one matrix W (a layer applied to every position of a sequence):
    // x's rows, evenly spaced in memory, are one (batch * m, k) matrix, and one large product replaces a
    // small product per matrix of the batch, each packing W again.
    const std::int64_t rows = numel(Shape(lhs.shape().begin(), lhs.shape().end() - 1));
    out_shape.insert(out_shape.end(), {m, n});
    NDArray out = matmul(lhs.reshape({rows, k}), rhs).reshape(out_shape);
    return b.ndim() == 1 ? out.squeeze({-1}) : out;
  }
  Shape a_shape = out_shape;
  Shape b_shape = out_shape;
  a_shape.insert(a_shape.end(), {m, k});
  b_shape.insert(b_shape.end(), {k, n});
  out_shape.insert(out_shape.end(), {m, n});
  NDArray out = NDArray::empty(out_shape, dtype, a.device());
  if (out.size() > 0) {
    backend_of(a).matmul(out.view(), lhs.astype(dtype).broadcast_to(a_shape).view(),
                         rhs.astype(dtype).broadcast_to(b_shape).view());
  }
  if (a.ndim() == 1) out = out.squeeze({-2});
  if (b.ndim() == 1) out = out.squeeze({-1});
  return out;
}

// ---- shape manipulation --------------------------------------------------------------------------

NDArray flip(const NDArray& a, const Axes& axes) { return a.flip_view(axes).copy(); }

NDArray pad(const NDArray& a, const std::vector<std::pair<std::int64_t, std::int64_t>>& pad_width,
            const Scalar& value) {
  NEEDLE_CHECK(static_cast<std::int64_t>(pad_width.size()) == a.ndim(), ValueError, "pad: expected ", a.ndim(),
               " (before, after) pairs for an array of shape ", shape_str(a.shape()), ", got ", pad_width.size());
  Shape shape = a.shape();
  Index interior;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const auto [before, after] = pad_width[i];
    NEEDLE_CHECK(before >= 0 && after >= 0, ValueError, "pad: widths must be non-negative, got (", before, ", ", after,
                 ") for axis ", i);
    // Checked, so that the error shows the sizes asked for rather than a wrapped shape.
    const std::optional<std::int64_t> end = checked_add(before, shape[i]);
    const std::optional<std::int64_t> padded = end ? checked_add(*end, after) : std::nullopt;
    NEEDLE_CHECK(padded.has_value(), ValueError, "pad: padding axis ", i, " of size ", shape[i], " by (", before, ", ",
                 after, ") gives a size larger than ", kMaxSizeText, " (array shape ", shape_str(a.shape()), ")");
    interior.push_back(IndexItem::range(before, *end));
    shape[i] = *padded;
  }
  NDArray out = NDArray::full(shape, value, a.dtype(), a.device(), "pad");
  out.assign(interior, a);
  return out;
}

NDArray concat(const std::vector<NDArray>& arrays, std::int64_t axis) {
  NEEDLE_CHECK(!arrays.empty(), ValueError, "concat: expected a non-empty list of arrays");
  const NDArray& first = arrays.front();
  NEEDLE_CHECK(first.ndim() > 0, ValueError, "concat: zero-dimensional arrays cannot be concatenated");
  const std::int64_t ax = normalize_axis(axis, first.ndim(), "concat");
  Shape shape = first.shape();
  shape[static_cast<std::size_t>(ax)] = 0;
  for (const NDArray& a : arrays) {
    check_same_device("concat", {&first, &a});
    bool matches = a.ndim() == first.ndim();
    for (std::int64_t d = 0; matches && d < a.ndim(); ++d) {
      matches = d == ax || a.shape()[static_cast<std::size_t>(d)] == first.shape()[static_cast<std::size_t>(d)];
    }
    NEEDLE_CHECK(matches, ValueError, "concat: shapes ", shape_str(first.shape()), " and ", shape_str(a.shape()),
                 " do not match outside axis ", ax);
    const std::optional<std::int64_t> total =
        checked_add(shape[static_cast<std::size_t>(ax)], a.shape()[static_cast<std::size_t>(ax)]);
    NEEDLE_CHECK(total.has_value(), ValueError, "concat: the sizes along axis ", ax, " add up to more than ",
                 kMaxSizeText, " (shapes ", shape_str(first.shape()), " and ", shape_str(a.shape()), ")");
    shape[static_cast<std::size_t>(ax)] = *total;
  }
  NDArray out = NDArray::empty(shape, common_dtype(arrays), first.device(), "concat");
  std::int64_t start = 0;
  for (const NDArray& a : arrays) {
    const std::int64_t length = a.shape()[static_cast<std::size_t>(ax)];
    out.assign(slab(out.ndim(), ax, start, length), a);
    start += length;
  }
  return out;
}

NDArray stack(const std::vector<NDArray>& arrays, std::int64_t axis) {
  NEEDLE_CHECK(!arrays.empty(), ValueError, "stack: expected a non-empty list of arrays");
  const std::int64_t ax = normalize_axis(axis, arrays.front().ndim() + 1, "stack");
  std::vector<NDArray> expanded;
  expanded.reserve(arrays.size());
  for (const NDArray& a : arrays) {
    NEEDLE_CHECK(a.shape() == arrays.front().shape(), ValueError, "stack: all arrays must have the same shape, got ",
                 shape_str(arrays.front().shape()), " and ", shape_str(a.shape()));
    expanded.push_back(a.unsqueeze(ax));
  }
  return concat(expanded, ax);
}

std::vector<NDArray> split(const NDArray& a, std::int64_t axis) {
  const std::int64_t ax = normalize_axis(axis, a.ndim(), "split");
  std::vector<NDArray> parts;
  for (std::int64_t i = 0; i < a.shape()[static_cast<std::size_t>(ax)]; ++i) {
    Index idx(static_cast<std::size_t>(ax), IndexItem::range());
    idx.push_back(IndexItem::at(i));
    parts.push_back(a.index(idx));
  }
  return parts;
}

std::vector<NDArray> split(const NDArray& a, const std::vector<std::int64_t>& sizes, std::int64_t axis) {
  const std::int64_t ax = normalize_axis(axis, a.ndim(), "split");
  const std::int64_t total = std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0});
  const bool valid = std::all_of(sizes.begin(), sizes.end(), [](std::int64_t s) { return s >= 0; });
  NEEDLE_CHECK(valid && total == a.shape()[static_cast<std::size_t>(ax)], ValueError, "split: sizes ", shape_str(sizes),
               " do not add up to ", a.shape()[static_cast<std::size_t>(ax)], " (axis ", ax, " of shape ",
               shape_str(a.shape()), ")");
  std::vector<NDArray> parts;
  std::int64_t start = 0;
  for (std::int64_t length : sizes) {
    parts.push_back(a.index(slab(a.ndim(), ax, start, length)));
    start += length;
  }
  return parts;
}

// ---- indexing ------------------------------------------------------------------------------------

NDArray gather(const NDArray& a, std::int64_t axis, const NDArray& index) {
  check_same_device("gather", {&a, &index});
  const std::int64_t ax = normalize_axis(axis, a.ndim(), "gather");
  NEEDLE_CHECK(index.ndim() == a.ndim(), ValueError, "gather: index of shape ", shape_str(index.shape()),
               " must have the same number of dimensions as the input of shape ", shape_str(a.shape()));
  for (std::int64_t d = 0; d < a.ndim(); ++d) {
    const auto i = static_cast<std::size_t>(d);
    NEEDLE_CHECK(d == ax || index.shape()[i] <= a.shape()[i], ValueError, "gather: index of shape ",
                 shape_str(index.shape()), " is larger than the input of shape ", shape_str(a.shape()),
                 " in dimension ", d);
  }
  const NDArray idx = checked_index(index, a.shape()[static_cast<std::size_t>(ax)], ax, "gather");
  NDArray out = NDArray::empty(index.shape(), a.dtype(), a.device());
  if (out.size() > 0) backend_of(a).gather(out.view(), a.view(), idx.view(), ax);
  return out;
}

namespace {

// Accumulates src into `out` at `index` along `axis` (scatter_add's checks and kernel; out is the result).
void scatter_add_into(NDArray& out, std::int64_t axis, const NDArray& index, const NDArray& src) {
  check_same_device("scatter_add", {&out, &index, &src});
  const std::int64_t ax = normalize_axis(axis, out.ndim(), "scatter_add");
  NEEDLE_CHECK(index.ndim() == out.ndim() && src.ndim() == out.ndim(), ValueError, "scatter_add: input ",
               shape_str(out.shape()), ", index ", shape_str(index.shape()), " and src ", shape_str(src.shape()),
               " must have the same number of dimensions");
  for (std::int64_t d = 0; d < out.ndim(); ++d) {
    const auto i = static_cast<std::size_t>(d);
    NEEDLE_CHECK(index.shape()[i] <= src.shape()[i] && (d == ax || index.shape()[i] <= out.shape()[i]), ValueError,
                 "scatter_add: index of shape ", shape_str(index.shape()), " does not fit src of shape ",
                 shape_str(src.shape()), " and input of shape ", shape_str(out.shape()), " in dimension ", d);
  }
  const NDArray idx = checked_index(index, out.shape()[static_cast<std::size_t>(ax)], ax, "scatter_add");
  Index used;  // only the part of src that index covers takes part, as in PyTorch
  for (std::int64_t length : index.shape()) used.push_back(IndexItem::range(0, length));
  if (idx.size() > 0) {
    backend_of(out).scatter_add(out.view(), idx.view(), src.index(used).astype(out.dtype()).view(), ax);
  }
}

}  // namespace

NDArray scatter_add(const NDArray& a, std::int64_t axis, const NDArray& index, const NDArray& src) {
  NDArray out = a.copy();
  scatter_add_into(out, axis, index, src);
  return out;
}

NDArray scatter_add_to_zeros(const Shape& shape, std::int64_t axis, const NDArray& index, const NDArray& src) {
  NDArray out = NDArray::zeros(shape, src.dtype(), src.device());
  scatter_add_into(out, axis, index, src);
  return out;
}

NDArray one_hot(const NDArray& indices, std::int64_t num_classes, DType dtype) {
  NEEDLE_CHECK(num_classes >= 0, ValueError, "one_hot: num_classes must be non-negative, got ", num_classes);
  Shape shape = indices.shape();
  shape.push_back(num_classes);
  // The output and the int64 class ids it is compared against must both be representable.
  const std::optional<std::int64_t> elements = checked_numel(shape);
  const std::optional<std::int64_t> nbytes =
      elements ? checked_mul(*elements, static_cast<std::int64_t>(itemsize(dtype))) : std::nullopt;
  NEEDLE_CHECK(nbytes && checked_mul(num_classes, std::int64_t{8}), ValueError, "one_hot: ", num_classes,
               " classes for indices of shape ", shape_str(indices.shape()), " give an output of shape ",
               shape_str(shape), " and dtype ", dtype_name(dtype), ", larger than ", kMaxSizeText, " bytes");
  try {
    const NDArray classes = NDArray::arange(num_classes, DType::Int64, indices.device());
    return eq(indices.astype(DType::Int64).unsqueeze(indices.ndim()), classes).astype(dtype);
  } catch (const MemoryError&) {
    throw MemoryError(str("one_hot: ", num_classes, " classes for indices of shape ", shape_str(indices.shape()),
                          " give an output of shape ", shape_str(shape), " and dtype ", dtype_name(dtype), " (",
                          byte_size_str(static_cast<std::uint64_t>(*nbytes)), ") that cannot be allocated on ",
                          indices.device()));
  }
}

// ---- random --------------------------------------------------------------------------------------

namespace {

NDArray draw(std::string_view op, RandomDistribution dist, const Shape& shape, double p0, double p1, DType dtype,
             Device device, Generator* generator) {
  NDArray out = NDArray::empty(shape, dtype, device, op);
  Generator& gen = generator != nullptr ? *generator : default_generator();
  const Generator::State state = gen.advance(static_cast<std::uint64_t>(out.size()));
  if (out.size() > 0) backend_for(device).random(dist, out.view(), p0, p1, state.seed, state.offset);
  return out;
}

}  // namespace

NDArray rand(const Shape& shape, double low, double high, DType dtype, Device device, Generator* generator) {
  NEEDLE_CHECK(is_floating(dtype), TypeError, "rand: dtype must be float32 or float64, got ", dtype_name(dtype));
  return draw("rand", RandomDistribution::Uniform, shape, low, high, dtype, device, generator);
}

NDArray randn(const Shape& shape, double mean, double std, DType dtype, Device device, Generator* generator) {
  NEEDLE_CHECK(is_floating(dtype), TypeError, "randn: dtype must be float32 or float64, got ", dtype_name(dtype));
  NEEDLE_CHECK(std >= 0, ValueError, "randn: std must be non-negative, got ", std);
  return draw("randn", RandomDistribution::Normal, shape, mean, std, dtype, device, generator);
}

NDArray randb(const Shape& shape, double p, DType dtype, Device device, Generator* generator) {
  NEEDLE_CHECK(p >= 0 && p <= 1, ValueError, "randb: probability must be in [0, 1], got ", p);
  return draw("randb", RandomDistribution::Bernoulli, shape, p, 0.0, dtype, device, generator);
}

}  // namespace needle
