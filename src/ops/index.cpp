// Indexing with integer tensors: gather, embedding, one_hot. Gradients of gathers are scatter-adds into
// zeros (ScatterAddOp), whose own gradient is a gather again, so both differentiate any number of times.
#include "ops/op_helpers.h"

namespace needle::ops {

using detail::constant;
using detail::make;

namespace {

// Throws IndexError naming `op` unless every element of integer `indices` lies in [0, limit).
void check_in_range(std::string_view op, const NDArray& indices, std::int64_t limit, std::string_view limit_name) {
  if (indices.size() == 0) return;
  const std::int64_t lowest = needle::min(indices).item().to<std::int64_t>();
  const std::int64_t highest = needle::max(indices).item().to<std::int64_t>();
  const std::int64_t bad = lowest < 0 ? lowest : highest;
  NEEDLE_CHECK(lowest >= 0 && highest < limit, IndexError, op, ": index ", bad, " is out of range for ", limit_name,
               " ", limit, " (indices of shape ", shape_str(indices.shape()), ")");
}

void check_integer(std::string_view op, std::string_view what, const Tensor& t) {
  NEEDLE_CHECK(is_integral(t.dtype()), TypeError, op, ": ", what, " must be an integer tensor, got dtype ",
               dtype_name(t.dtype()), " (shape ", shape_str(t.shape()), ")");
}

// Accumulates src into zeros of `shape` at `index` along `axis` (torch.scatter_add on zeros). Inputs:
// index (integer, no gradient), src.
class ScatterAddOp final : public SingleOutputOp {
 public:
  ScatterAddOp(std::int64_t axis, Shape shape) : axis_(axis), shape_(std::move(shape)) {}
  std::string name() const override { return "scatter_add"; }
  // Reads the index.
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.input(0); }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::scatter_add_to_zeros(shape_, axis_, in[0], in[1]);
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    // Each src element was added to exactly one output cell: its gradient is that cell's.
    return {Tensor(), gather(g, axis_, node.inputs()[0])};
  }

 private:
  std::int64_t axis_;
  Shape shape_;
};

// Inputs: a, index (integer, no gradient).
class GatherOp final : public SingleOutputOp {
 public:
  explicit GatherOp(std::int64_t axis) : axis_(axis) {}
  std::string name() const override { return "gather"; }
  // Reads the index (and a's shape).
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.input(1); }
  NDArray compute(const std::vector<NDArray>& in) const override { return needle::gather(in[0], axis_, in[1]); }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    // An element of a picked several times collects every pick's gradient: scatter_add, not assignment.
    const Tensor& index = node.inputs()[1];
    return {make<ScatterAddOp>({index, g}, axis_, node.inputs()[0].shape()), Tensor()};
  }

 private:
  std::int64_t axis_;
};

// The gather index that picks rows `indices` (any shape) of a (num_embeddings, dim) weight: the flattened
// indices repeated along dim, shape (n, dim).
NDArray row_index(const NDArray& indices, std::int64_t dim) {
  const std::int64_t n = indices.size();
  return indices.astype(DType::Int64).reshape({n, 1}).broadcast_to({n, dim});
}

// Inputs: indices (integer, no gradient), weight.
class EmbeddingOp final : public SingleOutputOp {
 public:
  std::string name() const override { return "embedding"; }
  // Reads the indices (and the weight's shape).
  SavedTensors saved_tensors(const NeedsGrad& /*needs_grad*/) const override { return SavedTensors{}.input(0); }
  NDArray compute(const std::vector<NDArray>& in) const override {
    const std::int64_t dim = in[1].shape()[1];
    Shape shape = in[0].shape();
    shape.push_back(dim);
    return needle::gather(in[1], 0, row_index(in[0], dim)).reshape(shape);
  }
  std::vector<Tensor> gradient(const Tensor& g, const Tensor& node, const NeedsGrad& /*needs_grad*/) const override {
    // Rows picked more than once accumulate every pick's gradient (scatter_add).
    const Shape& weight_shape = node.inputs()[1].shape();
    const NDArray index = row_index(node.inputs()[0].value(), weight_shape[1]);
    const Tensor rows = reshape(g, index.shape());
    return {Tensor(), make<ScatterAddOp>({constant(index), rows}, 0, weight_shape)};
  }
};

// Integer input: the output never records a graph, so gradient() is never reached.
class OneHotOp final : public SingleOutputOp {
 public:
  OneHotOp(std::int64_t num_classes, DType dtype) : num_classes_(num_classes), dtype_(dtype) {}
  std::string name() const override { return "one_hot"; }
  NDArray compute(const std::vector<NDArray>& in) const override {
    return needle::one_hot(in[0], num_classes_, dtype_);
  }
  std::vector<Tensor> gradient(const Tensor& /*g*/, const Tensor& /*node*/,
                               const NeedsGrad& /*needs_grad*/) const override {
    return {Tensor()};
  }

 private:
  std::int64_t num_classes_;
  DType dtype_;
};

}  // namespace

Tensor gather(const Tensor& a, std::int64_t axis, const Tensor& index) {
  detail::check_same_device("gather", {a, index});
  check_integer("gather", "index", index);
  // Shapes and index values are checked by the array layer's gather, whose messages name both shapes.
  return make<GatherOp>({a, index}, normalize_axis(axis, a.ndim(), "gather"));
}

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  detail::check_same_device("embedding", {indices, weight});
  check_integer("embedding", "indices", indices);
  NEEDLE_CHECK(weight.ndim() == 2, ValueError, "embedding: weight must have shape (num_embeddings, dim), got shape ",
               shape_str(weight.shape()));
  check_in_range("embedding", indices.value(), weight.shape()[0], "num_embeddings");
  return make<EmbeddingOp>({indices, weight});
}

Tensor one_hot(const Tensor& indices, std::int64_t num_classes, DType dtype) {
  check_integer("one_hot", "indices", indices);
  NEEDLE_CHECK(num_classes >= 0, ValueError, "one_hot: num_classes must be non-negative, got ", num_classes);
  check_in_range("one_hot", indices.value(), num_classes, "num_classes");
  return make<OneHotOp>({indices}, num_classes, dtype);
}

}  // namespace needle::ops
