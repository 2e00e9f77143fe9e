// What every attention kernel (ref, cpu and the composed default) shares: the check of the op layer's
// promise (contiguous operands of one floating dtype with the shapes backend.h lists) and the sizes read
// from those operands.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <utility>

#include "backend/view_checks.h"
#include "needle/backend/backend.h"

namespace needle::kernels {

// B problems of L queries and S keys, head dimension d for q and k, dv for v and out.
struct AttentionLayout {
  std::int64_t batch = 0;
  std::int64_t queries = 0;
  std::int64_t keys = 0;
  std::int64_t dim = 0;
  std::int64_t value_dim = 0;
  DType dtype = DType::Float32;
};

// Operand kinds for attention_layout's `rest`.
constexpr int kLikeQ = 0;
constexpr int kLikeK = 1;
constexpr int kLikeV = 2;
constexpr int kLikeOut = 3;
constexpr int kLogsumexp = 4;

// Checks q (B, L, d), k (B, S, d), v (B, S, dv), and `rest` (each with its expected shape) against one
// another: one floating dtype, contiguous. A failure is a bug above the backend, hence RuntimeError.
inline AttentionLayout attention_layout(std::string_view op, const StridedView& q, const StridedView& k,
                                        const StridedView& v,
                                        std::initializer_list<std::pair<const StridedView*, int>> rest) {
  NEEDLE_CHECK(q.dtype == DType::Float32 || q.dtype == DType::Float64, RuntimeError, op,
               ": expected float32 or float64, got ", dtype_name(q.dtype));
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
  // Indexed by the operand kinds above.
  const Shape shapes[] = {
      q.shape, k.shape, v.shape, {layout.batch, layout.queries, layout.value_dim}, {layout.batch, layout.queries}};
  for (const auto& [view, kind] : rest) expect_shape(op, "operand", *view, shapes[kind]);
  for (const StridedView* view : {&q, &k, &v}) {
    expect_dtype(op, "operand", *view, layout.dtype);
    NEEDLE_CHECK(view->is_contiguous(), RuntimeError, op, ": operand of shape ", shape_str(view->shape),
                 " must be contiguous");
  }
  for (const auto& [view, kind] : rest) {
    expect_dtype(op, "operand", *view, layout.dtype);
    NEEDLE_CHECK(view->is_contiguous(), RuntimeError, op, ": operand of shape ", shape_str(view->shape),
                 " must be contiguous");
  }
  return layout;
}

// The first key that query i may not see: S, or min(S, i + 1) when causal (key j is visible iff j <= i).
inline std::int64_t visible_keys(std::int64_t query, std::int64_t keys, bool causal) {
  return causal ? (query + 1 < keys ? query + 1 : keys) : keys;
}

}  // namespace needle::kernels
