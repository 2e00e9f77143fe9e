#include "needle/core/shape.h"

#include <algorithm>
#include <array>
#include <iomanip>
#include <sstream>

#include "needle/core/checked_math.h"
#include "needle/core/error.h"

namespace needle {

std::int64_t numel(const Shape& shape) {
  const std::optional<std::int64_t> n = checked_numel(shape);
  NEEDLE_CHECK(n.has_value(), ValueError, "shape ", shape_str(shape), " has more than ", kMaxSizeText, " elements");
  return *n;
}

std::optional<std::int64_t> checked_numel(const Shape& shape) {
  std::int64_t nonzero = 1;
  bool empty = false;
  for (std::int64_t d : shape) {
    if (d == 0) {
      empty = true;
      continue;
    }
    const std::optional<std::int64_t> product = checked_mul(nonzero, d);
    if (!product) return std::nullopt;
    nonzero = *product;
  }
  return empty ? 0 : nonzero;
}

Strides compact_strides(const Shape& shape) {
  Strides strides(shape.size());
  std::int64_t stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    // The stride past the first axis is never used; computing it could overflow a valid shape's size.
    if (i > 0) stride *= std::max<std::int64_t>(shape[i], 1);
  }
  return strides;
}

std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::ostringstream out;
  out << '(';
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out << ", ";
    out << shape[i];
  }
  if (shape.size() == 1) out << ',';
  out << ')';
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const ShapePrinter& p) { return out << shape_str(p.shape); }

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op) {
  const std::size_t ndim = std::max(a.size(), b.size());
  Shape out(ndim);
  for (std::size_t i = 0; i < ndim; ++i) {
    // Align from the right: missing leading dimensions count as 1.
    const std::int64_t da = i < ndim - a.size() ? 1 : a[i - (ndim - a.size())];
    const std::int64_t db = i < ndim - b.size() ? 1 : b[i - (ndim - b.size())];
    NEEDLE_CHECK(da == db || da == 1 || db == 1, ValueError, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                 " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  // Each operand's size fits, but (2**40, 1) and (1, 2**40) broadcast to a size that does not.
  NEEDLE_CHECK(checked_numel(out).has_value(), ValueError, op, ": shapes ", shape_str(a), " and ", shape_str(b),
               " broadcast to ", shape_str(out), ", which has more than ", kMaxSizeText, " elements");
  return out;
}

std::int64_t normalize_axis(std::int64_t axis, std::int64_t ndim, std::string_view op) {
  NEEDLE_CHECK(axis >= -ndim && axis < ndim, IndexError, op, ": axis ", axis, " is out of range for an array with ",
               ndim, " dimension", ndim == 1 ? "" : "s");
  return axis < 0 ? axis + ndim : axis;
}

std::vector<std::int64_t> normalize_axes(const std::vector<std::int64_t>& axes, std::int64_t ndim,
                                         std::string_view op) {
  std::vector<std::int64_t> out;
  out.reserve(axes.size());
  for (std::int64_t axis : axes) {
    const std::int64_t a = normalize_axis(axis, ndim, op);
    NEEDLE_CHECK(std::find(out.begin(), out.end(), a) == out.end(), ValueError, op, ": axis ", axis,
                 " is repeated in axes ", shape_str(axes));
    out.push_back(a);
  }
  return out;
}

void check_valid_shape(const Shape& shape, std::string_view op) {
  for (std::int64_t d : shape) {
    NEEDLE_CHECK(d >= 0, ValueError, op, ": negative dimension in shape ", shape_str(shape));
  }
  NEEDLE_CHECK(checked_numel(shape).has_value(), ValueError, op, ": shape ", shape_str(shape), " has more than ",
               kMaxSizeText, " elements");
}

std::string byte_size_str(std::uint64_t bytes) {
  static constexpr std::array<const char*, 7> kUnits = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  if (bytes < 1000) return str(bytes, " B");
  auto value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1000.0 && unit + 1 < kUnits.size()) {
    value /= 1000.0;
    ++unit;
  }
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << value << ' ' << kUnits.at(unit);
  return out.str();
}

}  // namespace needle
