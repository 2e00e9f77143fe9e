// NDArray: a strided view of device memory. storage + shape + strides + offset + dtype (+ the device,
// which the storage knows). No autograd here.
//
// View operations (reshape when strides allow, permute, broadcast_to, indexing with ints/slices/None,
// as_strided) never copy: they return a new NDArray sharing the storage. compact() copies only when the
// array is not already contiguous. Computations (add, sum, matmul, ...) are free functions declared in
// core/array_ops.h; they dispatch to the backend of the arrays' device.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "needle/core/device.h"
#include "needle/core/dtype.h"
#include "needle/core/scalar.h"
#include "needle/core/shape.h"
#include "needle/core/storage.h"

namespace needle {

struct StridedView;

// A Python-style slice: missing bounds mean "from the start"/"to the end"; negative bounds count from
// the end; out-of-range bounds are clamped. step may be negative but not zero.
struct Slice {
  std::optional<std::int64_t> start;
  std::optional<std::int64_t> stop;
  std::int64_t step = 1;
};

// One entry of an index expression a[i, 1:5:2, None, ...].
struct IndexItem {
  enum class Kind : std::uint8_t { Int, Slice, NewAxis, Ellipsis };
  Kind kind = Kind::Slice;
  std::int64_t index = 0;  // for Int; negative counts from the end
  Slice slice;             // for Slice

  static IndexItem at(std::int64_t i) { return {Kind::Int, i, {}}; }
  static IndexItem range(std::optional<std::int64_t> start = std::nullopt,
                         std::optional<std::int64_t> stop = std::nullopt, std::int64_t step = 1) {
    return {Kind::Slice, 0, Slice{start, stop, step}};
  }
  static IndexItem new_axis() { return {Kind::NewAxis, 0, {}}; }
  static IndexItem ellipsis() { return {Kind::Ellipsis, 0, {}}; }
};
using Index = std::vector<IndexItem>;

// The bytes an array of `shape` and `dtype` occupies. Throws ValueError naming `op` when a dimension is
// negative or when the element count or the byte count does not fit in int64.
std::int64_t checked_nbytes(const Shape& shape, DType dtype, std::string_view op);

class NDArray {
 public:
  // An empty 0-element float32 array on the default device.
  NDArray();

  // ---- creation -----------------------------------------------------------------------------
  // Uninitialized contiguous array. Every array's memory is allocated here: a shape whose element or byte
  // count does not fit in int64 raises ValueError, memory the device cannot provide raises MemoryError,
  // both naming `op` (the function the user called, when that is not empty() itself) and the shape.
  static NDArray empty(const Shape& shape, DType dtype = kDefaultFloat, Device device = default_device(),
                       std::string_view op = "empty");
  static NDArray full(const Shape& shape, const Scalar& value, DType dtype = kDefaultFloat,
                      Device device = default_device(), std::string_view op = "full");
  static NDArray zeros(const Shape& shape, DType dtype = kDefaultFloat, Device device = default_device(),
                       std::string_view op = "zeros");
  static NDArray ones(const Shape& shape, DType dtype = kDefaultFloat, Device device = default_device(),
                      std::string_view op = "ones");
  // Copies numel(shape) contiguous row-major elements of type `dtype` from host memory.
  static NDArray from_host(const void* host_data, const Shape& shape, DType dtype, Device device = default_device());
  template <typename T>
  static NDArray from_vector(const std::vector<T>& values, const Shape& shape, Device device = default_device()) {
    NEEDLE_CHECK(static_cast<std::int64_t>(values.size()) == numel(shape), ValueError, "from_vector: ", values.size(),
                 " values cannot fill shape ", shape_str(shape));
    if constexpr (std::is_same_v<T, bool>) {  // std::vector<bool> is packed: widen to one byte per element
      const std::vector<std::uint8_t> bytes(values.begin(), values.end());
      return from_host(bytes.data(), shape, DType::Bool, device);
    } else {
      return from_host(values.data(), shape, dtype_of<T>(), device);
    }
  }
  // 0, 1, ..., n-1 (NumPy's arange(n)).
  static NDArray arange(std::int64_t n, DType dtype = DType::Int64, Device device = default_device());

  // ---- metadata -----------------------------------------------------------------------------
  [[nodiscard]] const Shape& shape() const { return shape_; }
  [[nodiscard]] const Strides& strides() const { return strides_; }
  [[nodiscard]] std::int64_t offset() const { return offset_; }  // in elements
  [[nodiscard]] DType dtype() const { return dtype_; }
  [[nodiscard]] Device device() const { return storage_->device(); }
  [[nodiscard]] std::int64_t ndim() const { return static_cast<std::int64_t>(shape_.size()); }
  [[nodiscard]] std::int64_t size() const { return numel(shape_); }
  [[nodiscard]] std::int64_t itemsize() const { return static_cast<std::int64_t>(needle::itemsize(dtype_)); }
  [[nodiscard]] const std::shared_ptr<Storage>& storage() const { return storage_; }
  // True when the elements are laid out row-major and densely (strides == compact_strides(shape)),
  // ignoring strides of size-1 dimensions.
  [[nodiscard]] bool is_compact() const;
  // True when both arrays use the same storage.
  [[nodiscard]] bool shares_storage_with(const NDArray& other) const { return storage_ == other.storage_; }

  // ---- views (no copy) ----------------------------------------------------------------------
  // Any shape, strides and offset over the same storage; checked to stay inside the storage (errors
  // name `op`, the call the user made).
  [[nodiscard]] NDArray as_strided(const Shape& shape, const Strides& strides, std::int64_t offset,
                                   std::string_view op = "as_strided") const;
  // One entry may be -1 (inferred). A view when the strides allow it, else a compact copy.
  [[nodiscard]] NDArray reshape(const Shape& shape) const;
  // Reorders the axes: result.shape[i] = shape[axes[i]]. axes must be a permutation (negative allowed).
  [[nodiscard]] NDArray permute(const std::vector<std::int64_t>& axes) const;
  // Swaps two axes (Needle's transpose with a pair).
  [[nodiscard]] NDArray swapaxes(std::int64_t axis0, std::int64_t axis1) const;
  // NumPy broadcasting to `shape` with zero strides.
  [[nodiscard]] NDArray broadcast_to(const Shape& shape) const;
  // NumPy basic indexing: ints drop their axis, slices keep it, new_axis inserts a size-1 axis,
  // one ellipsis stands for the missing full slices.
  [[nodiscard]] NDArray index(const Index& index) const;
  // Inserts/removes size-1 axes.
  [[nodiscard]] NDArray unsqueeze(std::int64_t axis) const;
  [[nodiscard]] NDArray squeeze(const std::vector<std::int64_t>& axes) const;  // empty: every size-1 axis
  // Reverses the given axes (a view with negative strides).
  [[nodiscard]] NDArray flip_view(const std::vector<std::int64_t>& axes) const;

  // ---- copies -------------------------------------------------------------------------------
  // This array if already compact, else a contiguous copy.
  [[nodiscard]] NDArray compact() const;
  // Always a fresh contiguous copy.
  [[nodiscard]] NDArray copy() const;
  [[nodiscard]] NDArray astype(DType dtype) const;  // this array if the dtype already matches
  [[nodiscard]] NDArray to(Device device) const;    // this array if already on `device`
  // Copies the elements, row-major and unconverted, into host memory of size()*itemsize().
  void copy_to_host(void* host_dst) const;
  template <typename T>
  [[nodiscard]] std::vector<T> to_vector() const {
    NEEDLE_CHECK(dtype_of<T>() == dtype_, TypeError, "to_vector: array has dtype ", dtype_name(dtype_), ", requested ",
                 dtype_name(dtype_of<T>()));
    std::vector<T> values(static_cast<std::size_t>(size()));
    if constexpr (std::is_same_v<T, bool>) {
      std::vector<std::uint8_t> bytes(values.size());
      copy_to_host(bytes.data());
      for (std::size_t i = 0; i < bytes.size(); ++i) values[i] = bytes[i] != 0;
    } else {
      copy_to_host(values.data());
    }
    return values;
  }
  // The single element of a size-1 array.
  [[nodiscard]] Scalar item() const;

  // ---- in-place writes ----------------------------------------------------------------------
  // Each one that writes an element increments the storage's version (Storage::version), shared by every
  // view of the storage: how backward notices that a value it saved was overwritten.
  void fill(const Scalar& value);
  // a[index] = value (value broadcast to the indexed view and converted to this dtype).
  void assign(const Index& index, const NDArray& value);
  void assign(const Index& index, const Scalar& value);
  // Copies `value` (broadcast, converted) into the whole array.
  void assign(const NDArray& value);

  // What a kernel sees of this array.
  [[nodiscard]] StridedView view() const;
  // Address of element 0 (storage + offset); a host pointer only on host devices.
  [[nodiscard]] void* data() const;

  // "NDArray(shape=(2, 3), dtype=float32, device=cpu)".
  [[nodiscard]] std::string describe() const;

 private:
  NDArray(std::shared_ptr<Storage> storage, Shape shape, Strides strides, std::int64_t offset, DType dtype);
  // A fresh contiguous copy converted to `dtype`.
  [[nodiscard]] NDArray astype_copy(DType dtype) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Strides strides_;
  std::int64_t offset_ = 0;
  DType dtype_ = kDefaultFloat;
};

}  // namespace needle
