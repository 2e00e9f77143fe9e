// The trace recorder: spans from the hooks (ops, backward nodes) and from the tracing backends (kernels),
// one process-wide event list behind a mutex, with a stack of open spans per thread for the nesting.
#include "needle/debug/trace.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "core/json_quote.h"
#include "debug/debug_internal.h"
#include "needle/backend/backend.h"
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

// Read without the mutex so that kernels skip the recorder entirely while nothing records.
std::atomic<bool> recording_flag{false};

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

// ---- kernels -------------------------------------------------------------------------------------

namespace {

std::int64_t view_bytes(const StridedView& v) { return v.size() * static_cast<std::int64_t>(itemsize(v.dtype)); }
std::int64_t present_bytes(const StridedView& v) { return v.data == nullptr ? 0 : view_bytes(v); }

// Wraps a device's backend and records every kernel it runs as a span. One per device type, created once
// and never destroyed, so a thread still inside a kernel when the trace ends keeps a valid object.
class TracingBackend final : public Backend {
 public:
  std::atomic<Backend*> inner{nullptr};
  Device device;

  [[nodiscard]] std::string_view name() const override { return inner_backend().name(); }
  void* allocate(std::size_t nbytes) override { return inner_backend().allocate(nbytes); }
  void deallocate(void* data, std::size_t nbytes) override { inner_backend().deallocate(data, nbytes); }
  void synchronize() override { inner_backend().synchronize(); }

  void copy_from_host(void* device_dst, const void* host_src, std::size_t nbytes) override {
    run([&] { return kernel("copy_from_host", DType::Bool, {}, 0, 0, static_cast<std::int64_t>(nbytes)); },
        [&](Backend& b) { b.copy_from_host(device_dst, host_src, nbytes); });
  }
  void copy_to_host(void* host_dst, const void* device_src, std::size_t nbytes) override {
    run([&] { return kernel("copy_to_host", DType::Bool, {}, 0, 0, static_cast<std::int64_t>(nbytes)); },
        [&](Backend& b) { b.copy_to_host(host_dst, device_src, nbytes); });
  }
  [[nodiscard]] bool implements(OptionalKernel kernel) const override { return inner_backend().implements(kernel); }

 protected:
  // Every kernel of kernels.def, forwarded to the wrapped backend inside a span named by the list's trace
  // name, with its operands and its flops as the list counts them. The wrapped backend is reached through
  // its checked entry point (its virtuals are its own), so a traced call is checked twice; the check is
  // small next to the span's bookkeeping.
#define NEEDLE_TRACED(name, params, args, outputs, trace_name, flops)                  \
  {                                                                                    \
    run([&] { return describe(trace_name, flops, outputs, NEEDLE_KERNEL_ARGS args); }, \
        [&](Backend& wrapped) { wrapped.name args; });                                 \
  }
#define NEEDLE_PRIMITIVE(name, params, args, outputs, trace_name, flops) \
  void name##_kernel params override NEEDLE_TRACED(name, params, args, outputs, trace_name, flops)
#define NEEDLE_FUSED(name, params, args, Layout, check, outputs, trace_name, flops)                        \
  void name##_kernel(const kernels::Layout& /*layout*/, NEEDLE_KERNEL_ARGS params) override NEEDLE_TRACED( \
      name, params, args, outputs, trace_name, flops)
#define NEEDLE_OPTIONAL NEEDLE_FUSED
#include "needle/backend/kernels.def"
#undef NEEDLE_PRIMITIVE
#undef NEEDLE_FUSED
#undef NEEDLE_OPTIONAL
#undef NEEDLE_TRACED

 private:
  [[nodiscard]] Backend& inner_backend() const { return *inner.load(std::memory_order_acquire); }

  struct Kernel {
    std::string name;
    DType dtype;
    std::vector<Shape> inputs;
    std::int64_t elements;
    std::int64_t flops;
    std::int64_t bytes;
  };
  // B * L * S (query, key) pairs of an attention kernel's q (B, L, d) and k (B, S, d); 0 for other ranks.
  static std::int64_t attention_pairs(const StridedView& q, const StridedView& k) {
    return q.ndim() == 3 && k.ndim() == 3 ? q.shape[0] * q.shape[1] * k.shape[1] : 0;
  }
  static std::int64_t last_dim(const StridedView& view) { return view.shape.empty() ? 0 : view.shape.back(); }

  static Kernel kernel(std::string name, DType dtype, std::vector<Shape> inputs, std::int64_t elements,
                       std::int64_t flops, std::int64_t bytes) {
    return {std::move(name), dtype, std::move(inputs), elements, flops, bytes};
  }

  // A kernel's span from its arguments: the first `outputs` views are written (elements counts theirs), the
  // other views are its inputs; bytes are every present view's. The dtype shown is the first view's that is
  // neither bool nor int64 (a comparison's operands, not its bool result; gathered values, not indices), or
  // the first view's when all are.
  template <typename... Args>
  static Kernel describe(std::string name, std::int64_t flops, std::size_t outputs, const Args&... args) {
    std::vector<const StridedView*> views;
    (collect_view(views, args), ...);
    Kernel info{std::move(name), views.empty() ? DType::Float32 : views.front()->dtype, {}, 0, flops, 0};
    for (std::size_t i = 0; i < views.size(); ++i) {
      const StridedView& view = *views[i];
      info.bytes += present_bytes(view);
      if (i < outputs) {
        info.elements += view.data == nullptr ? 0 : view.size();
      } else if (view.data != nullptr) {
        info.inputs.push_back(view.shape);
      }
    }
    const auto data_view = std::find_if(views.begin(), views.end(), [](const StridedView* view) {
      return view->dtype != DType::Bool && view->dtype != DType::Int64;
    });
    if (data_view != views.end()) info.dtype = (*data_view)->dtype;
    return info;
  }
  static void collect_view(std::vector<const StridedView*>& views, const StridedView& view) { views.push_back(&view); }
  template <typename T>
  static void collect_view(std::vector<const StridedView*>& /*views*/, const T& /*not_a_view*/) {}

  // Runs `launch` on the wrapped backend, inside a span described by `describe()` while recording.
  template <typename Describe, typename Launch>
  void run(Describe&& describe_kernel, Launch&& launch) {
    Backend& backend = inner_backend();
    if (suppressed() || !recording_flag.load(std::memory_order_relaxed)) {
      launch(backend);
      return;
    }
    Kernel info = describe_kernel();
    trace::Event event;
    event.kind = trace::EventKind::Kernel;
    event.name = std::move(info.name);
    event.device = device_str(device);
    event.dtype = std::string(dtype_name(info.dtype));
    event.input_shapes = std::move(info.inputs);
    event.elements = info.elements;
    event.flops = is_floating(info.dtype) ? info.flops : 0;
    event.bytes = info.bytes;
    const std::int64_t id = open_span(std::move(event));
    try {
      launch(backend);
      backend.synchronize();  // asynchronous devices: the span covers the kernel, not its launch
    } catch (...) {
      close_span(id);
      throw;
    }
    close_span(id);
  }
};

constexpr std::array<DeviceType, 3> kDeviceTypes{DeviceType::Ref, DeviceType::Cpu, DeviceType::Cuda};

std::array<TracingBackend, 3>& tracing_backends() {
  static auto* const backends = new std::array<TracingBackend, 3>();
  return *backends;
}
std::array<Backend*, 3> replaced_overrides{};

}  // namespace

void install_tracing_backends() {
  for (std::size_t i = 0; i < kDeviceTypes.size(); ++i) {
    const Device device{kDeviceTypes.at(i), 0};
    if (!device.enabled()) continue;
    TracingBackend& tracer = tracing_backends().at(i);
    tracer.device = device;
    tracer.inner.store(&backend_for(device), std::memory_order_release);  // the current one, maybe an override
    replaced_overrides.at(i) = set_backend_override(device.type, &tracer);
  }
}

void remove_tracing_backends() {
  for (std::size_t i = 0; i < kDeviceTypes.size(); ++i) {
    const Device device{kDeviceTypes.at(i), 0};
    if (!device.enabled()) continue;
    set_backend_override(device.type, replaced_overrides.at(i));
    replaced_overrides.at(i) = nullptr;
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

// ---- output ----------------------------------------------------------------------------------------

namespace {

std::string fixed(double value, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

}  // namespace

std::string Recording::chrome_json() const {
  std::ostringstream out;
  out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  out << R"({"name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"needle"}})";
  for (std::uint32_t t = 0; t < threads_; ++t) {
    out << ",\n"
        << R"({"name":"thread_name","ph":"M","pid":1,"tid":)" << t << R"(,"args":{"name":)"
        << json_quote(t == 0 ? "tracing thread" : str("thread ", t)) << "}}";
  }
  for (const Event& e : events_) {
    const std::string name = e.kind == EventKind::Backward ? "backward " + e.name : e.name;
    out << ",\n{\"name\":" << json_quote(name) << ",\"cat\":" << json_quote(event_kind_name(e.kind))
        << ",\"ph\":\"X\",\"ts\":" << fixed(e.start_us, 3) << ",\"dur\":" << fixed(e.duration_us, 3)
        << ",\"pid\":1,\"tid\":" << e.thread << ",\"args\":{\"id\":" << e.id << ",\"parent\":" << e.parent;
    if (!e.device.empty()) out << ",\"device\":" << json_quote(e.device);
    if (!e.dtype.empty()) out << ",\"dtype\":" << json_quote(e.dtype);
    if (!e.input_shapes.empty()) out << ",\"inputs\":" << json_quote(debug::detail::shapes_str(e.input_shapes));
    if (!e.output_shapes.empty()) out << ",\"outputs\":" << json_quote(debug::detail::shapes_str(e.output_shapes));
    if (!e.call_site.empty()) out << ",\"call_site\":" << json_quote(e.call_site);
    if (e.kind == EventKind::Kernel) {
      out << ",\"elements\":" << e.elements << ",\"flops\":" << e.flops << ",\"bytes\":" << e.bytes;
    }
    if (!e.complete) out << ",\"complete\":false";
    out << "}}";
  }
  out << "\n]}\n";
  return out.str();
}

void Recording::save(const std::string& path) const {
  std::ofstream file(path, std::ios::binary);
  NEEDLE_CHECK(file.good(), RuntimeError, "trace.save: cannot open '", path, "' for writing");
  file << chrome_json();
  file.close();
  NEEDLE_CHECK(!file.fail(), RuntimeError, "trace.save: writing '", path, "' failed");
}

std::string Recording::summary() const {
  struct Row {
    std::int64_t calls = 0;
    double total_us = 0;
    std::int64_t flops = 0;
    std::int64_t bytes = 0;
  };
  // (kind, name, device) -> totals
  std::map<std::tuple<EventKind, std::string, std::string>, Row> rows;
  for (const Event& e : events_) {
    Row& row = rows[{e.kind, e.name, e.kind == EventKind::Kernel ? e.device : std::string()}];
    ++row.calls;
    row.total_us += e.duration_us;
    row.flops += e.flops;
    row.bytes += e.bytes;
  }
  std::ostringstream out;
  out << "trace: " << fixed(duration_us_ / 1000.0, 3) << " ms wall, " << events_.size() << " events on " << threads_
      << " thread(s); times include nested events, so shares of different sections overlap\n";
  const auto section = [&](EventKind kind, const std::string& title) {
    std::vector<std::pair<std::tuple<EventKind, std::string, std::string>, Row>> picked;
    for (const auto& entry : rows) {
      if (std::get<0>(entry.first) == kind) picked.emplace_back(entry);
    }
    if (picked.empty()) return;
    std::sort(picked.begin(), picked.end(),
              [](const auto& a, const auto& b) { return a.second.total_us > b.second.total_us; });
    const bool kernels = kind == EventKind::Kernel;
    out << "\n" << title << "\n";
    out << std::left << std::setw(28) << "  name" << std::right << std::setw(7) << "calls" << std::setw(12)
        << "total ms" << std::setw(8) << "share" << std::setw(11) << "mean us";
    if (kernels) out << std::setw(10) << "GFLOP/s" << std::setw(9) << "GB/s";
    out << "\n";
    for (const auto& [key, row] : picked) {
      std::string label = std::get<1>(key);
      if (kernels) label += " (" + std::get<2>(key) + ")";
      const double share = duration_us_ > 0 ? 100.0 * row.total_us / duration_us_ : 0.0;
      out << "  " << std::left << std::setw(26) << label << std::right << std::setw(7) << row.calls << std::setw(12)
          << fixed(row.total_us / 1000.0, 3) << std::setw(7) << fixed(share, 1) << "%" << std::setw(11)
          << fixed(row.total_us / static_cast<double>(row.calls), 1);
      if (kernels) {
        // FLOPs per microsecond / 1000 = GFLOP/s; bytes likewise GB/s.
        const double seconds_scale = row.total_us > 0 ? 1.0 / (row.total_us * 1000.0) : 0.0;
        out << std::setw(10)
            << (row.flops > 0 && row.total_us > 0 ? fixed(static_cast<double>(row.flops) * seconds_scale, 2) : "-")
            << std::setw(9)
            << (row.bytes > 0 && row.total_us > 0 ? fixed(static_cast<double>(row.bytes) * seconds_scale, 2) : "-");
      }
      out << "\n";
    }
  };
  section(EventKind::Op, "ops (forward, as called)");
  section(EventKind::Autograd, "backward passes");
  section(EventKind::Backward, "backward nodes (op.gradient of each op)");
  section(EventKind::GradOp, "ops run inside backward (gradients, accumulation)");
  section(EventKind::Kernel, "kernels (device)");
  return out.str();
}

}  // namespace trace

}  // namespace needle
