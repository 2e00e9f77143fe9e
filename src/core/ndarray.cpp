// NDArray: construction, views and copies. Every view function only computes new shape/strides/offset;
// data moves only in copy()/compact()/astype()/to() and the in-place writers, through backend kernels.
#include "needle/core/ndarray.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <type_traits>
#include <utility>

#include "needle/backend/backend.h"
#include "needle/core/checked_math.h"

namespace needle {

namespace {

void check_same_device(const NDArray& a, const NDArray& b, std::string_view op) {
  NEEDLE_CHECK(a.device() == b.device(), RuntimeError, op, ": expected both arrays on the same device, got ",
               a.device(), " and ", b.device());
}

// Python's slice.indices(): clamps the bounds into the dimension and returns (start, count).
std::pair<std::int64_t, std::int64_t> resolve_slice(const Slice& s, std::int64_t length, std::int64_t axis) {
  NEEDLE_CHECK(s.step != 0, ValueError, "index: slice step cannot be zero (axis ", axis, ")");
  const bool forward = s.step > 0;
  const std::int64_t lower = forward ? 0 : -1;
  const std::int64_t upper = forward ? length : length - 1;
  auto clamp_bound = [&](std::optional<std::int64_t> bound, std::int64_t fallback) {
    if (!bound) return fallback;
    const std::int64_t b = *bound;
    return b < 0 ? std::max(b + length, lower) : std::min(b, upper);
  };
  const std::int64_t start = clamp_bound(s.start, forward ? lower : upper);
  const std::int64_t stop = clamp_bound(s.stop, forward ? upper : lower);
  // Counted in unsigned arithmetic: -step overflows int64 for a step of -2**63, and the usual
  // (span + step - 1) / step overflows for a step near 2**63. Both bounds lie in [-1, length], so the
  // span itself fits.
  const std::uint64_t magnitude =
      forward ? static_cast<std::uint64_t>(s.step) : std::uint64_t{0} - static_cast<std::uint64_t>(s.step);
  const std::int64_t span = forward ? stop - start : start - stop;
  const std::int64_t count =
      span > 0 ? static_cast<std::int64_t>((static_cast<std::uint64_t>(span) - 1) / magnitude + 1) : 0;
  return {start, count};
}

// NumPy's attempt_nocopy_reshape: strides for `new_shape` that address the same elements in the same
// order without copying, or nothing when the current layout does not allow it.
std::optional<Strides> strides_for_view_reshape(const Shape& old_shape, const Strides& old_strides,
                                                const Shape& new_shape) {
  Shape old_dims;
  Strides old_str;
  for (std::size_t i = 0; i < old_shape.size(); ++i) {
    if (old_shape[i] != 1) {  // size-1 axes can take any stride, so they never block a view
      old_dims.push_back(old_shape[i]);
      old_str.push_back(old_strides[i]);
    }
  }
  const std::size_t old_nd = old_dims.size();
  const std::size_t new_nd = new_shape.size();
  Strides new_strides(new_nd, 0);
  std::size_t oi = 0;
  std::size_t oj = 1;
  std::size_t ni = 0;
  std::size_t nj = 1;
  while (ni < new_nd && oi < old_nd) {
    std::int64_t np = new_shape[ni];
    std::int64_t op = old_dims[oi];
    while (np != op) {  // grow the smaller side until both groups cover the same elements
      if (np < op) {
        np *= new_shape[nj++];
      } else {
        op *= old_dims[oj++];
      }
    }
    for (std::size_t ok = oi; ok + 1 < oj; ++ok) {  // the old group must be contiguous in itself
      if (old_str[ok] != old_dims[ok + 1] * old_str[ok + 1]) return std::nullopt;
    }
    new_strides[nj - 1] = old_str[oj - 1];
    for (std::size_t nk = nj - 1; nk > ni; --nk) new_strides[nk - 1] = new_strides[nk] * new_shape[nk];
    ni = nj++;
    oi = oj++;
  }
  const std::int64_t last = ni >= 1 ? new_strides[ni - 1] : 1;
  for (std::size_t nk = ni; nk < new_nd; ++nk) new_strides[nk] = last;  // trailing size-1 axes
  return new_strides;
}

}  // namespace

NDArray::NDArray() : NDArray(Storage::allocate(default_device(), 0), {0}, {1}, 0, kDefaultFloat) {}

NDArray::NDArray(std::shared_ptr<Storage> storage, Shape shape, Strides strides, std::int64_t offset, DType dtype)
    : storage_(std::move(storage)),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset),
      dtype_(dtype) {}

// ---- creation ------------------------------------------------------------------------------------

std::int64_t checked_nbytes(const Shape& shape, DType dtype, std::string_view op) {
  check_valid_shape(shape, op);
  const std::optional<std::int64_t> nbytes =
      checked_mul(numel(shape), static_cast<std::int64_t>(needle::itemsize(dtype)));
  NEEDLE_CHECK(nbytes.has_value(), ValueError, op, ": an array of shape ", shape_str(shape), " and dtype ",
               dtype_name(dtype), " would need more than ", kMaxSizeText, " bytes");
  return *nbytes;
}

NDArray NDArray::empty(const Shape& shape, DType dtype, Device device, std::string_view op) {
  const std::int64_t nbytes = checked_nbytes(shape, dtype, op);
  std::shared_ptr<Storage> storage;
  try {
    storage = Storage::allocate(device, static_cast<std::size_t>(nbytes));
  } catch (const MemoryError& refused) {
    // The backend knows only a byte count; the user knows the call and the shape they asked for. The
    // backend's reason (e.g. how much a GPU has free) follows.
    throw MemoryError(str(op, ": an array of shape ", shape_str(shape), " and dtype ", dtype_name(dtype), " (",
                          numel(shape), " elements, ", byte_size_str(static_cast<std::uint64_t>(nbytes)),
                          ") cannot be allocated on ", device, " (", refused.what(), ")"));
  }
  return {std::move(storage), shape, compact_strides(shape), 0, dtype};
}

NDArray NDArray::full(const Shape& shape, const Scalar& value, DType dtype, Device device, std::string_view op) {
  NDArray out = empty(shape, dtype, device, op);
  // Not out.fill(): initializing a fresh array is no in-place write, so its version stays 0.
  if (out.size() > 0) backend_for(device).fill(out.view(), value);
  return out;
}

NDArray NDArray::zeros(const Shape& shape, DType dtype, Device device, std::string_view op) {
  return full(shape, Scalar(std::int64_t{0}), dtype, device, op);
}

NDArray NDArray::ones(const Shape& shape, DType dtype, Device device, std::string_view op) {
  return full(shape, Scalar(std::int64_t{1}), dtype, device, op);
}

NDArray NDArray::from_host(const void* host_data, const Shape& shape, DType dtype, Device device) {
  NDArray out = empty(shape, dtype, device);
  backend_for(device).copy_from_host(out.data(), host_data, out.storage_->nbytes());
  return out;
}

NDArray NDArray::arange(std::int64_t n, DType dtype, Device device) {
  NEEDLE_CHECK(n >= 0, ValueError, "arange: length must be non-negative, got ", n);
  // The output is allocated first, so a length the device cannot hold is refused naming arange, and the
  // values go through a small host buffer rather than a host copy of all n of them.
  NDArray out = empty({n}, dtype, device, "arange");
  constexpr std::int64_t kChunk = std::int64_t{1} << 16;
  dispatch_dtype(dtype, [&]<typename T>() {
    using Host = std::conditional_t<std::is_same_v<T, bool>, std::uint8_t, T>;  // bool is one byte per element
    std::vector<Host> values(static_cast<std::size_t>(std::min(n, kChunk)));
    for (std::int64_t start = 0; start < n; start += kChunk) {
      const std::int64_t count = std::min(kChunk, n - start);
      for (std::int64_t i = 0; i < count; ++i) {
        if constexpr (std::is_same_v<T, bool>) {
          values[static_cast<std::size_t>(i)] = static_cast<Host>(start + i != 0);
        } else {
          values[static_cast<std::size_t>(i)] = static_cast<Host>(start + i);
        }
      }
      backend_for(device).copy_from_host(static_cast<std::byte*>(out.data()) + start * out.itemsize(), values.data(),
                                         static_cast<std::size_t>(count) * sizeof(Host));
    }
  });
  return out;
}

// ---- metadata ------------------------------------------------------------------------------------

bool NDArray::is_compact() const {
  if (size() <= 1) return true;
  // compact_strides(shape_) compared on the fly: every element-wise op asks, and a vector of strides for
  // each operand would be a heap allocation each time.
  std::int64_t expected = 1;
  for (std::size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

// ---- views ---------------------------------------------------------------------------------------

NDArray NDArray::as_strided(const Shape& shape, const Strides& strides, std::int64_t offset,
                            std::string_view op) const {
  NEEDLE_CHECK(shape.size() == strides.size(), ValueError, op, ": shape ", shape_str(shape), " and strides ",
               shape_str(strides), " have different lengths");
  check_valid_shape(shape, op);
  if (numel(shape) > 0) {
    // The lowest and highest element the view can reach must lie inside the storage. The arithmetic is
    // checked: a span that wrapped around int64 could land back inside the storage and pass.
    std::optional<std::int64_t> lowest = offset;
    std::optional<std::int64_t> highest = offset;
    for (std::size_t i = 0; i < shape.size() && lowest && highest; ++i) {
      const std::optional<std::int64_t> span = checked_mul(shape[i] - 1, strides[i]);
      if (!span) {
        lowest.reset();
        break;
      }
      std::optional<std::int64_t>& end = *span < 0 ? lowest : highest;
      end = checked_add(*end, *span);
    }
    const auto capacity = static_cast<std::int64_t>(storage_->nbytes() / needle::itemsize(dtype_));
    NEEDLE_CHECK(lowest && highest && *lowest >= 0 && *highest < capacity, ValueError, op, ": shape ", shape_str(shape),
                 " with strides ", shape_str(strides), " and offset ", offset, " reaches outside the storage of ",
                 capacity, " elements");
  }
  return {storage_, shape, strides, offset, dtype_};
}

NDArray NDArray::reshape(const Shape& shape) const {
  Shape target = shape;
  std::int64_t inferred = -1;
  Shape known_dims;  // every dimension but the inferred one
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1) {
      NEEDLE_CHECK(inferred < 0, ValueError, "reshape: can only specify one unknown dimension in ", shape_str(shape));
      inferred = static_cast<std::int64_t>(i);
    } else {
      NEEDLE_CHECK(target[i] >= 0, ValueError, "reshape: invalid dimension in shape ", shape_str(shape));
      known_dims.push_back(target[i]);
    }
  }
  // Checked: (2**62 + 1, 4) wraps to 4 elements and would match an array of 4.
  const std::optional<std::int64_t> known = checked_numel(known_dims);
  NEEDLE_CHECK(known.has_value(), ValueError, "reshape: cannot reshape array of shape ", shape_str(shape_),
               " into shape ", shape_str(shape), ", which has more than ", kMaxSizeText, " elements");
  if (inferred >= 0) {
    NEEDLE_CHECK(*known != 0 && size() % *known == 0, ValueError, "reshape: cannot reshape array of shape ",
                 shape_str(shape_), " into shape ", shape_str(shape));
    target[static_cast<std::size_t>(inferred)] = size() / *known;
  } else {
    NEEDLE_CHECK(*known == size(), ValueError, "reshape: cannot reshape array of shape ", shape_str(shape_), " (",
                 size(), " elements) into shape ", shape_str(shape), " (", *known, " elements)");
  }
  if (size() == 0) return {storage_, target, compact_strides(target), offset_, dtype_};
  if (auto strides = strides_for_view_reshape(shape_, strides_, target)) {
    return {storage_, target, *strides, offset_, dtype_};
  }
  NDArray dense = copy();
  return {dense.storage_, target, compact_strides(target), 0, dtype_};
}

NDArray NDArray::permute(const std::vector<std::int64_t>& axes) const {
  NEEDLE_CHECK(static_cast<std::int64_t>(axes.size()) == ndim(), ValueError, "permute: axes ", shape_str(axes),
               " do not match an array of shape ", shape_str(shape_));
  std::vector<std::int64_t> normalized;
  try {
    normalized = normalize_axes(axes, ndim(), "permute");
  } catch (const ValueError&) {
    throw ValueError(str("permute: axes ", shape_str(axes), " are not a permutation of the ", ndim(),
                         " axes of an array of shape ", shape_str(shape_)));
  }
  Shape shape(axes.size());
  Strides strides(axes.size());
  for (std::size_t i = 0; i < axes.size(); ++i) {
    shape[i] = shape_[static_cast<std::size_t>(normalized[i])];
    strides[i] = strides_[static_cast<std::size_t>(normalized[i])];
  }
  return {storage_, shape, strides, offset_, dtype_};
}

NDArray NDArray::swapaxes(std::int64_t axis0, std::int64_t axis1) const {
  std::vector<std::int64_t> axes(static_cast<std::size_t>(ndim()));
  for (std::size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<std::int64_t>(i);
  std::swap(axes[static_cast<std::size_t>(normalize_axis(axis0, ndim(), "swapaxes"))],
            axes[static_cast<std::size_t>(normalize_axis(axis1, ndim(), "swapaxes"))]);
  return permute(axes);
}

NDArray NDArray::broadcast_to(const Shape& shape) const {
  const std::size_t nd = shape.size();
  const bool fits = nd >= shape_.size();
  Strides strides(nd, 0);
  for (std::size_t i = 0; fits && i < shape_.size(); ++i) {
    const std::size_t j = nd - shape_.size() + i;  // align from the right
    NEEDLE_CHECK(shape_[i] == shape[j] || shape_[i] == 1, ValueError, "broadcast_to: cannot broadcast shape ",
                 shape_str(shape_), " to shape ", shape_str(shape));
    strides[j] = shape_[i] == shape[j] ? strides_[i] : 0;
  }
  NEEDLE_CHECK(fits, ValueError, "broadcast_to: cannot broadcast shape ", shape_str(shape_), " to shape ",
               shape_str(shape), " with fewer dimensions");
  check_valid_shape(shape, "broadcast_to");
  return {storage_, shape, strides, offset_, dtype_};
}

NDArray NDArray::index(const Index& index) const {
  std::int64_t consumed = 0;  // axes of this array that the index addresses explicitly
  std::int64_t ellipses = 0;
  for (const IndexItem& item : index) {
    if (item.kind == IndexItem::Kind::Int || item.kind == IndexItem::Kind::Slice) ++consumed;
    if (item.kind == IndexItem::Kind::Ellipsis) ++ellipses;
  }
  NEEDLE_CHECK(ellipses <= 1, IndexError, "index: an index can only have a single ellipsis ('...')");
  NEEDLE_CHECK(consumed <= ndim(), IndexError, "index: too many indices for array of shape ", shape_str(shape_), ": ",
               consumed, " were indexed");

  Shape shape;
  Strides strides;
  std::int64_t offset = offset_;
  std::size_t axis = 0;
  // An empty array's strides are not bounded by its storage (as_strided accepts any), so no offset or
  // stride is computed from them: the view is empty too and keeps them as they are.
  const bool empty_source = std::find(shape_.begin(), shape_.end(), 0) != shape_.end();
  bool empty_result = empty_source;
  auto keep_axis = [&](std::size_t a) {
    shape.push_back(shape_[a]);
    strides.push_back(strides_[a]);
  };
  for (const IndexItem& item : index) {
    switch (item.kind) {
      case IndexItem::Kind::Int: {
        const std::int64_t n = shape_[axis];
        NEEDLE_CHECK(item.index >= -n && item.index < n, IndexError, "index: index ", item.index,
                     " is out of bounds for axis ", axis, " with size ", n, " (array shape ", shape_str(shape_), ")");
        if (!empty_source) offset += (item.index < 0 ? item.index + n : item.index) * strides_[axis];
        ++axis;
        break;
      }
      case IndexItem::Kind::Slice: {
        const auto [start, count] = resolve_slice(item.slice, shape_[axis], static_cast<std::int64_t>(axis));
        empty_result = empty_result || count == 0;
        if (!empty_result) offset += start * strides_[axis];
        shape.push_back(count);
        // With two elements or more of a non-empty array |step| < length and the stride spans part of the
        // storage, so stride * step fits. Otherwise the step is never taken and the axis keeps its stride:
        // stride * step could overflow (a step of -2**63, or an empty array's unbounded stride).
        strides.push_back(count > 1 && !empty_source ? strides_[axis] * item.slice.step : strides_[axis]);
        ++axis;
        break;
      }
      case IndexItem::Kind::NewAxis:
        shape.push_back(1);
        strides.push_back(0);
        break;
      case IndexItem::Kind::Ellipsis:
        for (std::int64_t k = 0; k < ndim() - consumed; ++k) keep_axis(axis++);
        break;
    }
  }
  while (axis < shape_.size()) keep_axis(axis++);  // missing trailing indices mean full slices
  if (empty_result) offset = offset_;              // an empty view must not point past the storage
  return {storage_, shape, strides, offset, dtype_};
}

NDArray NDArray::unsqueeze(std::int64_t axis) const {
  const std::int64_t a = normalize_axis(axis, ndim() + 1, "unsqueeze");
  Shape shape = shape_;
  Strides strides = strides_;
  shape.insert(shape.begin() + a, 1);
  strides.insert(strides.begin() + a, 0);
  return {storage_, shape, strides, offset_, dtype_};
}

NDArray NDArray::squeeze(const std::vector<std::int64_t>& axes) const {
  std::vector<bool> drop(shape_.size(), false);
  if (axes.empty()) {
    for (std::size_t i = 0; i < shape_.size(); ++i) drop[i] = shape_[i] == 1;
  } else {
    for (std::int64_t a : normalize_axes(axes, ndim(), "squeeze")) {
      NEEDLE_CHECK(shape_[static_cast<std::size_t>(a)] == 1, ValueError, "squeeze: cannot remove axis ", a, " of size ",
                   shape_[static_cast<std::size_t>(a)], " from an array of shape ", shape_str(shape_));
      drop[static_cast<std::size_t>(a)] = true;
    }
  }
  Shape shape;
  Strides strides;
  for (std::size_t i = 0; i < shape_.size(); ++i) {
    if (!drop[i]) {
      shape.push_back(shape_[i]);
      strides.push_back(strides_[i]);
    }
  }
  return {storage_, shape, strides, offset_, dtype_};
}

NDArray NDArray::flip_view(const std::vector<std::int64_t>& axes) const {
  Strides strides = strides_;
  std::int64_t offset = offset_;
  // The strides of an empty array, and of size-1 axes, are not bounded by the storage (as_strided
  // accepts any), so they are left alone: reversing such an axis changes nothing anyway.
  const bool empty = std::find(shape_.begin(), shape_.end(), 0) != shape_.end();
  for (std::int64_t a : normalize_axes(axes, ndim(), "flip")) {
    const auto i = static_cast<std::size_t>(a);
    if (empty || shape_[i] == 1) continue;
    offset += (shape_[i] - 1) * strides_[i];  // start at the last element and walk backwards
    strides[i] = -strides_[i];
  }
  return {storage_, shape_, strides, offset, dtype_};
}

// ---- copies --------------------------------------------------------------------------------------

NDArray NDArray::compact() const { return is_compact() ? *this : copy(); }

NDArray NDArray::copy() const { return astype_copy(dtype_); }

NDArray NDArray::astype(DType dtype) const { return dtype == dtype_ ? *this : astype_copy(dtype); }

NDArray NDArray::astype_copy(DType dtype) const {
  NDArray out = empty(shape_, dtype, device());
  if (size() > 0) backend_for(device()).copy(out.view(), view());
  return out;
}

NDArray NDArray::to(Device device) const {
  if (device == this->device()) return *this;
  const NDArray source = compact();
  NDArray out = empty(shape_, dtype_, device);
  const std::size_t nbytes = out.storage_->nbytes();
  if (source.device().is_host()) {
    backend_for(device).copy_from_host(out.data(), source.data(), nbytes);
  } else if (device.is_host()) {
    backend_for(source.device()).copy_to_host(out.data(), source.data(), nbytes);
  } else {  // between two accelerators: stage through host memory
    std::vector<std::byte> staging(nbytes);
    backend_for(source.device()).copy_to_host(staging.data(), source.data(), nbytes);
    backend_for(device).copy_from_host(out.data(), staging.data(), nbytes);
  }
  return out;
}

void NDArray::copy_to_host(void* host_dst) const {
  const NDArray source = compact();
  const auto nbytes = static_cast<std::size_t>(size()) * needle::itemsize(dtype_);
  if (nbytes > 0) backend_for(device()).copy_to_host(host_dst, source.data(), nbytes);
}

Scalar NDArray::item() const {
  NEEDLE_CHECK(size() == 1, ValueError, "item: only an array with one element can be converted to a scalar, got shape ",
               shape_str(shape_));
  return dispatch_dtype(dtype_, [&]<typename T>() {
    T value{};
    copy_to_host(&value);
    if constexpr (std::is_same_v<T, std::int32_t>) return Scalar(static_cast<std::int64_t>(value));
    if constexpr (std::is_same_v<T, float>) return Scalar(static_cast<double>(value));
    return Scalar(value);
  });
}

// ---- in-place writes -----------------------------------------------------------------------------

// Each write below counts in the storage's version (Storage::version), which backward checks against the
// versions its nodes recorded: a value saved for a gradient and overwritten since is an error, not a wrong
// gradient.

void NDArray::fill(const Scalar& value) {
  if (size() == 0) return;
  storage_->increment_version();
  backend_for(device()).fill(view(), value);
}

void NDArray::assign(const NDArray& value) {
  check_same_device(*this, value, "setitem");
  NEEDLE_CHECK(broadcast_shapes(value.shape_, shape_, "setitem") == shape_, ValueError,
               "setitem: could not broadcast value of shape ", shape_str(value.shape_), " into shape ",
               shape_str(shape_));
  if (size() == 0) return;
  // Reading and writing overlapping memory in one pass could read already-overwritten elements.
  const NDArray source = value.shares_storage_with(*this) ? value.copy() : value;
  storage_->increment_version();
  backend_for(device()).copy(view(), source.broadcast_to(shape_).view());
}

void NDArray::assign(const Index& idx, const NDArray& value) { index(idx).assign(value); }

void NDArray::assign(const Index& idx, const Scalar& value) { index(idx).fill(value); }

StridedView NDArray::view() const { return {data(), dtype_, shape_, strides_}; }

void* NDArray::data() const {
  return static_cast<std::byte*>(storage_->data()) + offset_ * static_cast<std::int64_t>(needle::itemsize(dtype_));
}

std::string NDArray::describe() const {
  return str("NDArray(shape=", shape_str(shape_), ", dtype=", dtype_name(dtype_), ", device=", device().name(), ")");
}

}  // namespace needle
