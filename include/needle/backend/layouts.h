// The layouts the fused kernels are handed: what each kernel's operands are, in sizes, once Backend's
// entry point has checked them against the kernel's contract (src/backend/kernel_contracts.cpp). A kernel
// reads its sizes from here and checks nothing itself; see kernels.def for which kernel gets which.
#pragma once

#include <algorithm>
#include <cstdint>

#include "needle/backend/strided_view.h"
#include "needle/core/dtype.h"

namespace needle::kernels {

// The row kernels (softmax, logsumexp, layer and RMS norm, the optimizer updates): contiguous operands
// read as rows x cols, with cols the last dimension (a 0-d array is one row of one column).
struct RowLayout {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  DType dtype = DType::Float32;

  [[nodiscard]] std::int64_t size() const { return rows * cols; }
  // A rows x cols view of contiguous memory at `data`.
  [[nodiscard]] StridedView full(void* data) const { return {data, dtype, {rows, cols}, {cols, 1}}; }
  // A per-row statistic (`data` holds one value per row) repeated along each row by a zero stride.
  [[nodiscard]] StridedView row_broadcast(void* data) const { return {data, dtype, {rows, cols}, {1, 0}}; }
  // The keepdims shape a row reduction writes: one value per row.
  [[nodiscard]] StridedView per_row(void* data) const { return {data, dtype, {rows, 1}, {1, 1}}; }
  // One value (`data` holds a single element) seen as a rows x 1 array by zero strides.
  [[nodiscard]] StridedView scalar_per_row(void* data) const { return {data, dtype, {rows, 1}, {0, 0}}; }
  // A per-column array (`data` holds cols values) repeated down the rows by a zero stride.
  [[nodiscard]] StridedView column_broadcast(void* data) const { return {data, dtype, {rows, cols}, {0, 1}}; }
  // The keepdims shape a column reduction writes: one value per column.
  [[nodiscard]] StridedView per_column(void* data) const { return {data, dtype, {1, cols}, {0, 1}}; }
};

// Batch normalization: contiguous (N, C, S) data and (C,) per-channel operands.
struct ChannelLayout {
  std::int64_t batch = 0;     // N
  std::int64_t channels = 0;  // C
  std::int64_t spatial = 0;   // S
  DType dtype = DType::Float32;

  [[nodiscard]] std::int64_t size() const { return batch * channels * spatial; }
  // The number of values each channel's statistics are taken over.
  [[nodiscard]] std::int64_t per_channel() const { return batch * spatial; }
  // An (N, C, S) view of contiguous memory at `data`.
  [[nodiscard]] StridedView full(void* data) const {
    return {data, dtype, {batch, channels, spatial}, {channels * spatial, spatial, 1}};
  }
  // A per-channel array (`data` holds C values) repeated over N and S by zero strides.
  [[nodiscard]] StridedView channel_broadcast(void* data) const {
    return {data, dtype, {batch, channels, spatial}, {0, 1, 0}};
  }
  // The keepdims shape a reduction over N and S writes: (1, C, 1).
  [[nodiscard]] StridedView per_channel_view(void* data) const {
    return {data, dtype, {1, channels, 1}, {channels, 1, 1}};
  }
  // A (C,) array at `data`, and one value (`data` holds a single element) repeated C times by a zero stride.
  [[nodiscard]] StridedView vector(void* data) const { return {data, dtype, {channels}, {1}}; }
  [[nodiscard]] StridedView scalar_vector(void* data) const { return {data, dtype, {channels}, {0}}; }
};

// Attention: B problems of L queries and S keys, head dimension d for q and k, dv for v and out.
struct AttentionLayout {
  std::int64_t batch = 0;
  std::int64_t queries = 0;
  std::int64_t keys = 0;
  std::int64_t dim = 0;
  std::int64_t value_dim = 0;
  DType dtype = DType::Float32;
};

// The first key that query i may not see: S, or min(S, i + 1) when causal (key j is visible iff j <= i).
inline std::int64_t visible_keys(std::int64_t query, std::int64_t keys, bool causal) {
  return causal ? std::min(query + 1, keys) : keys;
}

// The int8 products: a (M, K) and w (N, K) int8, out (M, N); all contiguous.
struct Int8MatmulLayout {
  std::int64_t m = 0;
  std::int64_t n = 0;
  std::int64_t k = 0;
};

// The deepest int8 product the int8 kernels accept: the largest sum, 128 * 128 * K (a and w all -128), stays
// below 2^31 only for K < 2^17.
constexpr std::int64_t kMaxInt8Depth = (std::int64_t{1} << 17) - 1;

// The LSTM cell: (B, H) states and (B, 4H) gates, 2-D with unit column stride and any row stride.
struct LstmLayout {
  std::int64_t batch = 0;
  std::int64_t hidden = 0;
  DType dtype = DType::Float32;
};

// An absent optional operand (gates2, c_prev, dc_prev): no data.
inline bool present(const StridedView& v) { return v.data != nullptr; }

// Row b of a 2-D operand (a row stride of 0 reads the same row for every b).
template <typename T>
T* row_ptr(const StridedView& v, std::int64_t b) {
  return v.ptr<T>() + b * v.strides[0];
}

// im2col/col2im: an (N, H, W, C) image and its (N, H_out, W_out, K, K, C) columns.
struct ConvLayout {
  std::int64_t n = 0, h = 0, w = 0, c = 0, k = 0, h_out = 0, w_out = 0, stride = 1, padding = 0;
  std::int64_t c_out = 0;  // the weight's output channels (the convolution kernels; 0 for im2col and col2im)
  DType dtype = DType::Float32;

  // The taps t in [first, last) of output position `pos` whose input position pos * stride + t - padding
  // lies in [0, extent); first >= last when none does. So no kernel tests every tap for padding.
  struct Taps {
    std::int64_t first;
    std::int64_t last;
  };
  [[nodiscard]] Taps taps(std::int64_t pos, std::int64_t extent) const {
    const std::int64_t start = pos * stride - padding;
    return {std::max<std::int64_t>(0, -start), std::min(k, extent - start)};
  }
  [[nodiscard]] std::int64_t patch() const { return k * k * c; }
};

// Max pooling: N * C planes of H x W image cells and H_out x W_out windows of K x K cells. channels_last:
// the results (and, backward, every operand) lie in memory as (N, H_out, W_out, C), the image as (N, H, W, C).
struct PoolLayout {
  std::int64_t n = 0, c = 0, h = 0, w = 0, k = 1, h_out = 0, w_out = 0, stride = 1, padding = 0;
  DType dtype = DType::Float32;
  bool channels_last = false;

  [[nodiscard]] std::int64_t planes() const { return n * c; }
  [[nodiscard]] std::int64_t plane_size() const { return h * w; }
  [[nodiscard]] std::int64_t windows() const { return h_out * w_out; }  // per plane
  // The taps [first, last) of window position `pos` that lie inside [0, extent), as ConvLayout::taps.
  [[nodiscard]] ConvLayout::Taps taps(std::int64_t pos, std::int64_t extent) const {
    const std::int64_t start = pos * stride - padding;
    return {std::max<std::int64_t>(0, -start), std::min(k, extent - start)};
  }
};

}  // namespace needle::kernels
