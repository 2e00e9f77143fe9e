#include "needle/core/dtype.h"

#include <ostream>

#include "needle/core/scalar.h"

namespace needle {

std::size_t itemsize(DType dtype) {
  return dispatch_dtype(dtype, []<typename T>() { return sizeof(T); });
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Bool:
      return "bool";
    case DType::UInt8:
      return "uint8";
    case DType::Int8:
      return "int8";
    case DType::Int32:
      return "int32";
    case DType::Int64:
      return "int64";
    case DType::Float32:
      return "float32";
    case DType::Float64:
      return "float64";
  }
  return "invalid";
}

DType dtype_from_name(std::string_view name) {
  for (DType dtype : kAllDTypes) {
    if (name == dtype_name(dtype)) return dtype;
  }
  throw TypeError(
      str("unsupported dtype '", name, "' (expected one of bool, uint8, int8, int32, int64, float32, float64)"));
}

bool is_floating(DType dtype) { return dtype == DType::Float32 || dtype == DType::Float64; }

bool is_integral(DType dtype) {
  return dtype == DType::UInt8 || dtype == DType::Int8 || dtype == DType::Int32 || dtype == DType::Int64;
}

DType promote_types(DType a, DType b) {
  // The enum is ordered bool < uint8 < int8 < int32 < int64 < float32 < float64, which is PyTorch's
  // lattice for these types (int64 + float32 -> float32) except for uint8 with int8: neither holds the
  // other's values.
  if ((a == DType::UInt8 && b == DType::Int8) || (a == DType::Int8 && b == DType::UInt8)) return DType::Int32;
  return a > b ? a : b;
}

DType float_result_type(DType dtype) { return is_floating(dtype) ? dtype : kDefaultFloat; }

DType promote_with_scalar(DType array_dtype, const Scalar& scalar) {
  if (scalar.is_floating()) return float_result_type(array_dtype);
  if (scalar.is_integral() && array_dtype == DType::Bool) return DType::Int64;
  return array_dtype;
}

std::ostream& operator<<(std::ostream& out, DType dtype) { return out << dtype_name(dtype); }

}  // namespace needle
