// Tracing: a recording of everything that runs while a trace::Scope lives: each op's forward, each
// backward node, and every kernel a backend launches, nested (a backward node contains the ops of its
// gradient, an op contains its kernels), timed, with shapes, dtypes, devices, call sites, and for kernels
// the elements, FLOPs and bytes they touch. It saves as Chrome trace JSON (chrome://tracing, Perfetto)
// and summarises as a table.
//
// The recording is process-wide: kernels run by the data loader's threads are recorded too, each event
// carrying its thread. One trace records at a time. While none records, an op pays one relaxed load and a
// predictable branch (src/debug/hooks.h) and a kernel launch one load (backend_for's override check).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "needle/core/shape.h"

namespace needle::trace {

enum class EventKind : std::uint8_t {
  Op,        // an op's forward (Tensor::from_op), called by the user
  GradOp,    // an op run inside backward (the ops a gradient is made of, the engine's accumulations)
  Backward,  // one node of the backward pass: op.gradient() of the op that produced a tensor
  Autograd,  // one whole backward() call
  Kernel,    // one backend kernel launch
};
std::string_view event_kind_name(EventKind kind);  // "op", "grad_op", "backward", "autograd", "kernel"

struct Event {
  std::int64_t id = 0;
  std::int64_t parent = -1;  // id of the enclosing event on the same thread, -1 at top level
  std::int32_t depth = 0;    // 0 at top level
  std::uint32_t thread = 0;  // 0: the thread that started the trace; others numbered as they appear
  EventKind kind = EventKind::Op;
  std::string name;  // op name ("matmul") or kernel name ("matmul", "binary.add", "reduce.sum", "copy")
  std::string device;
  std::string dtype;
  std::vector<Shape> input_shapes;
  std::vector<Shape> output_shapes;
  std::string call_site;      // "file:line" where the op was created, when known
  std::int64_t elements = 0;  // kernels: elements written
  std::int64_t flops = 0;     // kernels: floating-point operations (0 where not meaningful)
  std::int64_t bytes = 0;     // kernels: bytes of all operands as the kernel sees them (logical traffic)
  double start_us = 0;        // from the start of the trace
  double duration_us = 0;
  bool complete = true;  // false when the trace ended while the event was still running
};

// The result of a trace.
class Recording {
 public:
  Recording() = default;
  Recording(std::vector<Event> events, double duration_us, std::uint32_t threads)
      : events_(std::move(events)), duration_us_(duration_us), threads_(threads) {}

  [[nodiscard]] const std::vector<Event>& events() const { return events_; }
  // Wall time from the start of the trace to its end.
  [[nodiscard]] double duration_us() const { return duration_us_; }
  [[nodiscard]] std::uint32_t threads() const { return threads_; }

  // Chrome trace event format: {"traceEvents": [{"ph": "X", "ts": µs, "dur": µs, "pid", "tid", ...}]}.
  [[nodiscard]] std::string chrome_json() const;
  // Writes chrome_json() to `path` (RuntimeError naming the path when it cannot).
  void save(const std::string& path) const;
  // A table: time per op, per backward node and per kernel, share of the traced wall time, and the
  // achieved GFLOP/s and GB/s of the kernels.
  [[nodiscard]] std::string summary() const;

 private:
  std::vector<Event> events_;
  double duration_us_ = 0;
  std::uint32_t threads_ = 0;
};

// Records from construction until stop() or destruction. Throws RuntimeError when a trace is already
// recording.
class Scope {
 public:
  Scope();
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  Scope(Scope&&) = delete;
  Scope& operator=(Scope&&) = delete;

  // Ends the recording (once; later calls return the same recording).
  const Recording& stop();
  [[nodiscard]] bool recording() const { return !stopped_; }

 private:
  bool stopped_ = false;
  Recording result_;
};

// True while some Scope records.
bool is_recording();

}  // namespace needle::trace
