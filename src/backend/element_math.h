// The arithmetic of one element, written once for every backend: the host backends (ref, cpu) and the
// CUDA kernels compile these same functions (NEEDLE_HOST_DEVICE), so every device computes the same
// numbers and the NumPy corner cases (wrapping integers, NaN propagation, stable sigmoid) live in one
// place. Nothing here throws or allocates: errors (integer division by zero...) are the callers' business.
//
// math::<name> is the formula of the unary function <name> of core/unary_ops.def; apply_unary<Op> picks it
// by enum, and unary_supports<Op, T> says whether dtype T computes it.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <type_traits>

#include "needle/core/kernel_types.h"

#ifdef __CUDACC__
#define NEEDLE_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define NEEDLE_HOST_DEVICE inline
#endif

namespace needle::math {

template <typename T>
inline constexpr bool kIsInteger = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <typename T>
NEEDLE_HOST_DEVICE bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::isnan(x);
  } else {
    return false;
  }
}

// ---- selection ----------------------------------------------------------------------------------------

template <std::size_t Bytes>
struct UnsignedOfSize;
template <>
struct UnsignedOfSize<1> {
  using type = std::uint8_t;
};
template <>
struct UnsignedOfSize<4> {
  using type = std::uint32_t;
};
template <>
struct UnsignedOfSize<8> {
  using type = std::uint64_t;
};

// `condition ? if_true : if_false` (where's element) computed with bit masks rather than a branch, which
// compilers keep for floats: on a condition with no pattern (a ReLU gradient's x > 0) a branch mispredicts
// every other element, and the masks also let the loop vectorize. The chosen value's bits are copied, so
// NaN payloads and signed zeros pass through unchanged.
template <typename T>
inline T select(bool condition, T if_true, T if_false) {
  using Bits = typename UnsignedOfSize<sizeof(T)>::type;
  const Bits mask = static_cast<Bits>(Bits{0} - static_cast<Bits>(condition));
  return std::bit_cast<T>(
      static_cast<Bits>((std::bit_cast<Bits>(if_true) & mask) | (std::bit_cast<Bits>(if_false) & ~mask)));
}

// ---- dtype conversion ---------------------------------------------------------------------------------

// One element of astype. Floats truncate toward zero and anything nonzero (NaN too) becomes true, as in
// NumPy. A float outside the target integer's range is undefined for a plain cast, and devices disagree on
// it (x86 answers with the type's minimum, GPUs saturate), so the answer is pinned down here to what NumPy
// and PyTorch give on x86: NaN and values beyond int32 (int64) become its minimum, and the 8-bit types
// take their value modulo 256 through int64 (PyTorch's rule for uint8): -1.5 becomes 255, 300.5 becomes 44.
template <typename To, typename From>
NEEDLE_HOST_DEVICE To convert(From x) {
  if constexpr (std::is_floating_point_v<From> && kIsInteger<To>) {
    constexpr From kTwoToThe63 = From(9223372036854775808.0);  // exact in float and double
    // Both comparisons are false for NaN.
    const std::int64_t wide = (x >= -kTwoToThe63 && x < kTwoToThe63) ? static_cast<std::int64_t>(x) : INT64_MIN;
    if constexpr (sizeof(To) == 4) {
      return (wide >= INT32_MIN && wide <= INT32_MAX) ? static_cast<To>(wide) : static_cast<To>(INT32_MIN);
    } else {
      return static_cast<To>(wide);  // modulo 2^8 for the 8-bit types (integer conversions wrap in C++20)
    }
  } else {
    return static_cast<To>(x);
  }
}

// ---- two operands -----------------------------------------------------------------------------------

// Integer arithmetic wraps around on overflow like NumPy's; doing it in the unsigned type keeps it
// defined behaviour (signed overflow is undefined in C++, and the sanitizer build rightly rejects it).
template <typename T>
NEEDLE_HOST_DEVICE T add(T a, T b) {
  if constexpr (kIsInteger<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}

template <typename T>
NEEDLE_HOST_DEVICE T subtract(T a, T b) {
  if constexpr (kIsInteger<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
  } else {
    return a - b;
  }
}

template <typename T>
NEEDLE_HOST_DEVICE T multiply(T a, T b) {
  if constexpr (kIsInteger<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}

// np.maximum / np.minimum: a NaN in either operand wins. For bool these are logical or / and.
template <typename T>
NEEDLE_HOST_DEVICE T maximum(T a, T b) {
  return (a >= b || is_nan(a)) ? a : b;
}

template <typename T>
NEEDLE_HOST_DEVICE T minimum(T a, T b) {
  return (a <= b || is_nan(a)) ? a : b;
}

// ---- one operand: the formulas of core/unary_ops.def --------------------------------------------------

// -x, not 0 - x: negating 0.0 gives -0.0, like np.negative.
template <typename T>
NEEDLE_HOST_DEVICE T negate(T x) {
  if constexpr (kIsInteger<T>) {
    return subtract(T(0), x);
  } else {
    return -x;
  }
}

template <typename T>
NEEDLE_HOST_DEVICE T abs(T x) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::abs(x);
  } else if constexpr (std::is_unsigned_v<T>) {
    return x;
  } else {
    return x < 0 ? negate(x) : x;
  }
}

template <typename T>
NEEDLE_HOST_DEVICE T exp(T x) {
  return std::exp(x);
}

template <typename T>
NEEDLE_HOST_DEVICE T log(T x) {
  return std::log(x);
}

template <typename T>
NEEDLE_HOST_DEVICE T sqrt(T x) {
  return std::sqrt(x);
}

template <typename T>
NEEDLE_HOST_DEVICE T tanh(T x) {
  return std::tanh(x);
}

// exp() only ever sees a non-positive argument, so large |x| neither overflows nor produces inf/inf.
template <typename T>
NEEDLE_HOST_DEVICE T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

// Keeps NaN (like np.maximum(x, 0)) because the comparison is false for it.
template <typename T>
NEEDLE_HOST_DEVICE T relu(T x) {
  if constexpr (std::is_unsigned_v<T>) {
    return x;
  } else {
    return x < T(0) ? T(0) : x;
  }
}

template <typename T>
NEEDLE_HOST_DEVICE T erf(T x) {
  return std::erf(x);
}

// x * Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2. erfc, not 1 + erf: for very negative x, Phi is tiny and
// 1 + erf(..) would lose every significant digit to cancellation.
template <typename T>
NEEDLE_HOST_DEVICE T gelu(T x) {
  return x * T(0.5) * std::erfc(-x * T(std::numbers::sqrt2 / 2));
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x), phi the standard normal density.
template <typename T>
NEEDLE_HOST_DEVICE T gelu_grad(T x) {
  const T phi = std::exp(T(-0.5) * x * x) * T(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
  return T(0.5) * std::erfc(-x * T(std::numbers::sqrt2 / 2)) + x * phi;
}

// x * sigmoid(x), with the stable sigmoid above.
template <typename T>
NEEDLE_HOST_DEVICE T silu(T x) {
  return x * sigmoid(x);
}

// ---- picking a formula by enum ----------------------------------------------------------------------

// Whether dtype T computes `Op` (the array layer converts operands first, so a kernel only sees these).
template <UnaryOp Op, typename T>
inline constexpr bool unary_supports = unary_op_domain(Op) == UnaryDomain::Float ? std::is_floating_point_v<T>
                                                                                 : !std::is_same_v<T, bool>;

// False for every op, but only once instantiated: the static_assert below fires only for an op missing from
// the list.
template <UnaryOp>
inline constexpr bool kNoUnaryRow = false;

template <UnaryOp Op, typename T>
NEEDLE_HOST_DEVICE T apply_unary(T x) {
#define NEEDLE_UNARY(kind, name, ...)  \
  if constexpr (Op == UnaryOp::kind) { \
    return name(x);                    \
  } else
#include "needle/core/unary_ops.def"
  { static_assert(kNoUnaryRow<Op>, "apply_unary: a UnaryOp without a row in unary_ops.def"); }
}

}  // namespace needle::math
