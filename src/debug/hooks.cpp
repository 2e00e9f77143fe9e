// The engine's debugging hooks (debug/hooks.h): call sites, anomaly mode, check_against_ref, and the
// trace spans of ops and backward nodes.
#include "debug/hooks.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "autograd/tensor_debug_info.h"
#include "debug/debug_internal.h"
#include "needle/autograd/op.h"
#include "needle/autograd/tensor.h"
#include "needle/core/error.h"
#include "needle/debug/anomaly.h"
#include "needle/debug/call_site.h"
#include "needle/debug/check_against_ref.h"

namespace needle::debug {

namespace detail {

namespace {

std::mutex& tools_mutex() {
  static std::mutex mutex;
  return mutex;
}

// Users of each tool (index = bit position).
std::array<int, 4> tool_users{};

std::size_t bit_index(ToolBit bit) {
  std::size_t index = 0;
  for (unsigned b = bit; b > 1U; b >>= 1U) ++index;
  return index;
}

thread_local int suppress_depth = 0;
thread_local int backward_depth = 0;

}  // namespace

void acquire_tool(ToolBit bit) {
  const std::lock_guard lock(tools_mutex());
  if (tool_users.at(bit_index(bit))++ == 0) tool_bits.fetch_or(bit, std::memory_order_relaxed);
}

void release_tool(ToolBit bit) {
  const std::lock_guard lock(tools_mutex());
  int& users = tool_users.at(bit_index(bit));
  if (users > 0 && --users == 0) tool_bits.fetch_and(~static_cast<unsigned>(bit), std::memory_order_relaxed);
}

Suppress::Suppress() { ++suppress_depth; }
Suppress::~Suppress() { --suppress_depth; }
bool suppressed() { return suppress_depth > 0; }

std::vector<double> host_values(const NDArray& array) {
  const Suppress quiet;
  return array.astype(DType::Float64).to_vector<double>();
}

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string out;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    if (i > 0) out += ", ";
    out += shape_str(shapes[i]);
  }
  return out.empty() ? "none" : out;
}

std::string device_str(Device device) { return str(device); }

}  // namespace detail

// ---- call sites ------------------------------------------------------------------------------------

namespace {

struct SiteTable {
  std::mutex mutex;
  std::unordered_map<std::string, std::uint32_t> ids;
  std::vector<std::string> names{""};  // id 0: unknown
};

SiteTable& site_table() {
  // Never destroyed: tensors freed at exit may still ask for names.
  static auto* const table = new SiteTable();
  return *table;
}

std::uint32_t intern_site(std::string name) {
  SiteTable& table = site_table();
  const std::lock_guard lock(table.mutex);
  const auto [it, inserted] = table.ids.try_emplace(name, static_cast<std::uint32_t>(table.names.size()));
  if (inserted) table.names.push_back(std::move(name));
  return it->second;
}

thread_local const CallSiteScope* innermost_scope = nullptr;
std::atomic<CallSiteHook> call_site_hook{nullptr};

}  // namespace

CallSiteScope::CallSiteScope(const char* file, int line) : file_(file), line_(line), previous_(innermost_scope) {
  innermost_scope = this;
}

CallSiteScope::~CallSiteScope() { innermost_scope = previous_; }

void set_call_site_hook(CallSiteHook hook) { call_site_hook.store(hook, std::memory_order_release); }

std::uint32_t current_call_site() {
  if (innermost_scope != nullptr) return intern_site(str(innermost_scope->file(), ":", innermost_scope->line()));
  if (const CallSiteHook hook = call_site_hook.load(std::memory_order_acquire); hook != nullptr) {
    std::string name = hook();
    if (!name.empty()) return intern_site(std::move(name));
  }
  return 0;
}

std::string call_site_name(std::uint32_t id) {
  SiteTable& table = site_table();
  const std::lock_guard lock(table.mutex);
  return id < table.names.size() ? table.names[id] : std::string();
}

// ---- anomaly mode ----------------------------------------------------------------------------------

void enable_anomaly_mode() { detail::acquire_tool(detail::kAnomalyBit); }
void disable_anomaly_mode() { detail::release_tool(detail::kAnomalyBit); }

// ---- check_against_ref -----------------------------------------------------------------------------

namespace {

std::mutex& tolerance_mutex() {
  static std::mutex mutex;
  return mutex;
}
std::vector<std::pair<double, double>>& tolerance_stack() {
  static std::vector<std::pair<double, double>> stack;
  return stack;
}

}  // namespace

void push_check_against_ref(double rtol, double atol) {
  NEEDLE_CHECK(rtol >= 0 && atol >= 0, ValueError,
               "check_against_ref: rtol and atol must be non-negative, got rtol=", rtol, " and atol=", atol);
  {
    const std::lock_guard lock(tolerance_mutex());
    tolerance_stack().emplace_back(rtol, atol);
  }
  detail::acquire_tool(detail::kCheckRefBit);
}

void pop_check_against_ref() {
  {
    const std::lock_guard lock(tolerance_mutex());
    if (!tolerance_stack().empty()) tolerance_stack().pop_back();
  }
  detail::release_tool(detail::kCheckRefBit);
}

bool check_against_ref_enabled() { return detail::tool_on(detail::kCheckRefBit); }

CheckAgainstRefGuard::CheckAgainstRefGuard(double rtol, double atol) { push_check_against_ref(rtol, atol); }
CheckAgainstRefGuard::~CheckAgainstRefGuard() { pop_check_against_ref(); }

// ---- the hooks -------------------------------------------------------------------------------------

namespace detail {

namespace {

std::string site_clause(std::uint32_t site) {
  const std::string name = call_site_name(site);
  if (name.empty()) {
    return "the op's call site is unknown (in C++, mark it with NEEDLE_CALL_SITE())";
  }
  return "the op was created at " + name;
}

struct NonFinite {
  std::size_t nan = 0;
  std::size_t inf = 0;
  std::size_t total = 0;
  [[nodiscard]] bool any() const { return nan + inf > 0; }
};

NonFinite count_non_finite(const NDArray& array) {
  NonFinite count;
  if (!is_floating(array.dtype())) return count;
  for (const double v : host_values(array)) {
    ++count.total;
    if (std::isnan(v)) ++count.nan;
    if (std::isinf(v)) ++count.inf;
  }
  return count;
}

std::string non_finite_str(const NonFinite& c) {
  return str(c.nan, " NaN and ", c.inf, " Inf among ", c.total, " elements");
}

std::vector<Shape> shapes_of(const std::vector<NDArray>& arrays) {
  std::vector<Shape> shapes;
  shapes.reserve(arrays.size());
  for (const NDArray& a : arrays) shapes.push_back(a.shape());
  return shapes;
}

std::vector<Shape> shapes_of(const std::vector<Tensor>& tensors) {
  std::vector<Shape> shapes;
  shapes.reserve(tensors.size());
  for (const Tensor& t : tensors) shapes.push_back(t.defined() ? t.shape() : Shape{});
  return shapes;
}

void check_forward_finite(const Op& op, const std::vector<NDArray>& values, const NDArray& result, std::uint32_t site) {
  const NonFinite found = count_non_finite(result);
  if (!found.any()) return;
  throw RuntimeError(str(op.name(), ": forward produced NaN/Inf (", non_finite_str(found), ") in its output of shape ",
                         shape_str(result.shape()), " from inputs of shapes ", shapes_str(shapes_of(values)), "; ",
                         site_clause(site), " (detected by anomaly mode)"));
}

// Compares the result computed on its device with the result recomputed on ref.
void compare_with_ref(const Op& op, const std::vector<NDArray>& values, const NDArray& result, const NDArray& expected,
                      double rtol, double atol) {
  NEEDLE_CHECK(result.shape() == expected.shape(), RuntimeError, op.name(), ": result has shape ",
               shape_str(result.shape()), " on ", result.device(), " but ", shape_str(expected.shape()),
               " on ref; input shapes ", shapes_str(shapes_of(values)), " (detected by check_against_ref)");
  const std::vector<double> got = host_values(result);
  const std::vector<double> want = host_values(expected);
  double max_abs = 0;
  double max_rel = 0;
  std::size_t bad = 0;
  std::size_t first_bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double a = got[i];
    const double b = want[i];
    if ((std::isnan(a) && std::isnan(b)) || a == b) continue;  // equal, including equal infinities
    const double diff = std::isnan(a) || std::isnan(b) ? INFINITY : std::abs(a - b);
    max_abs = std::max(max_abs, diff);
    max_rel = std::max(max_rel, b != 0 ? diff / std::abs(b) : INFINITY);
    if (!(diff <= atol + rtol * std::abs(b))) {
      if (bad++ == 0) first_bad = i;
    }
  }
  if (bad == 0) return;
  throw RuntimeError(str(op.name(), ": result on ", result.device(), " differs from the ref device beyond rtol=", rtol,
                         ", atol=", atol, " in ", bad, " of ", got.size(), " elements: max abs difference ", max_abs,
                         ", max rel difference ", max_rel, " (first at flat index ", first_bad, ": ", got[first_bad],
                         " vs ", want[first_bad], " on ref); input shapes ", shapes_str(shapes_of(values)),
                         ", output shape ", shape_str(result.shape()), " (detected by check_against_ref)"));
}

void check_against_ref(const Op& op, const std::vector<NDArray>& values, const std::vector<NDArray>& results) {
  if (results.empty() || results.front().device().type == DeviceType::Ref) return;
  double rtol = kDefaultCheckRtol;
  double atol = kDefaultCheckAtol;
  {
    const std::lock_guard lock(tolerance_mutex());
    if (!tolerance_stack().empty()) std::tie(rtol, atol) = tolerance_stack().back();
  }
  std::vector<NDArray> expected;
  try {
    const Suppress quiet;
    std::vector<NDArray> on_ref;
    on_ref.reserve(values.size());
    for (const NDArray& v : values) on_ref.push_back(v.to(ref_device()));
    expected = op.compute_outputs(on_ref);
  } catch (const Error&) {
    return;  // an op that cannot run on ref (arrays it holds live elsewhere) has nothing to compare with
  }
  for (std::size_t i = 0; i < results.size() && i < expected.size(); ++i) {
    compare_with_ref(op, values, results[i], expected[i], rtol, atol);
  }
}

// Closes a span however the scope is left.
class SpanGuard {
 public:
  explicit SpanGuard(std::int64_t id) : id_(id) {}
  ~SpanGuard() { close_span(id_, has_outputs_ ? &outputs_ : nullptr); }
  SpanGuard(const SpanGuard&) = delete;
  SpanGuard& operator=(const SpanGuard&) = delete;
  SpanGuard(SpanGuard&&) = delete;
  SpanGuard& operator=(SpanGuard&&) = delete;
  void set_outputs(std::vector<Shape> outputs) {
    outputs_ = std::move(outputs);
    has_outputs_ = true;
  }

 private:
  std::int64_t id_;
  std::vector<Shape> outputs_;
  bool has_outputs_ = false;
};

trace::Event op_event(trace::EventKind kind, const Op& op, std::vector<Shape> inputs, DType dtype, Device device,
                      std::uint32_t site) {
  trace::Event event;
  event.kind = kind;
  event.name = op.name();
  event.input_shapes = std::move(inputs);
  event.dtype = std::string(dtype_name(dtype));
  event.device = device_str(device);
  event.call_site = call_site_name(site);
  return event;
}

}  // namespace

std::vector<NDArray> compute_op(const Op& op, const std::vector<NDArray>& values, std::uint32_t call_site) {
  if (suppressed()) return op.compute_outputs(values);
  const unsigned bits = tool_bits.load(std::memory_order_relaxed);
  const bool in_backward = backward_depth > 0;
  std::vector<NDArray> results;
  {
    std::int64_t span = -1;
    if ((bits & kTraceBit) != 0U) {
      const DType dtype = values.empty() ? DType::Float32 : values.front().dtype();
      const Device device = values.empty() ? default_device() : values.front().device();
      span = open_span(op_event(in_backward ? trace::EventKind::GradOp : trace::EventKind::Op, op, shapes_of(values),
                                dtype, device, call_site));
    }
    SpanGuard guard(span);
    results = op.compute_outputs(values);
    if (span >= 0) guard.set_outputs(shapes_of(results));
  }
  // Inside backward the gradients a node returns are checked as a whole (compute_gradient): the ops
  // a gradient is made of may pass through infinities that the final gradient does not keep.
  if ((bits & kAnomalyBit) != 0U && !in_backward) {
    for (const NDArray& result : results) check_forward_finite(op, values, result, call_site);
  }
  if ((bits & kCheckRefBit) != 0U) check_against_ref(op, values, results);
  return results;
}

std::vector<Tensor> compute_gradient(const Op& op, const std::vector<Tensor>& out_grads,
                                     const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                                     const std::vector<bool>& needs_grad, const Tensor& node) {
  if (suppressed()) return op.gradient_outputs(out_grads, outputs, inputs, needs_grad);
  const unsigned bits = tool_bits.load(std::memory_order_relaxed);
  const std::uint32_t site = call_site_of(*node.impl());
  std::vector<Tensor> grads;
  {
    std::int64_t span = -1;
    if ((bits & kTraceBit) != 0U) {
      span = open_span(op_event(trace::EventKind::Backward, op, shapes_of(inputs), node.dtype(), node.device(), site));
    }
    SpanGuard guard(span);
    ++backward_depth;
    try {
      grads = op.gradient_outputs(out_grads, outputs, inputs, needs_grad);
    } catch (...) {
      --backward_depth;
      throw;
    }
    --backward_depth;
    if (span >= 0) guard.set_outputs(shapes_of(grads));
  }
  if ((bits & kAnomalyBit) != 0U) {
    for (std::size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) continue;
      const NonFinite found = count_non_finite(grads[i].value());
      if (!found.any()) continue;
      throw RuntimeError(str(op.name(), ": backward produced NaN/Inf (", non_finite_str(found),
                             ") in the gradient of input ", i, " (shape ", shape_str(grads[i].shape()),
                             "); out_grad shapes ", shapes_str(shapes_of(out_grads)), ", input shapes ",
                             shapes_str(shapes_of(inputs)), ", output shape ", shape_str(node.shape()), "; ",
                             site_clause(site), " (detected by anomaly mode)"));
    }
  }
  return grads;
}

void BackwardScope::begin() {
  if (suppressed()) return;
  active_ = true;
  ++backward_depth;
  if (tool_on(kTraceBit)) {
    trace::Event event;
    event.kind = trace::EventKind::Autograd;
    event.name = "backward";
    span_ = open_span(std::move(event));
  }
}

void BackwardScope::end() noexcept {
  --backward_depth;
  close_span(span_);
}

}  // namespace detail

}  // namespace needle::debug

namespace needle {

AnomalyModeGuard::AnomalyModeGuard() { debug::enable_anomaly_mode(); }
AnomalyModeGuard::~AnomalyModeGuard() { debug::disable_anomaly_mode(); }
bool anomaly_mode_enabled() { return debug::detail::tool_on(debug::detail::kAnomalyBit); }

}  // namespace needle
