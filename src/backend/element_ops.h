// The per-element arithmetic of the host backends: element_math.h's formulas (shared with CUDA) plus what
// only host code does, throwing errors (integer division by zero) and dispatching an op enum to a formula.
//
// Backends differ in how they walk memory, never in what they compute for one element: keeping the
// scalar operations here makes the fast `cpu` kernels agree bit for bit with the `ref` ones.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string_view>
#include <type_traits>

#include "backend/element_math.h"
#include "needle/backend/backend.h"
#include "needle/core/dtype.h"
#include "needle/core/error.h"
#include "needle/core/random.h"

namespace needle::kernels {

using math::add;
using math::is_nan;
using math::kIsInteger;
using math::maximum;
using math::minimum;
using math::multiply;
using math::negate;
using math::sigmoid;
using math::subtract;

template <typename T>
[[noreturn]] void throw_unsupported_dtype(std::string_view op) {
  throw TypeError(str(op, ": unsupported dtype ", dtype_name(dtype_of<T>())));
}

template <typename T>
T divide(T a, T b) {
  if constexpr (kIsInteger<T>) {
    if (b == 0) throw ValueError("div: integer division by zero");
    // The most negative value divided by -1 overflows (and traps on x86); it wraps like negation.
    if (b == -1) return negate(a);
  }
  return a / b;
}

template <typename T>
T power(T base, T exponent) {
  if constexpr (kIsInteger<T>) {
    if (exponent < 0) throw ValueError("pow: integers to negative integer powers are not allowed");
    // Exponentiation by squaring: O(log exponent) wrapping multiplications.
    T result = 1;
    while (exponent > 0) {
      if ((exponent & 1) != 0) result = multiply(result, base);
      exponent /= 2;
      if (exponent > 0) base = multiply(base, base);
    }
    return result;
  } else {
    return std::pow(base, exponent);
  }
}

// One Adam step's coefficients in the parameter's dtype, computed once per kernel call.
template <typename T>
struct AdamCoefficients {
  explicit AdamCoefficients(const AdamStep& s)
      : lr(T(s.lr)),
        beta1(T(s.beta1)),
        one_minus_beta1(T(1.0 - s.beta1)),
        beta2(T(s.beta2)),
        one_minus_beta2(T(1.0 - s.beta2)),
        eps(T(s.eps)),
        weight_decay(T(s.weight_decay)),
        decay(T(1.0 - s.lr * s.weight_decay)),
        correction1(T(s.correction1)),
        correction2(T(s.correction2)),
        decoupled(s.decoupled) {}
  T lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, decay, correction1, correction2;
  bool decoupled;
};

// Backend::adam_update for one element: the formula of kernels.def, in this order in every backend.
template <typename T>
void adam_element(T& p, T g, T& m, T& v, const AdamCoefficients<T>& c) {
  if (c.decoupled) {
    p = p * c.decay;
  } else {
    g = g + c.weight_decay * p;
  }
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * (g * g);
  p = p - c.lr * ((m / c.correction1) / (std::sqrt(v / c.correction2) + c.eps));
}

// One SGD step's coefficients in the parameter's dtype, computed once per kernel call.
template <typename T>
struct SgdCoefficients {
  explicit SgdCoefficients(const SgdStep& s)
      : lr(T(s.lr)),
        momentum(T(s.momentum)),
        one_minus_momentum(T(1.0 - s.momentum)),
        weight_decay(T(s.weight_decay)),
        decay(s.weight_decay != 0.0),
        first(s.first) {}
  T lr, momentum, one_minus_momentum, weight_decay;
  bool decay;  // wd * p is added only for a nonzero wd, so an infinite p alone does not make g NaN
  bool first;
};

// Backend::sgd_update for one element with a momentum buffer, in the order of backend.h in every backend.
template <typename T>
void sgd_momentum_element(T& p, T g, T& u, const SgdCoefficients<T>& c) {
  if (c.decay) g = g + p * c.weight_decay;
  u = c.first ? g * c.one_minus_momentum : u * c.momentum + g * c.one_minus_momentum;
  p = p - u * c.lr;
}

// Backend::sgd_update for one element without a momentum buffer.
template <typename T>
void sgd_element(T& p, T g, const SgdCoefficients<T>& c) {
  if (c.decay) g = g + p * c.weight_decay;
  p = p - g * c.lr;
}

// Calls fn(f) with f a callable T -> T computing `op` (element_math.h's formula); throws TypeError when T
// does not support it. Dispatching once per kernel call (not per element) lets the element loop inline f.
template <typename T, typename Fn>
void with_unary_op(UnaryOp op, Fn&& fn) {
  switch (op) {
#define NEEDLE_UNARY(kind, ...)                                           \
  case UnaryOp::kind:                                                     \
    if constexpr (math::unary_supports<UnaryOp::kind, T>) {               \
      return fn([](T x) { return math::apply_unary<UnaryOp::kind>(x); }); \
    }                                                                     \
    break;
#include "needle/core/unary_ops.def"
  }
  throw_unsupported_dtype<T>(unary_op_name(op));
}

// Calls fn(f) with f a callable (T, T) -> R computing `op`, where R is bool for comparisons and T
// otherwise; throws TypeError when T does not support the op (bool arithmetic).
template <typename T, typename Fn>
void with_binary_op(BinaryOp op, Fn&& fn) {
  switch (op) {
    case BinaryOp::Eq:
      return fn([](T a, T b) { return a == b; });
    case BinaryOp::Ne:
      return fn([](T a, T b) { return a != b; });
    case BinaryOp::Lt:
      return fn([](T a, T b) { return a < b; });
    case BinaryOp::Le:
      return fn([](T a, T b) { return a <= b; });
    case BinaryOp::Gt:
      return fn([](T a, T b) { return a > b; });
    case BinaryOp::Ge:
      return fn([](T a, T b) { return a >= b; });
    case BinaryOp::Maximum:
      return fn([](T a, T b) { return maximum(a, b); });
    case BinaryOp::Minimum:
      return fn([](T a, T b) { return minimum(a, b); });
    default:
      break;
  }
  if constexpr (!std::is_same_v<T, bool>) {
    switch (op) {
      case BinaryOp::Add:
        return fn([](T a, T b) { return add(a, b); });
      case BinaryOp::Sub:
        return fn([](T a, T b) { return subtract(a, b); });
      case BinaryOp::Mul:
        return fn([](T a, T b) { return multiply(a, b); });
      case BinaryOp::Div:
        return fn([](T a, T b) { return divide(a, b); });
      case BinaryOp::Pow:
        return fn([](T a, T b) { return power(a, b); });
      default:
        break;
    }
  }
  throw_unsupported_dtype<T>(binary_op_name(op));
}

// Sample number `counter` of a random request, converted to T; the recipe every backend must follow.
template <typename T>
T random_sample(RandomDistribution dist, double p0, double p1, std::uint64_t seed, std::uint64_t counter) {
  switch (dist) {
    case RandomDistribution::Uniform: {
      const T value = static_cast<T>(p0 + (p1 - p0) * random_bits::uniform01(seed, counter));
      if constexpr (std::is_floating_point_v<T>) {
        // Rounding a double just below p1 to float32 can land on p1 itself: keep [p0, p1) half-open.
        const T high = static_cast<T>(p1);
        if (p1 > p0 && value >= high) return std::nextafter(high, static_cast<T>(p0));
      }
      return value;
    }
    case RandomDistribution::Normal:
      return static_cast<T>(p0 + p1 * random_bits::standard_normal(seed, counter));
    case RandomDistribution::Bernoulli:
      return static_cast<T>(random_bits::uniform01(seed, counter) < p0 ? 1 : 0);
  }
  throw RuntimeError("random: invalid distribution value");
}

}  // namespace needle::kernels
