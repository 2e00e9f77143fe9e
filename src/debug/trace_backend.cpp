// The tracer's kernel spans: a backend put in front of each device's own (set_backend_override) while a
// trace records, which opens a span around every kernel with its operands, flops and bytes.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "debug/debug_internal.h"
#include "needle/backend/backend.h"
#include "needle/debug/trace.h"

namespace needle {

namespace debug::detail {

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

}  // namespace needle
