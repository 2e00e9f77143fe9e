// Errors raised by the engine.
//
// Every check in Needle throws one of these instead of asserting, so a bad call from Python surfaces as
// a normal exception (ValueError, TypeError, IndexError, RuntimeError, MemoryError) and never aborts the
// process.
// Messages name the operation and the shapes/values involved, e.g.
//   "add: shapes (2, 3) and (4,) cannot be broadcast together".
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace needle {

// Which Python exception an error maps to.
enum class ErrorKind { Value, Type, Index, Runtime, Memory };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// Wrong shape, size or value of an argument (Python ValueError).
class ValueError : public Error {
 public:
  explicit ValueError(const std::string& message) : Error(ErrorKind::Value, message) {}
};

// Unsupported dtype or argument type (Python TypeError).
class TypeError : public Error {
 public:
  explicit TypeError(const std::string& message) : Error(ErrorKind::Type, message) {}
};

// Index or axis out of range (Python IndexError).
class IndexError : public Error {
 public:
  explicit IndexError(const std::string& message) : Error(ErrorKind::Index, message) {}
};

// Anything else: device mismatch, disabled device, internal failure (Python RuntimeError).
class RuntimeError : public Error {
 public:
  explicit RuntimeError(const std::string& message) : Error(ErrorKind::Runtime, message) {}
};

// A representable size that the device cannot provide (Python MemoryError). An impossible size, one whose
// count does not even fit in int64, is a ValueError instead.
class MemoryError : public Error {
 public:
  explicit MemoryError(const std::string& message) : Error(ErrorKind::Memory, message) {}
};

// Concatenates anything printable into one string: str("add: shapes ", a, " and ", b).
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

}  // namespace needle

// NEEDLE_CHECK(cond, ValueError, "op: message ", value, ...) throws ValueError(str(...)) unless cond.
#define NEEDLE_CHECK(cond, ErrorType, ...)                              \
  do {                                                                  \
    if (!(cond)) throw ::needle::ErrorType(::needle::str(__VA_ARGS__)); \
  } while (false)
