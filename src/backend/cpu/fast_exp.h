// exp() for the cpu backend's own kernels, instead of a libm call per element: one set of Cephes
// coefficients for float, used by the branch-free scalar functions below (written so that loops calling
// them vectorise for whatever instruction set the calling file is compiled for: cpu/nn.cpp) and by the
// explicit AVX2 and AVX-512 versions in vector_math_formulas.inc.
#pragma once
#include <bit>
#include <cstdint>
#include <limits>

namespace needle::cpu {

// Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, e^r = 1 + r + r^2 (kP[0] r^5 + ... + kP[5]) (a degree-7
// polynomial), times 2^n built in the exponent bits; about 1 ulp. ln 2 is split into kLn2Hi, whose product
// with a small integer n is exact, and the correction kLn2Lo, so the reduced argument keeps full precision.
struct CephesExpf {
  static constexpr float kLog2e = 1.44269504088896341F;
  static constexpr float kLn2Hi = 0.693359375F;
  static constexpr float kLn2Lo = -2.12194440e-4F;
  static constexpr int kDegree = 6;
  static constexpr float kP[kDegree] = {1.9875691500E-4F, 1.3981999507E-3F, 8.3334519073E-3F,
                                        4.1665795894E-2F, 1.6666665459E-1F, 5.0000001201E-1F};
};

// exp(x) for float: Cephes' expf (x = n ln2 + r with |r| <= ln2 / 2, a degree-7 polynomial in r, then
// times 2^n built in the exponent bits), about 1 ulp. Branch-free so that loops calling it vectorise:
// the integer n is read from the mantissa after adding 1.5 * 2^23, with no float-to-int conversion.
// Below the smallest normal result it returns 0; NaN stays NaN.
[[gnu::always_inline]] inline float vector_exp(float x) {
  constexpr float kLog2e = CephesExpf::kLog2e;
  constexpr float kLn2Hi = CephesExpf::kLn2Hi;
  constexpr float kLn2Lo = CephesExpf::kLn2Lo;
  constexpr float kMax = 88.3762626647949F;
  constexpr float kMin = -87.3365478515625F;  // ln(2^-126)
  constexpr float kRoundMagic = 12582912.0F;  // 1.5 * 2^23
  float clamped = x > kMax ? kMax : x;
  clamped = clamped < kMin ? kMin : clamped;
  const float rounded = clamped * kLog2e + kRoundMagic;
  const float n = rounded - kRoundMagic;
  const float r = (clamped - n * kLn2Hi) - n * kLn2Lo;
  float p = CephesExpf::kP[0];
  for (int i = 1; i < CephesExpf::kDegree; ++i) p = p * r + CephesExpf::kP[i];
  p = p * (r * r) + r + 1.0F;
  const std::uint32_t exponent =
      (std::bit_cast<std::uint32_t>(rounded) - std::bit_cast<std::uint32_t>(kRoundMagic) + 127U) << 23U;
  const float result = p * std::bit_cast<float>(exponent);
  const float low = x < kMin ? 0.0F : result;
  return x > kMax ? std::numeric_limits<float>::infinity() : low;
}

// exp(x) for double: Cephes' exp (a Pade approximant 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2)) on the reduced
// argument), about 1 ulp, with the same branch-free reduction as the float version.
[[gnu::always_inline]] inline double vector_exp(double x) {
  constexpr double kLog2e = 1.4426950408889634073599;
  constexpr double kLn2Hi = 6.93145751953125E-1;
  constexpr double kLn2Lo = 1.42860682030941723212E-6;
  constexpr double kMax = 709.0;
  constexpr double kMin = -708.39641853226410622;     // ln(2^-1022)
  constexpr double kRoundMagic = 6755399441055744.0;  // 1.5 * 2^52
  double clamped = x > kMax ? kMax : x;
  clamped = clamped < kMin ? kMin : clamped;
  const double rounded = clamped * kLog2e + kRoundMagic;
  const double n = rounded - kRoundMagic;
  const double r = (clamped - n * kLn2Hi) - n * kLn2Lo;
  const double rr = r * r;
  const double px = r * ((1.26177193074810590878E-4 * rr + 3.02994407707441961300E-2) * rr + 9.99999999999999999910E-1);
  const double qx =
      ((3.00198505138664455042E-6 * rr + 2.52448340349684104192E-3) * rr + 2.27265548208155028766E-1) * rr +
      2.00000000000000000009E0;
  const double p = 1.0 + 2.0 * px / (qx - px);
  const std::uint64_t exponent =
      (std::bit_cast<std::uint64_t>(rounded) - std::bit_cast<std::uint64_t>(kRoundMagic) + 1023U) << 52U;
  const double result = p * std::bit_cast<double>(exponent);
  const double low = x < kMin ? 0.0 : result;
  return x > kMax ? std::numeric_limits<double>::infinity() : low;
}

}  // namespace needle::cpu
