// Tensor: an NDArray value plus what autograd needs: whether it requires a gradient, the op that produced
// it and that op's inputs (the graph), and its accumulated gradient.
//
// A Tensor is a cheap handle (a shared pointer): copies refer to the same tensor. Values are computed
// eagerly when an op runs; the graph is recorded at the same time when grad mode is on and some input
// requires a gradient. backward() walks that graph in reverse topological order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "needle/core/ndarray.h"

namespace needle {

class Op;
struct TensorImpl;
struct OutputGroup;
// Defined inside the library (src/autograd/tensor_debug_info.h): only the debugging tools read it.
struct TensorDebugInfo;

class Tensor {
 public:
  // An undefined tensor (no value): used for "no gradient".
  Tensor() = default;
  // A leaf. requires_grad is honoured only for floating dtypes (integer tensors never require grad).
  explicit Tensor(NDArray value, bool requires_grad = false);
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Runs `op` (one with a single output) on the inputs' values; records the graph (op + inputs) when grad
  // mode is on and an input requires a gradient. This is how every op creates its output.
  static Tensor from_op(std::shared_ptr<const Op> op, std::vector<Tensor> inputs);
  // The same for an op with several outputs: one tensor per output, each a node of the graph whose
  // gradient the op computes together with its siblings'.
  static std::vector<Tensor> from_op_outputs(const std::shared_ptr<const Op>& op, const std::vector<Tensor>& inputs);

  [[nodiscard]] bool defined() const { return impl_ != nullptr; }
  [[nodiscard]] const std::shared_ptr<TensorImpl>& impl() const { return impl_; }
  [[nodiscard]] bool same(const Tensor& other) const { return impl_ == other.impl_; }

  // ---- value ---------------------------------------------------------------------------------
  [[nodiscard]] const NDArray& value() const;
  // Replaces the value in place (Needle's `t.data = ...`): same dtype and device required.
  void set_value(const NDArray& value);
  [[nodiscard]] const Shape& shape() const { return value().shape(); }
  [[nodiscard]] DType dtype() const { return value().dtype(); }
  [[nodiscard]] Device device() const { return value().device(); }
  [[nodiscard]] std::int64_t ndim() const { return value().ndim(); }
  [[nodiscard]] std::int64_t size() const { return value().size(); }

  // ---- graph ---------------------------------------------------------------------------------
  [[nodiscard]] bool requires_grad() const;
  // Throws TypeError when asked for a gradient of a non-floating tensor.
  void set_requires_grad(bool requires_grad);
  // True when no op produced this tensor (or its graph link was cut by detach()).
  [[nodiscard]] bool is_leaf() const;
  // The op that produced this tensor (null for leaves) and its inputs.
  [[nodiscard]] const std::shared_ptr<const Op>& op() const;
  [[nodiscard]] const std::vector<Tensor>& inputs() const;
  // A new leaf sharing this tensor's value, outside the graph.
  [[nodiscard]] Tensor detach() const;

  // ---- gradients -----------------------------------------------------------------------------
  // The accumulated gradient (undefined until a backward pass reaches this tensor).
  [[nodiscard]] Tensor grad() const;
  void set_grad(const Tensor& grad);
  void reset_grad() { set_grad(Tensor()); }
  // Reverse mode from this tensor. Without out_grad a tensor of ones is used (Needle's behaviour, also
  // for non-scalar outputs). The gradients of every tensor that requires one are accumulated into its
  // grad(). Unless retain_graph, the graph behind this tensor is released afterwards. With create_graph
  // the backward pass itself is recorded, so gradients can be differentiated again.
  void backward(const Tensor& out_grad = Tensor(), bool retain_graph = false, bool create_graph = false) const;

  // Calls `hook(tensor)` each time a backward pass has finished accumulating this leaf's gradient into
  // grad() (PyTorch's post-accumulate-grad hook): the gradient is final for that pass, even while backward
  // goes on through the rest of the graph. DistributedDataParallel starts its all-reduces from here.
  // Returns an id for remove_post_accumulate_grad_hook. TypeError on a non-leaf tensor.
  std::uint64_t register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const;
  void remove_post_accumulate_grad_hook(std::uint64_t id) const;

  // "Tensor(shape=(2, 3), dtype=float32, device=cpu, requires_grad=true, op=add)".
  [[nodiscard]] std::string describe() const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// One tensor a node saved for its gradient (Op::saved_tensors) and the state of its storage when the node
// was recorded: backward checks that the tensor still holds that storage at that version.
struct SavedVersion {
  std::uint32_t index = 0;  // which input, or which output when `output`
  bool output = false;
  std::uint64_t storage_id = 0;  // Storage::id: a different one means the value was replaced (set_value)
  std::uint64_t version = 0;     // Storage::version: a larger one means it was written in place
};

// The state behind a Tensor handle. Exposed so bindings can hold it directly; use Tensor's methods.
struct TensorImpl {
  TensorImpl();
  // Holding `value` from the start: an op's result is made this way, without first making (and allocating)
  // the empty array a default value is.
  explicit TensorImpl(NDArray value);
  ~TensorImpl();
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;
  // Tensors alive right now in this process (Needle's TENSOR_COUNTER; memory statistics read it).
  static std::size_t live_count();

  NDArray value;
  bool requires_grad = false;
  std::shared_ptr<const Op> op;  // null for leaves
  std::vector<Tensor> inputs;
  // Set for an output of an op with several outputs: what it shares with its siblings.
  std::shared_ptr<OutputGroup> group;
  // What the op's gradient will read, with the versions it had when this node was recorded (empty for
  // leaves and for ops that save nothing).
  std::vector<SavedVersion> saved_versions;
  std::shared_ptr<TensorImpl> grad;
  // Tensor::register_post_accumulate_grad_hook's hooks, with their ids.
  std::vector<std::pair<std::uint64_t, std::function<void(const Tensor&)>>> grad_hooks;
  // Set when backward() released this node's graph links, so a second backward can say so.
  std::string released_op_name;
  // What the debugging tools recorded when this tensor was created (its call site), or null when no tool
  // was on. Non-null also means registered with memory tracking, which must hear of its destruction.
  std::unique_ptr<TensorDebugInfo> debug_info;
};

// What the outputs of one node of an op with several outputs share: each other, weakly (an output the program
// dropped is gone, as any tensor), and their values, which the op's backward may read (attention's
// logsumexp, BatchNorm's batch statistics) whether or not the program kept that output.
struct OutputGroup {
  std::vector<std::weak_ptr<TensorImpl>> outputs;
  std::vector<NDArray> values;
};

}  // namespace needle
