// The AVX2 + FMA float32 kernels behind vector_math.h. Like the GEMM micro-kernels, these functions are
// compiled for AVX2 + FMA whatever the project's flags say and are only handed out after a run-time check of
// the CPU; on other machines (or other architectures) vector_unary_f32 returns nullptr.
#include "backend/cpu/vector_math.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/fast_exp.h"

#define NEEDLE_AVX2 __attribute__((target("avx2,fma")))

namespace needle::cpu {

namespace {

NEEDLE_AVX2 inline __m256 splat(float v) { return _mm256_set1_ps(v); }

// 2^k for integer lanes k in [-126, 127], built directly in the exponent field.
NEEDLE_AVX2 inline __m256 pow2(__m256i k) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

// e^(hi + lo), where lo carries low-order bits that do not fit in hi (e.g. the rounding error of a square).
// Range reduction: n = round((hi + lo) / ln 2), r = hi + lo - n ln 2 with ln 2 split into a part whose
// product with n is exact and a small correction, so r keeps full precision; e^r is Cephes' polynomial on
// |r| <= ln(2) / 2 (CephesExpf in fast_exp.h, shared with the scalar exp; about one unit in the last
// place), and 2^n is applied in two halves so that results down to the subnormal range need no special case.
NEEDLE_AVX2 inline __m256 exp_hilo(__m256 hi, __m256 lo) {
  const __m256 x = _mm256_add_ps(hi, lo);
  // Below -104 the result rounds to 0; above ln(FLT_MAX) it is +inf (patched below). NaN is patched too.
  const __m256 lowest = splat(-104.0F);
  const __m256 highest = splat(88.72283935546875F);
  const __m256 clamped_hi = _mm256_min_ps(_mm256_max_ps(hi, lowest), highest);
  const __m256 clamped_lo = _mm256_and_ps(lo, _mm256_cmp_ps(hi, clamped_hi, _CMP_EQ_OQ));
  const __m256 clamped = _mm256_add_ps(clamped_hi, clamped_lo);
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(clamped, splat(CephesExpf::kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, splat(CephesExpf::kLn2Hi), clamped_hi);
  r = _mm256_fnmadd_ps(n, splat(CephesExpf::kLn2Lo), r);
  r = _mm256_add_ps(r, clamped_lo);
  __m256 p = splat(CephesExpf::kP[0]);
  for (int i = 1; i < CephesExpf::kDegree; ++i) p = _mm256_fmadd_ps(p, r, splat(CephesExpf::kP[i]));
  __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, splat(1.0F)));
  const __m256i k = _mm256_cvtps_epi32(n);
  const __m256i k_half = _mm256_srai_epi32(k, 1);
  y = _mm256_mul_ps(_mm256_mul_ps(y, pow2(k_half)), pow2(_mm256_sub_epi32(k, k_half)));
  y = _mm256_blendv_ps(y, splat(__builtin_inff()), _mm256_cmp_ps(x, highest, _CMP_GT_OQ));
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

NEEDLE_AVX2 inline __m256 exp8(__m256 x) { return exp_hilo(x, _mm256_setzero_ps()); }

// With e = e^-|x|: 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, as element_ops.h computes it. The
// exponent is never positive, so nothing overflows, and tiny results for very negative x stay exact
// (subnormal) instead of becoming 1 / inf = 0.
NEEDLE_AVX2 inline __m256 sigmoid8(__m256 x) {
  const __m256 one = splat(1.0F);
  const __m256 e = exp8(_mm256_or_ps(x, splat(-0.0F)));  // e^-|x|
  const __m256 numerator = _mm256_blendv_ps(one, e, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
  return _mm256_div_ps(numerator, _mm256_add_ps(one, e));
}

// tanh: near 0, the odd polynomial x + x^3 P(x^2) of Cephes' tanhf (where 1 - 2 / (e^2x + 1) would cancel);
// beyond |x| = 0.625, 1 - 2 / (e^(2|x|) + 1) with x's sign, which saturates to 1 when the exponential
// overflows.
NEEDLE_AVX2 inline __m256 tanh8(__m256 x) {
  const __m256 sign_mask = splat(-0.0F);
  const __m256 a = _mm256_andnot_ps(sign_mask, x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 p = splat(-5.70498872745e-3F);
  p = _mm256_fmadd_ps(p, z, splat(2.06390887954e-2F));
  p = _mm256_fmadd_ps(p, z, splat(-5.37397155531e-2F));
  p = _mm256_fmadd_ps(p, z, splat(1.33314422036e-1F));
  p = _mm256_fmadd_ps(p, z, splat(-3.33332819422e-1F));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
  const __m256 e = exp8(_mm256_add_ps(a, a));
  const __m256 large_abs = _mm256_sub_ps(splat(1.0F), _mm256_div_ps(splat(2.0F), _mm256_add_ps(e, splat(1.0F))));
  const __m256 large = _mm256_or_ps(large_abs, _mm256_and_ps(x, sign_mask));
  return _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, splat(0.625F), _CMP_LT_OQ));
}

// For z = -x / sqrt 2 (rounded exactly as element_ops.h rounds it) and a = |z|: t = 1 / (1 + a/2), and
// erfc(a) = t e^(-a^2) R(t), with R a degree-9 polynomial fitted (weighted least squares, float32
// coefficients) to erfc(a) e^(a^2) / t over a in [0, 10.5]: relative error below 2e-7 for every a >= 0. The
// Gaussian e^(-a^2) is kept apart from R (rather than folding a fitted log R into one exponent) so that
// GELU's derivative reuses it for the density, and each GELU kernel takes one exponential and one division.
// The square a^2 is carried as a2 plus its exact rounding error, so that the exponential keeps full precision
// even where a^2 is large.
struct ErfcParts {
  __m256 z;       // -x / sqrt 2
  __m256 erfc_z;  // erfc(z) = 2 Phi(x)
  __m256 gauss;   // e^(-a^2) = e^(-x^2 / 2)
};

NEEDLE_AVX2 inline ErfcParts erfc_parts(__m256 x) {
  ErfcParts parts{};
  parts.z = _mm256_mul_ps(x, splat(-0.70710678118654752F));
  // Beyond a = 10.5, e^(-a^2) is below the smallest float; clamping there keeps a^2 finite for huge x.
  const __m256 a = _mm256_min_ps(_mm256_andnot_ps(splat(-0.0F), parts.z), splat(10.5F));
  const __m256 t = _mm256_div_ps(splat(1.0F), _mm256_fmadd_ps(splat(0.5F), a, splat(1.0F)));
  __m256 r = splat(1.0818007e-02F);
  r = _mm256_fmadd_ps(r, t, splat(-1.1548706e-01F));
  r = _mm256_fmadd_ps(r, t, splat(4.1117632e-01F));
  r = _mm256_fmadd_ps(r, t, splat(-6.471215e-01F));
  r = _mm256_fmadd_ps(r, t, splat(4.0295178e-01F));
  r = _mm256_fmadd_ps(r, t, splat(-8.891914e-02F));
  r = _mm256_fmadd_ps(r, t, splat(2.2246096e-01F));
  r = _mm256_fmadd_ps(r, t, splat(2.392653e-01F));
  r = _mm256_fmadd_ps(r, t, splat(2.8278756e-01F));
  r = _mm256_fmadd_ps(r, t, splat(2.8206778e-01F));
  const __m256 a2 = _mm256_mul_ps(a, a);
  const __m256 neg_a2_lo = _mm256_fnmadd_ps(a, a, a2);  // a2 - a*a, exactly
  parts.gauss = exp_hilo(_mm256_xor_ps(a2, splat(-0.0F)), neg_a2_lo);
  const __m256 erfc_a = _mm256_mul_ps(_mm256_mul_ps(t, r), parts.gauss);
  // erfc(-a) = 2 - erfc(a).
  const __m256 negative = _mm256_cmp_ps(parts.z, _mm256_setzero_ps(), _CMP_LT_OQ);
  parts.erfc_z = _mm256_blendv_ps(erfc_a, _mm256_sub_ps(splat(2.0F), erfc_a), negative);
  return parts;
}

// x Phi(x) = x erfc(-x / sqrt 2) / 2.
NEEDLE_AVX2 inline __m256 gelu8(__m256 x) { return _mm256_mul_ps(_mm256_mul_ps(x, splat(0.5F)), erfc_parts(x).erfc_z); }

// Phi(x) + x phi(x), with phi(x) = e^(-x^2 / 2) / sqrt(2 pi) = e^(-a^2) / sqrt(2 pi).
NEEDLE_AVX2 inline __m256 gelu_grad8(__m256 x) {
  const ErfcParts parts = erfc_parts(x);
  const __m256 density = _mm256_mul_ps(parts.gauss, splat(0.398942280401432678F));
  return _mm256_fmadd_ps(x, density, _mm256_mul_ps(splat(0.5F), parts.erfc_z));
}

// Runs f over whole vectors, then over the tail through a zero-padded copy (no reads past the end).
template <__m256 (*F)(__m256)>
NEEDLE_AVX2 void map8(float* out, const float* in, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, F(_mm256_loadu_ps(in + i)));
  if (i < n) {
    const auto rest = static_cast<std::size_t>(n - i);
    float tail[8] = {};
    std::memcpy(tail, in + i, rest * sizeof(float));
    _mm256_storeu_ps(tail, F(_mm256_loadu_ps(tail)));
    std::memcpy(out + i, tail, rest * sizeof(float));
  }
}

bool cpu_has_avx2_fma() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
}

}  // namespace

FloatArrayFn vector_unary_f32(UnaryOp op) {
  if (!cpu_has_avx2_fma()) return nullptr;
  switch (op) {
    case UnaryOp::Exp:
      return &map8<exp8>;
    case UnaryOp::Sigmoid:
      return &map8<sigmoid8>;
    case UnaryOp::Tanh:
      return &map8<tanh8>;
    case UnaryOp::Gelu:
      return &map8<gelu8>;
    case UnaryOp::GeluGrad:
      return &map8<gelu_grad8>;
    default:
      return nullptr;
  }
}

}  // namespace needle::cpu

#else  // not x86-64: the scalar loops everywhere

namespace needle::cpu {
FloatArrayFn vector_unary_f32(UnaryOp /*op*/) { return nullptr; }
}  // namespace needle::cpu

#endif
