// Element types and the helpers to dispatch on them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "needle/core/error.h"

namespace needle {

// The element types an NDArray can hold. Order matters: promote_types() picks the later of two types
// (uint8 with int8 excepted). uint8 holds image pixels and labels; int8 is what quantized weights use.
// float16/bfloat16 will be added (after Float64) with the CUDA backend.
enum class DType : std::uint8_t { Bool, UInt8, Int8, Int32, Int64, Float32, Float64 };

// Every dtype, in enum order.
inline constexpr DType kAllDTypes[] = {DType::Bool,  DType::UInt8,   DType::Int8,   DType::Int32,
                                       DType::Int64, DType::Float32, DType::Float64};

inline constexpr DType kDefaultFloat = DType::Float32;

std::size_t itemsize(DType dtype);
std::string_view dtype_name(DType dtype);      // "float32", "int64", ...
DType dtype_from_name(std::string_view name);  // throws TypeError for an unknown name
bool is_floating(DType dtype);
bool is_integral(DType dtype);  // uint8, int8, int32 and int64 (not bool)

// Result type of a binary operation, following PyTorch: bool < integers < floating point; within a
// category the wider type wins (int64 + float32 -> float32, int32 + int64 -> int64). uint8 with int8 gives
// int32, the narrowest signed type here that holds both (PyTorch's int16 is not a Needle dtype).
DType promote_types(DType a, DType b);

// The dtype a floating-point-only operation (exp, log, true division, mean of ints) computes in:
// the type itself when floating, float32 otherwise.
DType float_result_type(DType dtype);

std::ostream& operator<<(std::ostream& out, DType dtype);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<bool>() {
  return DType::Bool;
}
template <>
constexpr DType dtype_of<std::uint8_t>() {
  return DType::UInt8;
}
template <>
constexpr DType dtype_of<std::int8_t>() {
  return DType::Int8;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::Int32;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::Int64;
}
template <>
constexpr DType dtype_of<float>() {
  return DType::Float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::Float64;
}

// Calls fn.template operator()<T>() with T the C++ type of `dtype`:
//   dispatch_dtype(a.dtype(), [&]<typename T>() { ... uses T ... });
template <typename Fn>
decltype(auto) dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Bool:
      return fn.template operator()<bool>();
    case DType::UInt8:
      return fn.template operator()<std::uint8_t>();
    case DType::Int8:
      return fn.template operator()<std::int8_t>();
    case DType::Int32:
      return fn.template operator()<std::int32_t>();
    case DType::Int64:
      return fn.template operator()<std::int64_t>();
    case DType::Float32:
      return fn.template operator()<float>();
    case DType::Float64:
      return fn.template operator()<double>();
  }
  throw RuntimeError("dispatch_dtype: invalid dtype value");
}

// Same, restricted to float32/float64; other dtypes throw TypeError naming `op`.
template <typename Fn>
decltype(auto) dispatch_floating(DType dtype, std::string_view op, Fn&& fn) {
  switch (dtype) {
    case DType::Float32:
      return fn.template operator()<float>();
    case DType::Float64:
      return fn.template operator()<double>();
    default:
      throw TypeError(str(op, ": unsupported dtype ", dtype_name(dtype), " (expected float32 or float64)"));
  }
}

}  // namespace needle
