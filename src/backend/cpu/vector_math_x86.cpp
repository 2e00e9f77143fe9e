// The float32 kernels behind vector_math.h on x86-64: the formulas of vector_math_formulas.inc compiled
// twice, for AVX2 + FMA (eight lanes) and for AVX-512 (sixteen lanes), whatever the project's flags say.
// Each build sits under its own target pragma, so that neither leaks instructions into the other, and is only
// handed out after a run-time check of the CPU; elsewhere vector_unary_f32 returns nullptr.
#include "backend/cpu/vector_math.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <atomic>
#include <cstring>

#include "backend/cpu/fast_exp.h"

namespace needle::cpu {

namespace {

// Clang spells the target region differently from GCC.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace avx2 {

// Eight floats in a __m256; a lane mask is a vector of all-ones or all-zeros lanes.
struct V {
  using F = __m256;
  using I = __m256i;
  using M = __m256;
  static constexpr std::int64_t kLanes = 8;
  static F splat(float v) { return _mm256_set1_ps(v); }
  static F zero() { return _mm256_setzero_ps(); }
  static I splat_int(int v) { return _mm256_set1_epi32(v); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F bit_and(F a, F b) { return _mm256_and_ps(a, b); }
  static F bit_or(F a, F b) { return _mm256_or_ps(a, b); }
  static F bit_xor(F a, F b) { return _mm256_xor_ps(a, b); }
  static F bit_andnot(F a, F b) { return _mm256_andnot_ps(a, b); }
  static M equal(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static M greater(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M less(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M unordered(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_UNORD_Q); }
  static F select(M mask, F if_true, F if_false) { return _mm256_blendv_ps(if_false, if_true, mask); }
  static F round_nearest(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static I to_int(F a) { return _mm256_cvtps_epi32(a); }
  static F as_float(I a) { return _mm256_castsi256_ps(a); }
  static I add_int(I a, I b) { return _mm256_add_epi32(a, b); }
  static I sub_int(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I shift_left(I a, int bits) { return _mm256_slli_epi32(a, bits); }
  static I shift_right(I a, int bits) { return _mm256_srai_epi32(a, bits); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F a) { _mm256_storeu_ps(p, a); }
  // The tail through a zero-padded copy: no read or write past the end.
  static F load_tail(const float* p, std::int64_t rest) {
    float tail[kLanes] = {};
    std::memcpy(tail, p, static_cast<std::size_t>(rest) * sizeof(float));
    return _mm256_loadu_ps(tail);
  }
  static void store_tail(float* p, F a, std::int64_t rest) {
    float tail[kLanes];
    _mm256_storeu_ps(tail, a);
    std::memcpy(p, tail, static_cast<std::size_t>(rest) * sizeof(float));
  }
};
using F = V::F;
using I = V::I;

#include "backend/cpu/vector_math_formulas.inc"

}  // namespace avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), which it then reports as maybe-uninitialized
// (GCC bug 105593, fixed in GCC 13).
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#endif
namespace avx512 {

// Sixteen floats in a __m512; a lane mask is a 16-bit __mmask16. The bitwise float operations go through
// the integer ones (AVX-512F has no and/or/xor of floats).
struct V {
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;
  static constexpr std::int64_t kLanes = 16;
  static F splat(float v) { return _mm512_set1_ps(v); }
  static F zero() { return _mm512_setzero_ps(); }
  static I splat_int(int v) { return _mm512_set1_epi32(v); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static F bits(I a) { return _mm512_castsi512_ps(a); }
  static I ints(F a) { return _mm512_castps_si512(a); }
  static F bit_and(F a, F b) { return bits(_mm512_and_si512(ints(a), ints(b))); }
  static F bit_or(F a, F b) { return bits(_mm512_or_si512(ints(a), ints(b))); }
  static F bit_xor(F a, F b) { return bits(_mm512_xor_si512(ints(a), ints(b))); }
  static F bit_andnot(F a, F b) { return bits(_mm512_andnot_si512(ints(a), ints(b))); }
  static M equal(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static M greater(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M less(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M unordered(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q); }
  static F select(M mask, F if_true, F if_false) { return _mm512_mask_blend_ps(mask, if_false, if_true); }
  static F round_nearest(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static I to_int(F a) { return _mm512_cvtps_epi32(a); }
  static F as_float(I a) { return _mm512_castsi512_ps(a); }
  static I add_int(I a, I b) { return _mm512_add_epi32(a, b); }
  static I sub_int(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I shift_left(I a, unsigned bits) { return _mm512_slli_epi32(a, bits); }
  static I shift_right(I a, unsigned bits) { return _mm512_srai_epi32(a, bits); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F a) { _mm512_storeu_ps(p, a); }
  // The tail through a lane mask: masked-off lanes are neither read nor written.
  static __mmask16 first(std::int64_t rest) { return static_cast<__mmask16>((1U << rest) - 1U); }
  static F load_tail(const float* p, std::int64_t rest) { return _mm512_maskz_loadu_ps(first(rest), p); }
  static void store_tail(float* p, F a, std::int64_t rest) { _mm512_mask_storeu_ps(p, first(rest), a); }
};
using F = V::F;
using I = V::I;

#include "backend/cpu/vector_math_formulas.inc"

}  // namespace avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#pragma GCC diagnostic pop
#endif

std::atomic<bool> g_avx2_only{false};

bool cpu_has_avx2_fma() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
}

bool cpu_has_avx512() {
  static const bool supported = __builtin_cpu_supports("avx512f");
  return supported;
}

}  // namespace

FloatArrayFn vector_unary_f32(UnaryOp op) {
  if (!cpu_has_avx2_fma()) return nullptr;
  if (cpu_has_avx512() && !g_avx2_only.load(std::memory_order_relaxed)) return avx512::kernel_for(op);
  return avx2::kernel_for(op);
}

FloatProductFn vector_gelu_backward_f32() {
  if (!cpu_has_avx2_fma()) return nullptr;
  if (cpu_has_avx512() && !g_avx2_only.load(std::memory_order_relaxed)) return &avx512::gelu_backward_lanes;
  return &avx2::gelu_backward_lanes;
}

void set_vector_math_avx2_only(bool avx2_only) { g_avx2_only.store(avx2_only, std::memory_order_relaxed); }

}  // namespace needle::cpu

#else  // not x86-64: the scalar loops everywhere

namespace needle::cpu {
FloatArrayFn vector_unary_f32(UnaryOp /*op*/) { return nullptr; }
FloatProductFn vector_gelu_backward_f32() { return nullptr; }
void set_vector_math_avx2_only(bool /*avx2_only*/) {}
}  // namespace needle::cpu

#endif
