// Shapes, strides and the arithmetic on them. Strides are counted in elements, not bytes, and may be
// zero (broadcast) or negative (flip).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace needle {

using Shape = std::vector<std::int64_t>;
using Strides = std::vector<std::int64_t>;

// Product of the dimensions (1 for a 0-d shape, 0 if any dimension is 0). Throws ValueError when the
// product does not fit in int64 (see checked_numel); the ops validate the shapes users give them first, so
// that this is only a last line of defence.
std::int64_t numel(const Shape& shape);

// The number of elements of `shape`, or std::nullopt when it is not representable. As in NumPy, the
// nonzero dimensions alone must have a product that fits in int64, even when some dimension is 0: an
// empty array of shape (0, 2**62, 2**62) is refused, because reducing or slicing away its 0 would leave
// a shape whose size wraps.
std::optional<std::int64_t> checked_numel(const Shape& shape);

// Row-major strides of a contiguous array of this shape.
Strides compact_strides(const Shape& shape);

// "(2, 3)", "(5,)", "()": the way Python prints a shape, used in every error message.
std::string shape_str(const std::vector<std::int64_t>& shape);

// NumPy broadcasting of two shapes; throws ValueError naming `op` and both shapes when incompatible, or
// when the broadcast shape has more elements than int64 can count.
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op);

// Maps a possibly negative axis into [0, ndim); throws IndexError naming `op` when out of range.
std::int64_t normalize_axis(std::int64_t axis, std::int64_t ndim, std::string_view op);

// Normalizes a list of axes (negative allowed); throws IndexError when out of range and ValueError
// when an axis repeats. An empty list stays empty.
std::vector<std::int64_t> normalize_axes(const std::vector<std::int64_t>& axes, std::int64_t ndim, std::string_view op);

// Throws ValueError naming `op` unless every dimension is >= 0 and checked_numel(shape) is representable.
void check_valid_shape(const Shape& shape, std::string_view op);

// "4.0 TB", "512 B": a byte count for messages (decimal units, one decimal).
std::string byte_size_str(std::uint64_t bytes);

struct ShapePrinter {
  const std::vector<std::int64_t>& shape;
};
std::ostream& operator<<(std::ostream& out, const ShapePrinter& p);

}  // namespace needle
