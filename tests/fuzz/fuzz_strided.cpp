// libFuzzer target: NDArray's views (as_strided, index, reshape, permute, swapaxes, broadcast_to,
// flip_view, squeeze, unsqueeze) and writes through them (assign), with shapes, strides, offsets, axes,
// indices and slice bounds decoded from the input. Each input is a small base array and a list of
// operations applied one after another to the current view. Every operation must give a view or raise
// needle::Error; every view it gives is read back whole (when small), so a view that reaches outside
// its storage is an ASan report and arithmetic that overflows is a UBSan report.
//
// Strides, offsets, indices, slice bounds and steps take any int64 value. Dimensions stay below 2^14
// and shape arguments below 5 axes, so that inputs build views rather than being refused by the size
// checks (core/checked_math.h) or asking for more memory than the fuzzer allows. Set
// NEEDLE_FUZZ_WIDE_SHAPES=1 to draw dimensions from the whole int64 range as well (by hand: the large
// allocations it requests count as findings under libFuzzer's memory limit).
#include <fuzzer/FuzzedDataProvider.h>
#include <needle/core/ndarray.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <vector>

#include "needle/core/error.h"

namespace {

using needle::Index;
using needle::IndexItem;
using needle::NDArray;

constexpr std::int64_t kMaxDim = 1 << 14;
constexpr std::size_t kMaxShapeAxes = 4;
constexpr std::int64_t kMaxReadBack = 4096;  // larger views are not materialized (memory and time)
constexpr int kMaxOperations = 24;

bool wide_shapes() {
  static const bool wide = std::getenv("NEEDLE_FUZZ_WIDE_SHAPES") != nullptr;
  return wide;
}

// An int64 that is usually small, and otherwise an extreme or a power of two give or take one: the
// values where bounds checks and overflow checks go wrong.
std::int64_t any_value(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0:
      return in.ConsumeIntegral<std::int64_t>();
    case 1: {
      const int bit = in.ConsumeIntegralInRange<int>(0, 62);
      const std::int64_t power = std::int64_t{1} << bit;
      return in.ConsumeBool() ? power + in.ConsumeIntegralInRange<int>(-1, 1)
                              : -power + in.ConsumeIntegralInRange<int>(-1, 1);
    }
    case 2:
      return in.ConsumeBool() ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
    default:
      return in.ConsumeIntegralInRange<std::int64_t>(-6, 9);
  }
}

// A dimension of a shape argument: small, sometimes negative (an error to report) or -1 (reshape's
// inferred axis).
std::int64_t dim_value(FuzzedDataProvider& in) {
  if (wide_shapes()) return any_value(in);
  return in.ConsumeBool() ? in.ConsumeIntegralInRange<std::int64_t>(-2, 6)
                          : in.ConsumeIntegralInRange<std::int64_t>(-kMaxDim, kMaxDim);
}

std::vector<std::int64_t> dims(FuzzedDataProvider& in) {
  std::vector<std::int64_t> out(in.ConsumeIntegralInRange<std::size_t>(0, kMaxShapeAxes));
  for (std::int64_t& d : out) d = dim_value(in);
  return out;
}

std::vector<std::int64_t> values(FuzzedDataProvider& in, std::size_t max_count) {
  std::vector<std::int64_t> out(in.ConsumeIntegralInRange<std::size_t>(0, max_count));
  for (std::int64_t& v : out) v = any_value(in);
  return out;
}

std::optional<std::int64_t> maybe_value(FuzzedDataProvider& in) {
  if (in.ConsumeBool()) return std::nullopt;
  return any_value(in);
}

Index index_items(FuzzedDataProvider& in) {
  Index index(in.ConsumeIntegralInRange<std::size_t>(0, 6));
  for (IndexItem& item : index) {
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
      case 0:
        item = IndexItem::new_axis();
        break;
      case 1:
        item = IndexItem::ellipsis();
        break;
      case 2:
      case 3:
        item = IndexItem::at(any_value(in));
        break;
      default: {
        const std::optional<std::int64_t> start = maybe_value(in);
        const std::optional<std::int64_t> stop = maybe_value(in);
        item = IndexItem::range(start, stop, any_value(in));
        break;
      }
    }
  }
  return index;
}

// Reads every element of `view` (when it is small enough to copy), which touches exactly the memory
// the view claims.
void read_back(const NDArray& view) {
  if (view.size() > kMaxReadBack) return;
  std::vector<char> host(static_cast<std::size_t>(view.size() * view.itemsize()));
  if (!host.empty()) view.copy_to_host(host.data());
}

NDArray apply(FuzzedDataProvider& in, NDArray& current, const NDArray& base) {
  switch (in.ConsumeIntegralInRange<int>(0, 11)) {
    case 0: {  // as_strided over the base's storage, or the current view's
      const NDArray& source = in.ConsumeBool() ? base : current;
      const std::vector<std::int64_t> shape = dims(in);
      std::vector<std::int64_t> strides(shape.size());
      for (std::int64_t& s : strides) s = any_value(in);
      if (in.ConsumeBool() && !strides.empty()) strides.pop_back();  // mismatched lengths
      return source.as_strided(shape, strides, any_value(in));
    }
    case 1:
    case 2:
      return current.index(index_items(in));
    case 3:  // copies when the strides do not allow a view: only of arrays that are cheap to copy
      return current.size() <= kMaxReadBack ? current.reshape(dims(in)) : current;
    case 4:
      return current.permute(values(in, 6));
    case 5:
      return current.swapaxes(any_value(in), any_value(in));
    case 6:
      return current.broadcast_to(dims(in));
    case 7:
      return current.flip_view(values(in, 6));
    case 8:
      return current.squeeze(values(in, 4));
    case 9:
      return current.unsqueeze(any_value(in));
    case 10: {  // a write through the view, then the view itself
      if (current.size() <= kMaxReadBack) {
        current.assign(index_items(in), needle::Scalar(in.ConsumeIntegral<std::int32_t>()));
      }
      return current;
    }
    default:
      return base;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  static constexpr needle::DType kDTypes[] = {needle::DType::Bool, needle::DType::Int32, needle::DType::Int64,
                                              needle::DType::Float32, needle::DType::Float64};
  const needle::DType dtype = in.PickValueInArray(kDTypes);
  const NDArray base = NDArray::zeros({in.ConsumeIntegralInRange<std::int64_t>(0, 64)}, dtype);
  NDArray current = base;
  for (int step = 0; step < kMaxOperations && in.remaining_bytes() > 0; ++step) {
    try {
      current = apply(in, current, base);
      read_back(current);
    } catch (const needle::Error&) {  // a rejected argument: carry on with the view we had
    }
  }
  return 0;
}
