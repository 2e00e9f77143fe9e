// Batched matrix products. float32/float64 go to cuBLAS's strided-batched GEMM: row-major and
// transposed (column-major) operands are described to cuBLAS with its transpose flags, broadcast batch
// dimensions with a zero batch stride; any other layout is first copied into a contiguous scratch
// buffer. Integer products (no cuBLAS routine) use a plain kernel with wrapping arithmetic.
#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "backend/cuda/cuda_common.cuh"
#include "backend/view_checks.h"

namespace needle::cuda {

namespace {

// How one matrix operand looks to cuBLAS (column-major): transposed or not, and its leading dimension.
struct GemmOperand {
  bool transposed = false;  // the matrix is stored row-major (cuBLAS sees its transpose)
  std::int64_t ld = 1;
};

// A rows x cols matrix with strides (rs, cs) in elements. Row-major: cs == 1 (or one column), rows rs
// apart; column-major: rs == 1 (or one row), columns cs apart. Anything else (zero, negative, gaps
// inside a row) cannot be described to cuBLAS.
std::optional<GemmOperand> describe(std::int64_t rows, std::int64_t cols, std::int64_t rs, std::int64_t cs) {
  if (cs == 1 || cols == 1) {
    const std::int64_t ld = rows == 1 ? std::max<std::int64_t>(cols, 1) : rs;
    if (ld >= std::max<std::int64_t>(cols, 1)) return GemmOperand{true, ld};
  }
  if (rs == 1 || rows == 1) {
    const std::int64_t ld = cols == 1 ? std::max<std::int64_t>(rows, 1) : cs;
    if (ld >= std::max<std::int64_t>(rows, 1)) return GemmOperand{false, ld};
  }
  return std::nullopt;
}

// The batch dimensions of the three operands merged into one (count, stride per operand), or nothing
// when they do not merge.
struct Batch {
  std::int64_t count = 1;
  std::int64_t stride[3] = {0, 0, 0};
};

std::optional<Batch> merge_batch(const Shape& batch_shape, const Strides* const (&strides)[3]) {
  Batch batch;
  bool started = false;
  for (std::size_t d = batch_shape.size(); d-- > 0;) {
    const std::int64_t size = batch_shape[d];
    if (size == 1) continue;
    if (!started) {
      for (int k = 0; k < 3; ++k) batch.stride[k] = (*strides[k])[d];
      batch.count = size;
      started = true;
      continue;
    }
    for (int k = 0; k < 3; ++k) {
      if ((*strides[k])[d] != batch.stride[k] * batch.count) return std::nullopt;
    }
    batch.count *= size;
  }
  return batch;
}

Strides batch_strides(const StridedView& v) { return {v.strides.begin(), v.strides.end() - 2}; }

// Row-major strides of `shape`, with `view`'s data replaced by a scratch buffer holding its elements.
StridedView compacted(Context& ctx, const StridedView& view, std::vector<std::unique_ptr<Scratch>>& scratch) {
  scratch.push_back(std::make_unique<Scratch>(ctx, static_cast<std::size_t>(view.size()) * itemsize(view.dtype)));
  StridedView dense{scratch.back()->data(), view.dtype, view.shape, compact_strides(view.shape)};
  copy(ctx, dense, view);
  return dense;
}

template <typename T>
void gemm(Context& ctx, bool transa, bool transb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
          std::int64_t lda, std::int64_t stride_a, const T* b, std::int64_t ldb, std::int64_t stride_b, T* c,
          std::int64_t ldc, std::int64_t stride_c, std::int64_t batch) {
  const T one = 1;
  const T zero = 0;
  const cublasOperation_t op_a = transa ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
  // cuBLAS takes 32-bit sizes (the _64 variants are not in every toolkit this builds with).
  constexpr std::int64_t kMax = 2147483647;
  NEEDLE_CHECK(m <= kMax && n <= kMax && k <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax && batch <= kMax,
               RuntimeError, "matmul: cuda: matrix sizes beyond 2^31 elements per dimension are not supported");
  const auto im = static_cast<int>(m);
  const auto in = static_cast<int>(n);
  const auto ik = static_cast<int>(k);
  if constexpr (std::is_same_v<T, float>) {
    check_cublas(cublasSgemmStridedBatched(ctx.cublas, op_a, op_b, im, in, ik, &one, a, static_cast<int>(lda), stride_a,
                                           b, static_cast<int>(ldb), stride_b, &zero, c, static_cast<int>(ldc),
                                           stride_c, static_cast<int>(batch)),
                 "matmul: cublasSgemmStridedBatched");
  } else {
    check_cublas(cublasDgemmStridedBatched(ctx.cublas, op_a, op_b, im, in, ik, &one, a, static_cast<int>(lda), stride_a,
                                           b, static_cast<int>(ldb), stride_b, &zero, c, static_cast<int>(ldc),
                                           stride_c, static_cast<int>(batch)),
                 "matmul: cublasDgemmStridedBatched");
  }
}

// out (rows x cols, row-major) = a @ b. cuBLAS is column-major, where row-major out is out^T, so it
// computes out^T = b^T a^T: cuBLAS's first operand is b, its second a.
template <typename T>
void matmul_cublas(Context& ctx, const StridedView& out_in, const StridedView& a_in, const StridedView& b_in) {
  const std::int64_t ndim = out_in.ndim();
  const auto r = static_cast<std::size_t>(ndim - 2);
  const auto c = static_cast<std::size_t>(ndim - 1);
  const std::int64_t rows = out_in.shape[r];
  const std::int64_t cols = out_in.shape[c];
  const std::int64_t inner = a_in.shape[c];
  std::vector<std::unique_ptr<Scratch>> scratch;

  StridedView out = out_in;
  StridedView a = a_in;
  StridedView b = b_in;
  auto out_desc = describe(rows, cols, out.strides[r], out.strides[c]);
  // The output must be row-major for the trick above: out^T is then column-major.
  bool out_ok = out_desc.has_value() && out_desc->transposed;
  auto a_desc = describe(rows, inner, a.strides[r], a.strides[c]);
  auto b_desc = describe(inner, cols, b.strides[r], b.strides[c]);
  Shape batch_shape(out.shape.begin(), out.shape.end() - 2);
  Strides sa = batch_strides(a);
  Strides sb = batch_strides(b);
  Strides so = batch_strides(out);
  std::optional<Batch> batch = merge_batch(batch_shape, {&so, &sa, &sb});
  if (!batch || !a_desc || !b_desc || !out_ok) {
    // Dense copies of whatever does not fit (all three when the batch dimensions do not merge).
    const bool all = !batch.has_value();
    if (all || !a_desc) a = compacted(ctx, a, scratch);
    if (all || !b_desc) b = compacted(ctx, b, scratch);
    if (all || !out_ok) {
      scratch.push_back(std::make_unique<Scratch>(ctx, static_cast<std::size_t>(out.size()) * itemsize(out.dtype)));
      out = StridedView{scratch.back()->data(), out.dtype, out.shape, compact_strides(out.shape)};
    }
    a_desc = describe(rows, inner, a.strides[r], a.strides[c]);
    b_desc = describe(inner, cols, b.strides[r], b.strides[c]);
    out_desc = describe(rows, cols, out.strides[r], out.strides[c]);
    sa = batch_strides(a);
    sb = batch_strides(b);
    so = batch_strides(out);
    batch = merge_batch(batch_shape, {&so, &sa, &sb});
    NEEDLE_CHECK(batch && a_desc && b_desc && out_desc, RuntimeError, "matmul: cuda: could not lay out shapes ",
                 shape_str(a.shape), " and ", shape_str(b.shape), " for cuBLAS");
  }
  // cuBLAS's first operand is b (inner x cols row-major = cols x inner column-major, no transpose), its
  // second a; a column-major operand ("not transposed" in describe's terms) needs the transpose flag.
  gemm<T>(ctx, !b_desc->transposed, !a_desc->transposed, cols, rows, inner, b.ptr<T>(), b_desc->ld, batch->stride[2],
          a.ptr<T>(), a_desc->ld, batch->stride[1], out.ptr<T>(), out_desc->ld, batch->stride[0], batch->count);
  if (out.data != out_in.data) copy(ctx, out_in, out);
}

// One thread per output element, the textbook dot product over strided memory.
template <typename T>
__global__ void matmul_naive(std::int64_t total, std::int64_t rows, std::int64_t cols, std::int64_t inner,
                             OffsetCalc<3> batch, T* out, const T* a, const T* b, std::int64_t ors, std::int64_t ocs,
                             std::int64_t ars, std::int64_t acs, std::int64_t brs, std::int64_t bcs) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const std::int64_t n = i % cols;
    const std::int64_t m = (i / cols) % rows;
    std::int64_t at[3];
    batch.offsets(i / (cols * rows), at);
    T acc = 0;
    for (std::int64_t k = 0; k < inner; ++k) {
      acc = add(acc, multiply(a[at[1] + m * ars + k * acs], b[at[2] + k * brs + n * bcs]));
    }
    out[at[0] + m * ors + n * ocs] = acc;
  }
}

template <typename T>
void matmul_generic(Context& ctx, const StridedView& out, const StridedView& a, const StridedView& b) {
  const std::int64_t ndim = out.ndim();
  const auto r = static_cast<std::size_t>(ndim - 2);
  const auto c = static_cast<std::size_t>(ndim - 1);
  const Shape batch_shape(out.shape.begin(), out.shape.end() - 2);
  const Strides so = batch_strides(out);
  const Strides sa = batch_strides(a);
  const Strides sb = batch_strides(b);
  const OffsetCalc<3> batch = make_offset_calc<3>("matmul", batch_shape, {&so, &sa, &sb});
  const std::int64_t total = out.size();
  matmul_naive<T><<<blocks_for(total), kThreads, 0, ctx.stream>>>(
      total, out.shape[r], out.shape[c], a.shape[c], batch, out.ptr<T>(), a.ptr<T>(), b.ptr<T>(), out.strides[r],
      out.strides[c], a.strides[r], a.strides[c], b.strides[r], b.strides[c]);
  check_launch("matmul");
}

}  // namespace

void matmul(Context& ctx, const StridedView& out, const StridedView& a, const StridedView& b) {
  const auto c = static_cast<std::size_t>(out.ndim() - 1);
  const std::int64_t inner = a.shape[c];
  dispatch(out.dtype, [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      throw_unsupported_dtype<T>("matmul");
    } else {
      if (out.size() == 0) return;
      if (inner == 0) {  // an empty sum: cuBLAS is not asked to handle k == 0
        fill(ctx, out, Scalar(0.0));
        return;
      }
      if constexpr (std::is_floating_point_v<T>) {
        matmul_cublas<T>(ctx, out, a, b);
      } else {
        matmul_generic<T>(ctx, out, a, b);
      }
    }
  });
}

}  // namespace needle::cuda
