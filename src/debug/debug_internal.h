// What the files of src/debug share: which tools are on, the per-thread state of the hooks, and the
// trace recorder's span interface.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "debug/hooks.h"
#include "needle/core/ndarray.h"
#include "needle/debug/trace.h"

namespace needle::debug::detail {

// Counts users of a tool (guards nest and may overlap across threads) and keeps its bit in tool_bits.
void acquire_tool(ToolBit bit);
void release_tool(ToolBit bit);
[[nodiscard]] inline bool tool_on(ToolBit bit) { return (tool_bits.load(std::memory_order_relaxed) & bit) != 0; }

// While one lives on a thread, the hooks on that thread do nothing: the tools' own work (copies for
// checks, recomputation on ref) is neither traced nor checked.
class Suppress {
 public:
  Suppress();
  ~Suppress();
  Suppress(const Suppress&) = delete;
  Suppress& operator=(const Suppress&) = delete;
  Suppress(Suppress&&) = delete;
  Suppress& operator=(Suppress&&) = delete;
};
[[nodiscard]] bool suppressed();

// Whether a trace records (trace.cpp sets it), read without the recorder's mutex so that kernels and ops
// skip the recorder entirely while nothing records.
inline std::atomic<bool> recording_flag{false};

// Trace spans (trace.cpp). open_span fills in id, parent, depth, thread and start and returns the id, or
// -1 when no trace records (or on a suppressed thread); close_span ends it, adding output shapes if given.
std::int64_t open_span(trace::Event event);
void close_span(std::int64_t id, const std::vector<Shape>* output_shapes = nullptr) noexcept;

// Installs/removes the kernel-recording backends in front of every enabled device (trace_backend.cpp).
void install_tracing_backends();
void remove_tracing_backends();

// The values of an array as float64 on the host (a copy; untraced).
std::vector<double> host_values(const NDArray& array);

// "(2, 3), (3,)"
std::string shapes_str(const std::vector<Shape>& shapes);
std::string device_str(Device device);

}  // namespace needle::debug::detail
