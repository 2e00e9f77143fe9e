// Checks shared by the layers in src/nn/: each error names the layer and the shapes involved.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "needle/autograd/tensor.h"
#include "needle/core/error.h"

namespace needle::nn::detail {

// Throws ValueError unless x has `ndim` dimensions (`layout` describes them, e.g. "(N, C, H, W)").
inline void expect_ndim(std::string_view layer, const Tensor& x, std::int64_t ndim, std::string_view layout) {
  NEEDLE_CHECK(x.ndim() == ndim, ValueError, layer, ": expected input ", layout, " with ", ndim,
               " dimensions, got shape ", shape_str(x.shape()));
}

// Throws ValueError unless dimension `axis` (negative counts from the end) of x is `size`.
inline void expect_dim(std::string_view layer, const Tensor& x, std::int64_t axis, std::int64_t size,
                       std::string_view what) {
  const std::int64_t n = x.ndim();
  const std::int64_t a = axis < 0 ? axis + n : axis;
  NEEDLE_CHECK(a >= 0 && a < n && x.shape()[static_cast<std::size_t>(a)] == size, ValueError, layer,
               ": expected input with ", what, " ", size, ", got shape ", shape_str(x.shape()));
}

// Throws ValueError unless `value` is positive (constructor arguments).
inline void expect_positive(std::string_view layer, std::string_view what, std::int64_t value) {
  NEEDLE_CHECK(value > 0, ValueError, layer, ": ", what, " must be positive, got ", value);
}

// Integer indices for ops that pick rows: integer tensors as they are, floating ones (Needle's data
// pipeline stores ids and labels as float32) converted when every value is a whole number.
Tensor as_indices(std::string_view layer, const Tensor& indices);

// Recurrent layers (src/nn/rnn.cpp): a stacked initial state (num_layers, batch, hidden_size) checked and
// split by layer (undefined: undefined states for every layer), and the check of an input sequence
// (seq_len, batch, input_size).
std::vector<Tensor> layer_states(std::string_view layer, const Tensor& state, std::string_view state_name,
                                 const Tensor& x, std::int64_t num_layers, std::int64_t hidden_size);
void check_sequence(std::string_view layer, const Tensor& x, std::int64_t input_size);

}  // namespace needle::nn::detail
