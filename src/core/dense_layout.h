// Arrays that are dense in memory but not in their own axis order: a permuted view of contiguous memory,
// such as a channels-last image (N, H, W, C in memory) seen as (N, C, H, W). Element-wise ops on such
// operands write their result in the same memory order and run their kernel over every operand as one
// flat run (PyTorch does the same for its channels-last tensors). Otherwise the result would be
// contiguous in the logical order, the kernel would walk the operands by strides, and the next layer,
// which reads channels-last, would copy the result back.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <optional>
#include <utility>

#include "needle/core/array_ops.h"
#include "needle/core/ndarray.h"

namespace needle::detail {

// Whether two arrays of one shape step through memory alike (strides of size-1 axes never matter).
inline bool same_layout(const NDArray& a, const NDArray& b) {
  for (std::size_t i = 0; i < a.shape().size(); ++i) {
    if (a.shape()[i] != 1 && a.strides()[i] != b.strides()[i]) return false;
  }
  return true;
}

// The axes of `a` from the largest stride to the smallest (ties keep their order, so a contiguous array
// gets the identity); permuting a dense array by them makes it contiguous.
inline Axes memory_order(const NDArray& a) {
  Axes order(a.shape().size());
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t x, std::int64_t y) {
    return a.strides()[static_cast<std::size_t>(x)] > a.strides()[static_cast<std::size_t>(y)];
  });
  return order;
}

// A new array of `shape` whose memory holds its axes in `order` (outermost first): the array
// NDArray::empty(shape permuted by order) seen through the inverse permutation.
inline NDArray empty_in_memory_order(const Shape& shape, const Axes& order, DType dtype, Device device) {
  Shape in_memory;
  Axes inverse(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    in_memory.push_back(shape[static_cast<std::size_t>(order[i])]);
    inverse[static_cast<std::size_t>(order[i])] = static_cast<std::int64_t>(i);
  }
  return NDArray::empty(in_memory, dtype, device).permute(inverse);
}

// The axes that take an (N, C, H, W) array to (N, H, W, C) and back.
inline const Axes kToChannelsLast{0, 2, 3, 1};
inline const Axes kFromChannelsLast{0, 3, 1, 2};

// Whether a 4-d (N, C, H, W) array lies in memory densely as (N, H, W, C), and is not also contiguous as it
// is (a single channel, or a 1 x 1 image).
inline bool is_channels_last(const NDArray& a) {
  return a.ndim() == 4 && !a.is_compact() && a.permute(kToChannelsLast).is_compact();
}

// The memory order shared by the operands of an element-wise op (all of the result's shape), when it is
// worth keeping: at least one operand is dense but not contiguous, and every other one is laid out like
// it or is a broadcast scalar (all strides 0). Empty otherwise, and then the op takes its usual path.
class SharedDenseLayout {
 public:
  static std::optional<SharedDenseLayout> of(std::initializer_list<const NDArray*> operands) {
    const NDArray* leader = nullptr;
    for (const NDArray* a : operands) {
      if (!is_scalar_broadcast(*a) && !a->is_compact()) {
        leader = a;
        break;
      }
    }
    if (leader == nullptr) return std::nullopt;
    SharedDenseLayout layout(memory_order(*leader));
    if (!leader->permute(layout.order_).is_compact()) return std::nullopt;
    for (const NDArray* a : operands) {
      if (!is_scalar_broadcast(*a) && !same_layout(*a, *leader)) return std::nullopt;
    }
    return layout;
  }

  // A new array of `shape` (the operands' shape) laid out in the shared memory order.
  [[nodiscard]] NDArray empty(const Shape& shape, DType dtype, Device device) const {
    return empty_in_memory_order(shape, order_, dtype, device);
  }
  // An operand (or the result) as one flat run of its elements in memory order: a view.
  [[nodiscard]] NDArray flat(const NDArray& a) const { return a.permute(order_).reshape({a.size()}); }

 private:
  explicit SharedDenseLayout(Axes order) : order_(std::move(order)) {}
  static bool is_scalar_broadcast(const NDArray& a) {
    return std::all_of(a.strides().begin(), a.strides().end(), [](std::int64_t s) { return s == 0; });
  }
  Axes order_;
};

}  // namespace needle::detail
