// `cpu` matmul. float32 and float64 go through the packed, cache-blocked GEMM (gemm.h), one call per
// matrix of the batch; batches of small matrices are spread over threads one matrix per task. Integer
// dtypes use an i-k-j loop: the innermost loop runs along a row of b and a row of the output, so with a
// row-major b it streams through memory (and vectorizes) instead of striding down columns, and each
// output element sums its products in k order (wrapping exactly like the `ref` kernel).
#include <algorithm>
#include <cstddef>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm.h"
#include "backend/element_ops.h"
#include "backend/strided_loop.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

bool well_formed(const StridedView& out, const StridedView& a, const StridedView& b) {
  const std::int64_t ndim = out.ndim();
  if (ndim < 2 || a.ndim() != ndim || b.ndim() != ndim) return false;
  if (a.dtype != out.dtype || b.dtype != out.dtype || out.dtype == DType::Bool) return false;
  const auto row = static_cast<std::size_t>(ndim - 2);
  const auto col = static_cast<std::size_t>(ndim - 1);
  return a.shape[row] == out.shape[row] && b.shape[col] == out.shape[col] && a.shape[col] == b.shape[row] &&
         a.strides.size() == a.shape.size() && b.strides.size() == b.shape.size() &&
         out.strides.size() == out.shape.size();
}

// Products of fewer multiply-adds than this are not worth a thread of their own.
constexpr double kTaskMinWork = 1 << 18;
// gemm splits one product over threads from this many multiply-adds on.
constexpr double kGemmParallelWork = 1 << 20;

// The floating-point product: one gemm per matrix of the batch.
template <typename T>
void float_matmul(const StridedView& out, const StridedView& a, const StridedView& b) {
  const std::size_t ndim = out.shape.size();
  const std::size_t row = ndim - 2;
  const std::size_t col = ndim - 1;
  const std::int64_t m = out.shape[row];
  const std::int64_t n = out.shape[col];
  const std::int64_t k = a.shape[col];
  std::int64_t batches = 1;
  for (std::size_t d = 0; d < row; ++d) batches *= out.shape[d];
  if (batches == 0 || m == 0 || n == 0) return;

  // Element offsets of matrix `index` of the batch in out, a and b (broadcast axes have stride 0).
  const auto run = [&](std::int64_t index) {
    std::int64_t offset_out = 0;
    std::int64_t offset_a = 0;
    std::int64_t offset_b = 0;
    for (std::size_t d = row; d-- > 0;) {
      const std::int64_t i = index % out.shape[d];
      index /= out.shape[d];
      offset_out += i * out.strides[d];
      offset_a += i * a.strides[d];
      offset_b += i * b.strides[d];
    }
    cpu::gemm<T>(m, n, k, a.ptr<T>() + offset_a, a.strides[row], a.strides[col], b.ptr<T>() + offset_b, b.strides[row],
                 b.strides[col], out.ptr<T>() + offset_out, out.strides[row], out.strides[col]);
  };
  const double work =
      static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(std::max<std::int64_t>(k, 1));
  // A product this small stays on one thread inside gemm, so only the batch can spread it.
  const bool small = work < kGemmParallelWork;
  if (small || batches >= 4 * static_cast<std::int64_t>(get_num_threads())) {
    // Whole matrices per task (each gemm then runs on its task's thread); enough of them per task to
    // pay for the task.
    const auto grain = static_cast<std::int64_t>(std::max(1.0, kTaskMinWork / work));
    parallel_for(0, batches, grain, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t i = first; i < last; ++i) run(i);
    });
  } else {
    for (std::int64_t i = 0; i < batches; ++i) run(i);  // few large matrices: each gemm splits itself
  }
}

}  // namespace

void CpuBackend::matmul_kernel(const StridedView& out, const StridedView& a, const StridedView& b) {
  if (!well_formed(out, a, b)) return ref::matmul(out, a, b);  // reports what is wrong

  const std::int64_t ndim = out.ndim();
  const auto row_axis = static_cast<std::size_t>(ndim - 2);
  const auto col_axis = static_cast<std::size_t>(ndim - 1);
  const std::int64_t rows = out.shape[row_axis];
  const std::int64_t cols = out.shape[col_axis];
  const std::int64_t inner = a.shape[col_axis];
  const std::int64_t a_row = a.strides[row_axis];
  const std::int64_t a_col = a.strides[col_axis];
  const std::int64_t b_row = b.strides[row_axis];
  const std::int64_t b_col = b.strides[col_axis];
  const std::int64_t out_row = out.strides[row_axis];
  const std::int64_t out_col = out.strides[col_axis];

  const Shape batch_shape(out.shape.begin(), out.shape.begin() + ndim - 2);
  const Strides out_batch(out.strides.begin(), out.strides.begin() + ndim - 2);
  const Strides a_batch(a.strides.begin(), a.strides.begin() + ndim - 2);
  const Strides b_batch(b.strides.begin(), b.strides.begin() + ndim - 2);

  if (out.dtype == DType::Float32) return float_matmul<float>(out, a, b);
  if (out.dtype == DType::Float64) return float_matmul<double>(out, a, b);

  dispatch_dtype(out.dtype, [&]<typename T>() {
    if constexpr (!std::is_same_v<T, bool>) {
      // Output rows that are not contiguous are accumulated here and then scattered.
      std::vector<T> row_buffer(out_col == 1 ? 0 : static_cast<std::size_t>(cols));
      // A b whose rows are not contiguous (a transposed weight in a backward pass) is packed row-major
      // once per batch: an O(K N) copy that lets the O(M K N) inner loop stream through memory.
      std::vector<T> packed_b(b_col == 1 ? 0 : static_cast<std::size_t>(inner * cols));
      kernels::for_each_offset(batch_shape, {&out_batch, &a_batch, &b_batch}, [&](const kernels::Offsets<3>& at) {
        T* o = out.ptr<T>() + at[0];
        const T* pa = a.ptr<T>() + at[1];
        const T* pb = b.ptr<T>() + at[2];
        std::int64_t b_row_stride = b_row;
        if (b_col != 1) {
          for (std::int64_t k = 0; k < inner; ++k) {
            for (std::int64_t n = 0; n < cols; ++n) {
              packed_b[static_cast<std::size_t>(k * cols + n)] = pb[k * b_row + n * b_col];
            }
          }
          pb = packed_b.data();
          b_row_stride = cols;
        }
        for (std::int64_t m = 0; m < rows; ++m) {
          T* acc = out_col == 1 ? o + m * out_row : row_buffer.data();
          std::fill_n(acc, cols, T(0));
          for (std::int64_t k = 0; k < inner; ++k) {
            const T x = pa[m * a_row + k * a_col];
            const T* b_k = pb + k * b_row_stride;
            for (std::int64_t n = 0; n < cols; ++n) acc[n] = kernels::add(acc[n], kernels::multiply(x, b_k[n]));
          }
          if (out_col != 1) {
            for (std::int64_t n = 0; n < cols; ++n)
              o[m * out_row + n * out_col] = row_buffer[static_cast<std::size_t>(n)];
          }
        }
      });
    }
  });
}

}  // namespace needle
