// Overflow-checked int64 arithmetic for sizes, strides, offsets and byte counts.
//
// Signed overflow is undefined behaviour in C++, and a size that silently wraps (2**32 * 2**32 == 0) turns
// a refusable request into an out-of-bounds access later. Every product or sum of user-given sizes goes
// through these functions, which answer std::nullopt instead of wrapping, so the caller can raise an error
// that names its op and the sizes as they were asked for.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>

namespace needle {

// The largest element count, byte count, stride or offset Needle represents (2**63 - 1).
inline constexpr std::int64_t kMaxSize = std::numeric_limits<std::int64_t>::max();

// How kMaxSize reads in error messages.
inline constexpr const char* kMaxSizeText = "2**63 - 1";

[[nodiscard]] constexpr std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t result = 0;
  if (__builtin_add_overflow(a, b, &result)) return std::nullopt;
  return result;
}

[[nodiscard]] constexpr std::optional<std::int64_t> checked_sub(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t result = 0;
  if (__builtin_sub_overflow(a, b, &result)) return std::nullopt;
  return result;
}

[[nodiscard]] constexpr std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t result = 0;
  if (__builtin_mul_overflow(a, b, &result)) return std::nullopt;
  return result;
}

}  // namespace needle
