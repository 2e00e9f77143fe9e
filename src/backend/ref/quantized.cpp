// The int8 quantization kernels as plain loops: the reading of the formulas in kernels.def that the cpu
// kernels are tested against bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "backend/ref/ref_kernels.h"

namespace needle::ref {

namespace {

// acc[m, n] of int8_matmul: no sum of K <= kMaxInt8Depth products of int8 values overflows int32.
std::int32_t int8_dot(const std::int8_t* a, const std::int8_t* w, std::int64_t k) {
  std::int32_t sum = 0;
  for (std::int64_t p = 0; p < k; ++p) sum += std::int32_t{a[p]} * std::int32_t{w[p]};
  return sum;
}

}  // namespace

void quantize_row(const float* x, std::int8_t* values, float* scale, std::int64_t cols) {
  float amax = 0.0F;
  for (std::int64_t j = 0; j < cols; ++j) {
    if (std::isnan(x[j])) {
      amax = x[j];
      break;
    }
    amax = std::max(amax, std::fabs(x[j]));
  }
  // Zero rows and rows with NaN or an infinity are written as zeros; only the scale tells them apart.
  if (amax == 0.0F || !std::isfinite(amax)) {
    *scale = amax == 0.0F ? 1.0F : amax;
    std::fill(values, values + cols, std::int8_t{0});
    return;
  }
  *scale = amax / 127.0F;
  const float inv = 127.0F / amax;
  for (std::int64_t j = 0; j < cols; ++j) values[j] = quantize_value(x[j], inv);
}

void quantize_rows(const kernels::RowLayout& layout, const StridedView& values, const StridedView& scale,
                   const StridedView& x) {
  for (std::int64_t row = 0; row < layout.rows; ++row) {
    quantize_row(x.ptr<float>() + row * layout.cols, values.ptr<std::int8_t>() + row * layout.cols,
                 scale.ptr<float>() + row, layout.cols);
  }
}

void int8_matmul(const kernels::Int8MatmulLayout& layout, const StridedView& out, const StridedView& a,
                 const StridedView& w) {
  for (std::int64_t m = 0; m < layout.m; ++m) {
    for (std::int64_t n = 0; n < layout.n; ++n) {
      out.ptr<std::int32_t>()[m * layout.n + n] =
          int8_dot(a.ptr<std::int8_t>() + m * layout.k, w.ptr<std::int8_t>() + n * layout.k, layout.k);
    }
  }
}

void quantized_matmul(const kernels::Int8MatmulLayout& layout, const StridedView& out, const StridedView& a,
                      const StridedView& a_scale, const StridedView& w, const StridedView& w_scale,
                      const StridedView& bias) {
  for (std::int64_t m = 0; m < layout.m; ++m) {
    for (std::int64_t n = 0; n < layout.n; ++n) {
      const std::int32_t acc =
          int8_dot(a.ptr<std::int8_t>() + m * layout.k, w.ptr<std::int8_t>() + n * layout.k, layout.k);
      out.ptr<float>()[m * layout.n + n] = requantize(acc, a_scale.ptr<float>()[m] * w_scale.ptr<float>()[n],
                                                      kernels::present(bias) ? bias.ptr<float>()[n] : 0.0F);
    }
  }
}

}  // namespace needle::ref
