// Each kernel's entry point (Backend::name): the check of what the array layer promised the kernel
// (kernels.def), done here once for every backend, then the backend's virtual `name_kernel`. A failed check
// is a bug above the backend, hence RuntimeError; the one exception is an empty Max/Min reduction, which
// user code reaches and which is refused with ValueError.
//
// A fused or optional kernel is handed the layout its check measured (layouts.h), so the ref, cpu and
// composed kernels read their sizes from it instead of checking and measuring their operands again.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <utility>

#include "backend/view_checks.h"
#include "needle/backend/backend.h"
#include "needle/core/error.h"

namespace needle {
namespace {

using kernels::AttentionLayout;
using kernels::ChannelLayout;
using kernels::ConvLayout;
using kernels::expect_dtype;
using kernels::expect_rank;
using kernels::expect_shape;
using kernels::Int8MatmulLayout;
using kernels::LstmLayout;
using kernels::PoolLayout;
using kernels::present;
using kernels::RowLayout;

using OperandList = std::initializer_list<const StridedView*>;

void expect_floating(std::string_view op, DType dtype) {
  NEEDLE_CHECK(dtype == DType::Float32 || dtype == DType::Float64, RuntimeError, op,
               ": expected float32 or float64, got ", dtype_name(dtype));
}

void expect_contiguous(std::string_view op, std::string_view operand, const StridedView& view) {
  NEEDLE_CHECK(view.is_contiguous(), RuntimeError, op, ": ", operand, " of shape ", shape_str(view.shape),
               " must be contiguous");
}

// ---- primitives ----------------------------------------------------------------------------------------

void check_fill(const StridedView& /*out*/, const Scalar& /*value*/) {}

void check_copy(const StridedView& out, const StridedView& in) { expect_shape("copy", "input", in, out.shape); }

void check_unary(UnaryOp op, const StridedView& out, const StridedView& in) {
  expect_shape(unary_op_name(op), "input", in, out.shape);
  expect_dtype(unary_op_name(op), "output", out, in.dtype);
}

void check_binary(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) {
  const std::string_view name = binary_op_name(op);
  expect_shape(name, "first operand", a, out.shape);
  expect_shape(name, "second operand", b, out.shape);
  expect_dtype(name, "second operand", b, a.dtype);
  expect_dtype(name, "output", out, is_comparison(op) ? DType::Bool : a.dtype);
}

void check_where(const StridedView& out, const StridedView& cond, const StridedView& a, const StridedView& b) {
  expect_shape("where", "condition", cond, out.shape);
  expect_shape("where", "first operand", a, out.shape);
  expect_shape("where", "second operand", b, out.shape);
  expect_dtype("where", "condition", cond, DType::Bool);
  expect_dtype("where", "first operand", a, out.dtype);
  expect_dtype("where", "second operand", b, out.dtype);
}

void check_reduce(ReduceOp op, const StridedView& out, const StridedView& in) {
  const std::string_view name = reduce_op_name(op);
  expect_rank(name, "output", out, in.ndim());
  expect_dtype(name, "output", out, in.dtype);
  bool empty_block = false;
  for (std::size_t d = 0; d < in.shape.size(); ++d) {
    const bool reduced = out.shape[d] == 1 && in.shape[d] != 1;
    NEEDLE_CHECK(reduced || out.shape[d] == in.shape[d], RuntimeError, name, ": output shape ", shape_str(out.shape),
                 " does not fit input shape ", shape_str(in.shape));
    empty_block = empty_block || (reduced && in.shape[d] == 0);
  }
  NEEDLE_CHECK(op == ReduceOp::Sum || !empty_block || out.size() == 0, ValueError, name,
               ": cannot reduce an empty set of elements");
}

void check_arg_reduce(ArgReduceOp op, const StridedView& out, const StridedView& in, std::int64_t axis) {
  const std::string_view name = arg_reduce_op_name(op);
  expect_rank(name, "output", out, in.ndim());
  expect_dtype(name, "output", out, DType::Int64);
  NEEDLE_CHECK(axis >= 0 && axis < in.ndim(), RuntimeError, name, ": axis ", axis, " out of range for ", in.ndim(),
               " dimensions");
  NEEDLE_CHECK(out.shape[static_cast<std::size_t>(axis)] == 1, RuntimeError, name, ": output shape ",
               shape_str(out.shape), " must have extent 1 along axis ", axis);
  NEEDLE_CHECK(in.shape[static_cast<std::size_t>(axis)] >= 1 || out.size() == 0, ValueError, name,
               ": cannot reduce an empty set of elements");
}

void check_matmul(const StridedView& out, const StridedView& a, const StridedView& b) {
  const std::int64_t ndim = out.ndim();
  NEEDLE_CHECK(ndim >= 2, RuntimeError, "matmul: output has ", ndim, " dimensions, expected at least 2");
  expect_rank("matmul", "first operand", a, ndim);
  expect_rank("matmul", "second operand", b, ndim);
  expect_dtype("matmul", "first operand", a, out.dtype);
  expect_dtype("matmul", "second operand", b, out.dtype);
  const auto rows = static_cast<std::size_t>(ndim - 2);
  const auto cols = static_cast<std::size_t>(ndim - 1);
  bool batch_fits = true;
  for (std::size_t d = 0; d < rows; ++d)
    batch_fits = batch_fits && a.shape[d] == out.shape[d] && b.shape[d] == out.shape[d];
  NEEDLE_CHECK(batch_fits && a.shape[rows] == out.shape[rows] && b.shape[rows] == a.shape[cols] &&
                   b.shape[cols] == out.shape[cols],
               RuntimeError, "matmul: shapes ", shape_str(a.shape), " and ", shape_str(b.shape), " do not give ",
               shape_str(out.shape));
}

void check_indexed_axis(std::string_view op, const StridedView& indexed, const StridedView& walked, std::int64_t axis) {
  NEEDLE_CHECK(axis >= 0 && axis < indexed.ndim(), RuntimeError, op, ": axis ", axis, " out of range for ",
               indexed.ndim(), " dimensions");
  for (std::size_t d = 0; d < indexed.shape.size(); ++d) {
    NEEDLE_CHECK(d == static_cast<std::size_t>(axis) || indexed.shape[d] >= walked.shape[d], RuntimeError, op,
                 ": indexed shape ", shape_str(indexed.shape), " is smaller than ", shape_str(walked.shape),
                 " off axis ", axis);
  }
}

void check_gather(const StridedView& out, const StridedView& in, const StridedView& index, std::int64_t axis) {
  expect_shape("gather", "index", index, out.shape);
  expect_dtype("gather", "index", index, DType::Int64);
  expect_rank("gather", "input", in, out.ndim());
  expect_dtype("gather", "input", in, out.dtype);
  check_indexed_axis("gather", in, out, axis);
}

void check_scatter_add(const StridedView& out, const StridedView& index, const StridedView& src, std::int64_t axis) {
  expect_shape("scatter_add", "index", index, src.shape);
  expect_dtype("scatter_add", "index", index, DType::Int64);
  expect_rank("scatter_add", "output", out, src.ndim());
  expect_dtype("scatter_add", "source", src, out.dtype);
  check_indexed_axis("scatter_add", out, src, axis);
}

void check_random(RandomDistribution dist, const StridedView& /*out*/, double /*p0*/, double /*p1*/,
                  std::uint64_t /*seed*/, std::uint64_t /*offset*/) {
  NEEDLE_CHECK(dist == RandomDistribution::Uniform || dist == RandomDistribution::Normal ||
                   dist == RandomDistribution::Bernoulli,
               RuntimeError, "random: invalid distribution value");
}

// ---- row kernels ---------------------------------------------------------------------------------------

// `out` and every input contiguous with out's shape and one floating dtype, read as rows x cols.
RowLayout row_layout(std::string_view op, const StridedView& out, OperandList inputs) {
  expect_floating(op, out.dtype);
  expect_contiguous(op, "output", out);
  for (const StridedView* in : inputs) {
    expect_shape(op, "input", *in, out.shape);
    expect_dtype(op, "input", *in, out.dtype);
    expect_contiguous(op, "input", *in);
  }
  RowLayout layout;
  layout.dtype = out.dtype;
  layout.cols = out.shape.empty() ? 1 : out.shape.back();
  layout.rows = layout.cols == 0 ? 0 : out.size() / layout.cols;
  return layout;
}

// row_layout's operands, and per-column operands: contiguous (cols,) arrays of the rows' dtype.
RowLayout affine_row_layout(std::string_view op, const StridedView& out, OperandList inputs, OperandList per_column) {
  const RowLayout layout = row_layout(op, out, inputs);
  for (const StridedView* column : per_column) {
    expect_shape(op, "per-column operand", *column, Shape{layout.cols});
    expect_dtype(op, "per-column operand", *column, out.dtype);
    expect_contiguous(op, "per-column operand", *column);
  }
  return layout;
}

// Unlike row_layout's, out has in's shape less the last axis, and rows stay counted when cols is 0.
RowLayout logsumexp_layout(const StridedView& out, const StridedView& in) {
  expect_floating("logsumexp", in.dtype);
  expect_dtype("logsumexp", "output", out, in.dtype);
  const Shape rows_shape = in.shape.empty() ? Shape{} : Shape(in.shape.begin(), in.shape.end() - 1);
  expect_shape("logsumexp", "output", out, rows_shape);
  expect_contiguous("logsumexp", "input", in);
  expect_contiguous("logsumexp", "output", out);
  RowLayout layout;
  layout.dtype = in.dtype;
  layout.cols = in.shape.empty() ? 1 : in.shape.back();
  layout.rows = numel(rows_shape);
  return layout;
}

// The momentum buffer may be absent only without momentum.
RowLayout sgd_layout(const StridedView& param, const StridedView& grad, const StridedView& momentum_buffer,
                     const SgdStep& step) {
  const bool buffered = momentum_buffer.data != nullptr;
  NEEDLE_CHECK(buffered || step.momentum == 0.0, RuntimeError, "sgd_update: momentum ", step.momentum,
               " needs a momentum buffer");
  return buffered ? row_layout("sgd_update", param, {&grad, &momentum_buffer})
                  : row_layout("sgd_update", param, {&grad});
}

// ---- batch normalization -------------------------------------------------------------------------------

// `data` (the (N, C, S) operands: x, y, g, dx) contiguous 3-d arrays of one shape, `per_channel` ((C,)
// operands: mean, var, weight, bias, dweight, dbias) contiguous with C entries, one floating dtype, and at
// least one value per channel.
ChannelLayout channel_layout(std::string_view op, OperandList data, OperandList per_channel) {
  const StridedView& first = **data.begin();
  expect_floating(op, first.dtype);
  expect_rank(op, "input", first, 3);
  ChannelLayout layout;
  layout.batch = first.shape[0];
  layout.channels = first.shape[1];
  layout.spatial = first.shape[2];
  layout.dtype = first.dtype;
  for (const StridedView* view : data) {
    expect_shape(op, "operand", *view, first.shape);
    expect_dtype(op, "operand", *view, first.dtype);
    expect_contiguous(op, "operand", *view);
  }
  for (const StridedView* view : per_channel) {
    expect_shape(op, "per-channel operand", *view, {layout.channels});
    expect_dtype(op, "per-channel operand", *view, first.dtype);
    expect_contiguous(op, "per-channel operand", *view);
  }
  NEEDLE_CHECK(layout.channels == 0 || layout.per_channel() >= 1, RuntimeError, op,
               ": needs at least one value per channel, got shape ", shape_str(first.shape));
  return layout;
}

// ---- attention -----------------------------------------------------------------------------------------

// Operand kinds for attention_layout's `rest`, indexing the shapes it expects.
enum AttentionOperand : std::uint8_t { kLikeQ, kLikeK, kLikeV, kLikeOut, kLogsumexp };

// A 3-d attention operand read (or written) row by row in place: each row contiguous (a unit last stride,
// unless rows hold at most one value) and the batch and row strides non-negative (an empty one is never read).
void expect_rows_in_place(std::string_view op, std::string_view operand, const StridedView& view) {
  NEEDLE_CHECK(view.size() == 0 ||
                   ((view.shape[2] <= 1 || view.strides[2] == 1) && view.strides[0] >= 0 && view.strides[1] >= 0),
               RuntimeError, op, ": ", operand, " of shape ", shape_str(view.shape), " and strides ",
               shape_str(view.strides), " needs contiguous rows (a unit last stride) and non-negative strides");
}

// q (B, L, d), k (B, S, d), v (B, S, dv), and `rest` (each with the shape of its kind), with one floating
// dtype; the logsumexp contiguous, every other operand with contiguous rows and any non-negative batch and
// row strides.
AttentionLayout attention_layout(std::string_view op, const StridedView& q, const StridedView& k, const StridedView& v,
                                 std::initializer_list<std::pair<const StridedView*, AttentionOperand>> rest) {
  expect_floating(op, q.dtype);
  expect_rank(op, "q", q, 3);
  expect_rank(op, "k", k, 3);
  expect_rank(op, "v", v, 3);
  AttentionLayout layout;
  layout.dtype = q.dtype;
  layout.batch = q.shape[0];
  layout.queries = q.shape[1];
  layout.dim = q.shape[2];
  layout.keys = k.shape[1];
  layout.value_dim = v.shape[2];
  expect_shape(op, "k", k, {layout.batch, layout.keys, layout.dim});
  expect_shape(op, "v", v, {layout.batch, layout.keys, layout.value_dim});
  const Shape shapes[] = {
      q.shape, k.shape, v.shape, {layout.batch, layout.queries, layout.value_dim}, {layout.batch, layout.queries}};
  for (const StridedView* view : {&q, &k, &v}) {
    expect_dtype(op, "operand", *view, layout.dtype);
    expect_rows_in_place(op, "operand", *view);
  }
  for (const auto& [view, kind] : rest) {
    expect_shape(op, "operand", *view, shapes[kind]);
    expect_dtype(op, "operand", *view, layout.dtype);
    if (kind == kLogsumexp) {
      expect_contiguous(op, "logsumexp", *view);
    } else {
      expect_rows_in_place(op, "operand", *view);
    }
  }
  return layout;
}

// decode_attention: q (B, d) and out (B, dv) contiguous, k (B, S, d) and v (B, S, dv) with a unit last
// stride and non-negative batch and row strides, S >= 1, one floating dtype.
AttentionLayout decode_attention_layout(const StridedView& out, const StridedView& q, const StridedView& k,
                                        const StridedView& v) {
  constexpr std::string_view op = "decode_attention";
  expect_floating(op, q.dtype);
  expect_rank(op, "q", q, 2);
  expect_rank(op, "k", k, 3);
  expect_rank(op, "v", v, 3);
  AttentionLayout layout;
  layout.dtype = q.dtype;
  layout.batch = q.shape[0];
  layout.queries = 1;
  layout.dim = q.shape[1];
  layout.keys = k.shape[1];
  layout.value_dim = v.shape[2];
  expect_shape(op, "k", k, {layout.batch, layout.keys, layout.dim});
  expect_shape(op, "v", v, {layout.batch, layout.keys, layout.value_dim});
  expect_shape(op, "out", out, {layout.batch, layout.value_dim});
  NEEDLE_CHECK(layout.keys >= 1, RuntimeError, op, ": needs at least one cached key, got k of shape ",
               shape_str(k.shape));
  for (const StridedView* view : {&out, &q, &k, &v}) expect_dtype(op, "operand", *view, layout.dtype);
  expect_contiguous(op, "q", q);
  expect_contiguous(op, "out", out);
  expect_rows_in_place(op, "k", k);
  expect_rows_in_place(op, "v", v);
  return layout;
}

// ---- LSTM cell -----------------------------------------------------------------------------------------

// A 2-D operand of rows x cols with a unit column stride; an output must not repeat one row.
void expect_lstm_operand(std::string_view op, std::string_view name, const StridedView& v, std::int64_t rows,
                         std::int64_t cols, DType dtype, bool output) {
  NEEDLE_CHECK(v.ndim() == 2 && v.strides.size() == 2 && v.shape[0] == rows && v.shape[1] == cols, RuntimeError, op,
               ": ", name, " must have shape (", rows, ", ", cols, "), got ", shape_str(v.shape));
  expect_dtype(op, name, v, dtype);
  NEEDLE_CHECK(cols <= 1 || v.strides[1] == 1, RuntimeError, op, ": ", name, " must have unit column stride, got ",
               "strides ", shape_str(v.strides));
  NEEDLE_CHECK(!output || rows <= 1 || v.strides[0] != 0, RuntimeError, op, ": output ", name,
               " must not repeat one row");
}

// h and c are the cell's outputs (written) in the forward kernel and the gradients of them (read) in the
// backward one: `states_written` says which.
LstmLayout lstm_layout(std::string_view op, const StridedView& h, const StridedView& c, const StridedView& gates,
                       const StridedView& gates2, const StridedView& c_prev, bool states_written = true) {
  expect_floating(op, h.dtype);
  NEEDLE_CHECK(h.ndim() == 2, RuntimeError, op, ": h must be 2-D (batch, hidden), got shape ", shape_str(h.shape));
  const LstmLayout layout{h.shape[0], h.shape[1], h.dtype};
  const std::int64_t b = layout.batch;
  const std::int64_t n = layout.hidden;
  expect_lstm_operand(op, states_written ? "h" : "dh", h, b, n, layout.dtype, states_written);
  expect_lstm_operand(op, states_written ? "c" : "dc", c, b, n, layout.dtype, states_written);
  expect_lstm_operand(op, "gates", gates, b, 4 * n, layout.dtype, false);
  if (present(gates2)) expect_lstm_operand(op, "gates2", gates2, b, 4 * n, layout.dtype, false);
  if (present(c_prev)) expect_lstm_operand(op, "c_prev", c_prev, b, n, layout.dtype, false);
  return layout;
}

LstmLayout lstm_backward_layout(const StridedView& dgates, const StridedView& dc_prev, const StridedView& dh,
                                const StridedView& dc, const StridedView& gates, const StridedView& gates2,
                                const StridedView& c_prev) {
  constexpr std::string_view op = "lstm_cell_backward";
  const LstmLayout layout = lstm_layout(op, dh, dc, gates, gates2, c_prev, /*states_written=*/false);
  expect_lstm_operand(op, "dgates", dgates, layout.batch, 4 * layout.hidden, layout.dtype, true);
  NEEDLE_CHECK(present(dc_prev) == present(c_prev), RuntimeError, op, ": dc_prev must be given exactly when c_prev is");
  if (present(dc_prev)) expect_lstm_operand(op, "dc_prev", dc_prev, layout.batch, layout.hidden, layout.dtype, true);
  return layout;
}

// ---- convolution ---------------------------------------------------------------------------------------

// The image's part of every convolution layout: `image` (N, H, W, C) of a floating dtype, a K x K kernel
// that fits it padded by `padding`, and H_out = (H + 2 * padding - K) / stride + 1 (likewise W_out).
ConvLayout image_layout(std::string_view op, const StridedView& image, std::int64_t k, std::int64_t stride,
                        std::int64_t padding) {
  expect_floating(op, image.dtype);
  expect_rank(op, "image", image, 4);
  NEEDLE_CHECK(stride >= 1 && padding >= 0, RuntimeError, op, ": bad stride ", stride, " or padding ", padding);
  ConvLayout layout;
  layout.n = image.shape[0];
  layout.h = image.shape[1];
  layout.w = image.shape[2];
  layout.c = image.shape[3];
  layout.k = k;
  layout.stride = stride;
  layout.padding = padding;
  layout.dtype = image.dtype;
  NEEDLE_CHECK(layout.k >= 1 && layout.h + 2 * padding >= layout.k && layout.w + 2 * padding >= layout.k, RuntimeError,
               op, ": kernel size ", layout.k, " does not fit the image ", shape_str(image.shape), " padded by ",
               padding);
  layout.h_out = (layout.h + 2 * padding - layout.k) / stride + 1;
  layout.w_out = (layout.w + 2 * padding - layout.k) / stride + 1;
  return layout;
}

// `image` (N, H, W, C) with any strides and `cols` a contiguous (N, H_out, W_out, K, K, C) of the same
// floating dtype.
ConvLayout conv_layout(std::string_view op, const StridedView& image, const StridedView& cols, std::int64_t stride,
                       std::int64_t padding) {
  expect_rank(op, "columns", cols, 6);
  expect_dtype(op, "columns", cols, image.dtype);
  const ConvLayout layout = image_layout(op, image, cols.shape[3], stride, padding);
  expect_shape(op, "columns", cols, {layout.n, layout.h_out, layout.w_out, layout.k, layout.k, layout.c});
  expect_contiguous(op, "columns", cols);
  return layout;
}

// col2im also overwrites the whole image, so the image is contiguous too.
ConvLayout col2im_layout(const StridedView& image, const StridedView& cols, std::int64_t stride, std::int64_t padding) {
  const ConvLayout layout = conv_layout("col2im", image, cols, stride, padding);
  expect_contiguous("col2im", "image", image);
  return layout;
}

// The one-pass convolution kernels: image (N, H, W, C), weight (K, K, C, C_out) and cells (N, H_out, W_out,
// C_out) of one floating dtype, weight and cells contiguous, the image too when the kernel writes it.
ConvLayout conv2d_layout(std::string_view op, const StridedView& image, const StridedView& weight,
                         const StridedView& cells, std::int64_t stride, std::int64_t padding, bool image_written) {
  expect_rank(op, "weight", weight, 4);
  expect_rank(op, "output cells", cells, 4);
  expect_dtype(op, "weight", weight, image.dtype);
  expect_dtype(op, "output cells", cells, image.dtype);
  ConvLayout layout = image_layout(op, image, weight.shape[0], stride, padding);
  layout.c_out = weight.shape[3];
  expect_shape(op, "weight", weight, {layout.k, layout.k, layout.c, layout.c_out});
  expect_shape(op, "output cells", cells, {layout.n, layout.h_out, layout.w_out, layout.c_out});
  expect_contiguous(op, "weight", weight);
  expect_contiguous(op, "output cells", cells);
  if (image_written) expect_contiguous(op, "image", image);
  return layout;
}

// ---- pooling -------------------------------------------------------------------------------------------

namespace {

// Whether an (N, C, H, W) view lies in memory as (N, H, W, C), densely (strides of size-1 axes never matter).
bool is_channels_last(const StridedView& v) {
  const Shape& d = v.shape;
  const std::int64_t expected[4] = {d[2] * d[3] * d[1], 1, d[3] * d[1], d[1]};
  for (std::size_t i = 0; i < 4; ++i) {
    if (d[i] != 1 && v.strides[i] != expected[i]) return false;
  }
  return true;
}

// The pooling operands `views` all contiguous (the layout's channels_last false), or, when they are not,
// all channels-last (true).
bool pool_operands_channels_last(std::string_view op,
                                 std::initializer_list<std::pair<const char*, const StridedView*>> views) {
  const bool channels_last = !views.begin()->second->is_contiguous();
  for (const auto& [name, view] : views) {
    NEEDLE_CHECK(channels_last ? is_channels_last(*view) : view->is_contiguous(), RuntimeError, op, ": ", name,
                 " of shape ", shape_str(view->shape), " and strides ", shape_str(view->strides), " must be ",
                 channels_last ? "channels-last like the first operand" : "contiguous like the first operand");
  }
  return channels_last;
}

}  // namespace

// `image` (N, C, H, W) of a floating dtype with any strides; out and indices (N, C, H_out, W_out) both
// contiguous, or, for a channels-last image, both channels-last; out of the image's dtype and indices int64.
// 0 <= padding <= kernel / 2 (no window lies in the padding alone).
PoolLayout pool_layout(const StridedView& out, const StridedView& indices, const StridedView& image,
                       std::int64_t kernel, std::int64_t stride, std::int64_t padding) {
  constexpr std::string_view op = "max_pool2d";
  expect_floating(op, image.dtype);
  expect_rank(op, "image", image, 4);
  expect_dtype(op, "output", out, image.dtype);
  expect_dtype(op, "indices", indices, DType::Int64);
  NEEDLE_CHECK(kernel >= 1 && stride >= 1 && padding >= 0 && padding <= kernel / 2, RuntimeError, op, ": bad kernel ",
               kernel, ", stride ", stride, " or padding ", padding);
  PoolLayout layout;
  layout.n = image.shape[0];
  layout.c = image.shape[1];
  layout.h = image.shape[2];
  layout.w = image.shape[3];
  layout.k = kernel;
  layout.stride = stride;
  layout.padding = padding;
  layout.dtype = image.dtype;
  NEEDLE_CHECK(layout.h + 2 * padding >= kernel && layout.w + 2 * padding >= kernel, RuntimeError, op, ": kernel size ",
               kernel, " does not fit the image ", shape_str(image.shape), " padded by ", padding);
  layout.h_out = (layout.h + 2 * padding - kernel) / stride + 1;
  layout.w_out = (layout.w + 2 * padding - kernel) / stride + 1;
  const Shape pooled{layout.n, layout.c, layout.h_out, layout.w_out};
  expect_shape(op, "output", out, pooled);
  expect_shape(op, "indices", indices, pooled);
  layout.channels_last = pool_operands_channels_last(op, {{"output", &out}, {"indices", &indices}});
  NEEDLE_CHECK(!layout.channels_last || is_channels_last(image), RuntimeError, op,
               ": channels-last results need a channels-last image, got strides ", shape_str(image.strides),
               " for shape ", shape_str(image.shape));
  return layout;
}

// grad_image (N, C, H, W) of a floating dtype, grad_out (same dtype) and indices (int64) (N, C, H_out, W_out):
// all three contiguous or all three channels-last. The window geometry is not needed: the indices say where each
// gradient goes.
PoolLayout pool_backward_layout(const StridedView& grad_image, const StridedView& grad_out,
                                const StridedView& indices) {
  constexpr std::string_view op = "max_pool2d_backward";
  expect_floating(op, grad_image.dtype);
  expect_rank(op, "image gradient", grad_image, 4);
  expect_rank(op, "output gradient", grad_out, 4);
  expect_dtype(op, "output gradient", grad_out, grad_image.dtype);
  expect_dtype(op, "indices", indices, DType::Int64);
  expect_shape(op, "indices", indices, grad_out.shape);
  NEEDLE_CHECK(grad_out.shape[0] == grad_image.shape[0] && grad_out.shape[1] == grad_image.shape[1], RuntimeError, op,
               ": output gradient of shape ", shape_str(grad_out.shape), " does not fit the image gradient of shape ",
               shape_str(grad_image.shape));
  PoolLayout layout;
  layout.channels_last = pool_operands_channels_last(
      op, {{"image gradient", &grad_image}, {"output gradient", &grad_out}, {"indices", &indices}});
  layout.n = grad_image.shape[0];
  layout.c = grad_image.shape[1];
  layout.h = grad_image.shape[2];
  layout.w = grad_image.shape[3];
  layout.h_out = grad_out.shape[2];
  layout.w_out = grad_out.shape[3];
  layout.dtype = grad_image.dtype;
  return layout;
}

// ---- int8 quantization -----------------------------------------------------------------------------------

// x float32 (at least 1-d), values int8 of x's shape, scale float32 of x's shape less the last axis; all
// contiguous. Rows stay counted when cols is 0 (each still gets a scale).
RowLayout quantize_rows_layout(const StridedView& values, const StridedView& scale, const StridedView& x) {
  constexpr std::string_view op = "quantize_rows";
  expect_dtype(op, "input", x, DType::Float32);
  NEEDLE_CHECK(!x.shape.empty(), RuntimeError, op, ": expected at least 1 dimension, got a 0-d input");
  expect_dtype(op, "values", values, DType::Int8);
  expect_dtype(op, "scale", scale, DType::Float32);
  expect_shape(op, "values", values, x.shape);
  expect_shape(op, "scale", scale, Shape(x.shape.begin(), x.shape.end() - 1));
  for (const StridedView* view : {&values, &scale, &x}) expect_contiguous(op, "operand", *view);
  RowLayout layout;
  layout.dtype = DType::Float32;
  layout.cols = x.shape.back();
  layout.rows = numel(scale.shape);
  return layout;
}

// a (M, K) and w (N, K) int8 with K <= kMaxInt8Depth, out (M, N) of `out_dtype`; all contiguous.
Int8MatmulLayout int8_matmul_layout(std::string_view op, const StridedView& out, const StridedView& a,
                                    const StridedView& w, DType out_dtype) {
  expect_rank(op, "a", a, 2);
  expect_rank(op, "w", w, 2);
  expect_dtype(op, "a", a, DType::Int8);
  expect_dtype(op, "w", w, DType::Int8);
  expect_dtype(op, "output", out, out_dtype);
  const Int8MatmulLayout layout{a.shape[0], w.shape[0], a.shape[1]};
  expect_shape(op, "w", w, {layout.n, layout.k});
  expect_shape(op, "output", out, {layout.m, layout.n});
  NEEDLE_CHECK(layout.k <= kernels::kMaxInt8Depth, RuntimeError, op, ": depth ", layout.k, " exceeds ",
               kernels::kMaxInt8Depth);
  for (const StridedView* view : {&out, &a, &w}) expect_contiguous(op, "operand", *view);
  return layout;
}

// int8_matmul's operands with a float32 output, float32 scales (M) and (N) and an optional float32 bias (N).
Int8MatmulLayout quantized_matmul_layout(const StridedView& out, const StridedView& a, const StridedView& a_scale,
                                         const StridedView& w, const StridedView& w_scale, const StridedView& bias) {
  constexpr std::string_view op = "quantized_matmul";
  const Int8MatmulLayout layout = int8_matmul_layout(op, out, a, w, DType::Float32);
  expect_shape(op, "a_scale", a_scale, {layout.m});
  expect_shape(op, "w_scale", w_scale, {layout.n});
  std::initializer_list<std::pair<const StridedView*, std::string_view>> vectors = {{&a_scale, "a_scale"},
                                                                                    {&w_scale, "w_scale"}};
  for (const auto& [view, name] : vectors) {
    expect_dtype(op, name, *view, DType::Float32);
    expect_contiguous(op, name, *view);
  }
  if (present(bias)) {
    expect_shape(op, "bias", bias, {layout.n});
    expect_dtype(op, "bias", bias, DType::Float32);
    expect_contiguous(op, "bias", bias);
  }
  return layout;
}

}  // namespace

// ---- the entry points ----------------------------------------------------------------------------------
// A primitive's check is the check_<name> function above; a fused or optional kernel's is the expression
// in its kernels.def entry, built from the layout functions above, and its result is handed to the kernel.

#define NEEDLE_PRIMITIVE(name, params, args, outputs, trace_name, flops) \
  void Backend::name params {                                            \
    check_##name args;                                                   \
    name##_kernel args;                                                  \
  }
#define NEEDLE_FUSED(name, params, args, Layout, check, outputs, trace_name, flops) \
  void Backend::name params { name##_kernel(check, NEEDLE_KERNEL_ARGS args); }      \
  void Backend::composed_##name params { Backend::name##_kernel(check, NEEDLE_KERNEL_ARGS args); }
#define NEEDLE_OPTIONAL(name, params, args, Layout, check, outputs, trace_name, flops) \
  void Backend::name params { name##_kernel(check, NEEDLE_KERNEL_ARGS args); }
#include "needle/backend/kernels.def"
#undef NEEDLE_PRIMITIVE
#undef NEEDLE_FUSED
#undef NEEDLE_OPTIONAL

}  // namespace needle
