// A single number of any dtype, used for fills and scalar operands (a + 1.5, full(shape, 7)).
#pragma once

#include <cstdint>
#include <ostream>

#include "needle/core/dtype.h"

namespace needle {

// Holds a bool, an integer or a floating value exactly (int64 values are not squeezed through double).
class Scalar {
 public:
  Scalar() : Scalar(0.0) {}
  Scalar(double v) : kind_(Kind::Floating), f_(v) {}                // NOLINT(google-explicit-constructor)
  Scalar(float v) : Scalar(static_cast<double>(v)) {}               // NOLINT(google-explicit-constructor)
  Scalar(std::int64_t v) : kind_(Kind::Integral), i_(v) {}          // NOLINT(google-explicit-constructor)
  Scalar(std::int32_t v) : Scalar(static_cast<std::int64_t>(v)) {}  // NOLINT(google-explicit-constructor)
  Scalar(bool v) : kind_(Kind::Boolean), i_(v ? 1 : 0) {}           // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool is_floating() const { return kind_ == Kind::Floating; }
  [[nodiscard]] bool is_integral() const { return kind_ == Kind::Integral; }
  [[nodiscard]] bool is_bool() const { return kind_ == Kind::Boolean; }

  // The value converted to T with C++ conversion rules (like NumPy's astype).
  template <typename T>
  [[nodiscard]] T to() const {
    if (kind_ == Kind::Floating) return static_cast<T>(f_);
    return static_cast<T>(i_);
  }

  // -value, keeping the kind (a bool negates to the integer -1 or 0).
  [[nodiscard]] Scalar negated() const {
    if (kind_ == Kind::Floating) return Scalar(-f_);
    return Scalar(-i_);
  }

  // The dtype this scalar would have on its own: bool, int64 or float32 (PyTorch's defaults).
  [[nodiscard]] DType natural_dtype() const {
    switch (kind_) {
      case Kind::Boolean:
        return DType::Bool;
      case Kind::Integral:
        return DType::Int64;
      case Kind::Floating:
        break;
    }
    return kDefaultFloat;
  }

  friend std::ostream& operator<<(std::ostream& out, const Scalar& s) {
    if (s.kind_ == Kind::Floating) return out << s.f_;
    if (s.kind_ == Kind::Boolean) return out << (s.i_ != 0 ? "True" : "False");
    return out << s.i_;
  }

 private:
  enum class Kind : std::uint8_t { Boolean, Integral, Floating };
  Kind kind_;
  double f_ = 0.0;
  std::int64_t i_ = 0;
};

// The dtype of `array_dtype op scalar`: the scalar only lifts the category (PyTorch's "weak" scalars):
// int32 array + 2 -> int32, int32 array + 2.5 -> float32, float64 array + 2.5 -> float64.
DType promote_with_scalar(DType array_dtype, const Scalar& scalar);

}  // namespace needle
