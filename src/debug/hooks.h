// The points where the debugging tools (trace, anomaly mode, check_against_ref, memory tracking) attach to
// the engine. Tensor::from_op, the backward engine and TensorImpl call these only after enabled() says some
// tool is on, so while all are off each of those places costs one relaxed load and one predictable branch.
// Kernels are seen through set_backend_override (backend.h), which costs one load per kernel launch.
// Only the engine's own files include this header, so it lives in src/ and is not installed with the
// public headers.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

namespace needle {
class NDArray;
class Op;
class Tensor;
struct TensorImpl;
}  // namespace needle

namespace needle::debug::detail {

// One bit per tool; several may be on at once.
enum ToolBit : unsigned {
  kTraceBit = 1U << 0U,
  kAnomalyBit = 1U << 1U,
  kCheckRefBit = 1U << 2U,
  kTrackMemoryBit = 1U << 3U,
};

// Process-wide: the data loader's threads and the caller's thread are traced alike.
inline std::atomic<unsigned> tool_bits{0};

[[nodiscard]] inline bool enabled() noexcept { return tool_bits.load(std::memory_order_relaxed) != 0; }

// TensorImpl's constructor (when enabled()) and destructor (when impl.debug_info is set): the first records
// the call site in a new TensorDebugInfo and registers the tensor with memory tracking, the second unregisters it.
void on_tensor_created(TensorImpl& impl);
void on_tensor_destroyed(TensorImpl& impl);

// Runs op.compute_outputs(values) for Tensor::from_op with the tools that are on: a trace span, the anomaly
// check of the outputs, the comparison against the ref device. `call_site` is the first output's.
std::vector<NDArray> compute_op(const Op& op, const std::vector<NDArray>& values, std::uint32_t call_site);

// Runs op.gradient_outputs(...) for the backward engine: a trace span and the anomaly check of the
// gradients it returns. `node` is the output the engine reached the node through.
std::vector<Tensor> compute_gradient(const Op& op, const std::vector<Tensor>& out_grads,
                                     const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                                     const std::vector<bool>& needs_grad, const Tensor& node);

// Spans one whole backward() call, so the gradient accumulations the engine runs between nodes nest inside
// it in a trace, and so the anomaly check of ops created during backward reports the backward phase.
class BackwardScope {
 public:
  BackwardScope() {
    if (enabled()) [[unlikely]] {
      begin();
    }
  }
  ~BackwardScope() {
    if (active_) end();
  }
  BackwardScope(const BackwardScope&) = delete;
  BackwardScope& operator=(const BackwardScope&) = delete;
  BackwardScope(BackwardScope&&) = delete;
  BackwardScope& operator=(BackwardScope&&) = delete;

 private:
  void begin();
  void end() noexcept;

  bool active_ = false;
  std::int64_t span_ = -1;
};

}  // namespace needle::debug::detail
