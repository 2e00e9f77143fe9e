// The trace recorder: spans from the hooks (ops, backward nodes) and from the tracing backends (kernels),
// one process-wide event list behind a mutex, with a stack of open spans per thread for the nesting.
#include "needle/debug/trace.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "debug/debug_internal.h"
#include "needle/core/error.h"

namespace needle {

namespace trace {

std::string_view event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::Op:
      return "op";
    case EventKind::GradOp:
      return "grad_op";
    case EventKind::Backward:
      return "backward";
    case EventKind::Autograd:
      return "autograd";
    case EventKind::Kernel:
      return "kernel";
  }
  return "unknown";
}

}  // namespace trace

namespace debug::detail {

namespace {

using Clock = std::chrono::steady_clock;

struct Recorder {
  std::mutex mutex;
  bool active = false;
  std::uint64_t generation = 0;  // one per recording, so threads drop span stacks of an earlier one
  Clock::time_point origin;
  std::vector<trace::Event> events;
  std::unordered_map<std::thread::id, std::uint32_t> threads;
};

Recorder& recorder() {
  static auto* const instance = new Recorder();  // never destroyed: threads may close spans at exit
  return *instance;
}

struct ThreadSpans {
  std::uint64_t generation = 0;
  std::vector<std::int64_t> open;
};
thread_local ThreadSpans thread_spans;

double micros_since(Clock::time_point origin, Clock::time_point t) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t - origin).count()) / 1000.0;
}

}  // namespace

std::int64_t open_span(trace::Event event) {
  if (suppressed() || !recording_flag.load(std::memory_order_relaxed)) return -1;
  const Clock::time_point now = Clock::now();
  Recorder& r = recorder();
  const std::lock_guard lock(r.mutex);
  if (!r.active) return -1;
  ThreadSpans& spans = thread_spans;
  if (spans.generation != r.generation) {
    spans.generation = r.generation;
    spans.open.clear();
  }
  event.id = static_cast<std::int64_t>(r.events.size());
  event.parent = spans.open.empty() ? -1 : spans.open.back();
  event.depth = static_cast<std::int32_t>(spans.open.size());
  event.thread =
      r.threads.try_emplace(std::this_thread::get_id(), static_cast<std::uint32_t>(r.threads.size())).first->second;
  event.start_us = micros_since(r.origin, now);
  event.duration_us = 0;
  event.complete = false;
  r.events.push_back(std::move(event));
  spans.open.push_back(r.events.back().id);
  return r.events.back().id;
}

void close_span(std::int64_t id, const std::vector<Shape>* output_shapes) noexcept {
  if (id < 0) return;
  const Clock::time_point now = Clock::now();
  Recorder& r = recorder();
  const std::lock_guard lock(r.mutex);
  ThreadSpans& spans = thread_spans;
  if (spans.generation != r.generation) return;  // a span of an earlier recording
  if (!spans.open.empty() && spans.open.back() == id) spans.open.pop_back();
  if (!r.active || id >= static_cast<std::int64_t>(r.events.size())) return;
  trace::Event& event = r.events[static_cast<std::size_t>(id)];
  event.duration_us = micros_since(r.origin, now) - event.start_us;
  event.complete = true;
  try {
    if (output_shapes != nullptr) event.output_shapes = *output_shapes;
  } catch (...) {  // out of memory while copying shapes: the event keeps no outputs
  }
}

}  // namespace debug::detail

namespace trace {

using debug::detail::Clock;
using debug::detail::recorder;

bool is_recording() { return debug::detail::recording_flag.load(std::memory_order_relaxed); }

Scope::Scope() {
  debug::detail::Recorder& r = recorder();
  {
    const std::lock_guard lock(r.mutex);
    NEEDLE_CHECK(!r.active, RuntimeError, "trace: a trace is already recording; one trace records at a time");
    r.active = true;
    ++r.generation;
    r.events.clear();
    r.threads.clear();
    r.threads.emplace(std::this_thread::get_id(), 0);
    r.origin = Clock::now();
  }
  debug::detail::recording_flag.store(true, std::memory_order_relaxed);
  debug::detail::install_tracing_backends();
  debug::detail::acquire_tool(debug::detail::kTraceBit);
}

Scope::~Scope() {
  try {
    stop();
  } catch (...) {  // stop() only allocates; a destructor must not throw
  }
}

const Recording& Scope::stop() {
  if (stopped_) return result_;
  stopped_ = true;
  debug::detail::release_tool(debug::detail::kTraceBit);
  debug::detail::remove_tracing_backends();
  debug::detail::recording_flag.store(false, std::memory_order_relaxed);
  debug::detail::Recorder& r = recorder();
  const std::lock_guard lock(r.mutex);
  const double end_us = debug::detail::micros_since(r.origin, Clock::now());
  for (Event& event : r.events) {
    if (!event.complete) event.duration_us = end_us - event.start_us;  // still running: cut at the end
  }
  result_ = Recording(std::move(r.events), end_us, static_cast<std::uint32_t>(r.threads.size()));
  r.events.clear();
  r.threads.clear();
  r.active = false;
  return result_;
}

}  // namespace trace

}  // namespace needle
