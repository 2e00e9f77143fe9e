// The `ref` kernels as free functions, so that other host backends can fall back on them for the cases
// they have no faster path for. Each does exactly what the Backend method of the same name documents.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "needle/backend/backend.h"

namespace needle::ref {

// Host memory: 64-byte aligned blocks from the C heap.
void* allocate(std::size_t nbytes);
void deallocate(void* data) noexcept;
void copy_bytes(void* dst, const void* src, std::size_t nbytes);

// One plain-loop function per kernel of kernels.def, with the parameters of its Backend virtual (a fused
// kernel gets its layout first). Each trusts its operands: Backend checked them before the call.
#define NEEDLE_PRIMITIVE(name, params, args, outputs, trace_name, flops) void name params;
#define NEEDLE_FUSED(name, params, args, Layout, check, outputs, trace_name, flops) \
  void name(const kernels::Layout& layout, NEEDLE_KERNEL_ARGS params);
#include "needle/backend/kernels.def"
#undef NEEDLE_PRIMITIVE
#undef NEEDLE_FUSED

// One row of quantize_rows (kernels.def): `cols` floats of x into `cols` values and one scale. The cpu
// kernel hands rows with NaN or an infinity to it.
void quantize_row(const float* x, std::int8_t* values, float* scale, std::int64_t cols);

// One value of quantize_rows: x * inv rounded half to even (nearbyint under the default rounding mode, as
// the vector conversions round) and clamped to [-127, 127]. A NaN product, which only 0 * inf gives (a row
// so tiny that 127 / amax overflows), is 0.
inline std::int8_t quantize_value(float x, float inv) {
  const float y = x * inv;
  if (std::isnan(y)) return 0;
  return static_cast<std::int8_t>(std::fmin(std::fmax(std::nearbyint(y), -127.0F), 127.0F));
}

// The output of quantized_matmul from the exact sum and the product of the two scales: one rounding, so that
// every backend that uses it (or a fused multiply-add of its own) agrees bit for bit.
inline float requantize(std::int32_t acc, float scale, float bias) {
  return std::fma(static_cast<float>(acc), scale, bias);
}

}  // namespace needle::ref
