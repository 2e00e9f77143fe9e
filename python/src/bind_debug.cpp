// The debugging tools: tracing, anomaly mode, check_against_ref, memory statistics and the graph as DOT;
// and the call-site hook that names the user's Python line for them.
#include <nanobind/stl/optional.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "needle/backend/cpu.h"
#include "needle/debug/debug.h"
#include "tensor_bindings.h"

namespace needle::python {

namespace {

// Frames inside these folders (the needle package) are skipped when naming the user's line. Written once
// at import and read with the GIL held.
std::string& package_dir() {
  static std::string dir;
  return dir;
}

std::string& working_dir() {
  static std::string dir;
  return dir;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return !prefix.empty() && text.substr(0, prefix.size()) == prefix;
}

// The innermost Python frame outside the needle package, as "file:line" (relative to the working
// directory when below it). "" on threads that do not hold the GIL (data loader workers) or without
// Python frames. Runs only while a debugging tool is on.
std::string python_call_site() {
  if (Py_IsInitialized() == 0 || PyGILState_Check() == 0) return {};
  PyFrameObject* frame = PyEval_GetFrame();  // borrowed
  Py_XINCREF(frame);
  std::string site;
  while (frame != nullptr && site.empty()) {
    PyCodeObject* code = PyFrame_GetCode(frame);  // new reference
    PyObject* filename = PyObject_GetAttrString(reinterpret_cast<PyObject*>(code), "co_filename");
    const char* file = filename != nullptr ? PyUnicode_AsUTF8(filename) : nullptr;
    if (file != nullptr && !starts_with(file, package_dir()) && !starts_with(file, "<frozen")) {
      std::string_view name = file;
      if (starts_with(name, working_dir())) name.remove_prefix(working_dir().size());
      site = str(name, ":", PyFrame_GetLineNumber(frame));
    }
    Py_XDECREF(filename);
    Py_DECREF(code);
    PyFrameObject* back = PyFrame_GetBack(frame);  // new reference
    Py_DECREF(frame);
    frame = back;
  }
  Py_XDECREF(frame);
  if (PyErr_Occurred() != nullptr) PyErr_Clear();  // naming a site must never raise
  return site;
}

// needle.trace()'s engine: a trace::Scope started and stopped by the context manager.
class TraceSession {
 public:
  void start() {
    NEEDLE_CHECK(!scope_.has_value() && !stopped_, RuntimeError, "trace: this trace was already started");
    scope_.emplace();
  }
  void stop() {
    if (!scope_.has_value() || stopped_) return;
    recording_ = scope_->stop();
    scope_.reset();
    stopped_ = true;
  }
  [[nodiscard]] const trace::Recording& recording(const char* what) const {
    NEEDLE_CHECK(stopped_, RuntimeError, "trace.", what, ": the trace is still recording (leave the with block first)");
    return recording_;
  }

 private:
  std::optional<trace::Scope> scope_;
  trace::Recording recording_;
  bool stopped_ = false;
};

nb::list shapes_list(const std::vector<Shape>& shapes) {
  nb::list out;
  for (const Shape& shape : shapes) out.append(to_tuple(shape));
  return out;
}

using EventDict = nb::typed<nb::dict, nb::str, nb::any>;

nb::typed<nb::list, EventDict> events_list(const trace::Recording& recording) {
  nb::typed<nb::list, EventDict> out;
  for (const trace::Event& e : recording.events()) {
    EventDict d;
    d["id"] = e.id;
    d["parent"] = e.parent;
    d["depth"] = e.depth;
    d["thread"] = e.thread;
    d["cat"] = std::string(trace::event_kind_name(e.kind));
    d["name"] = e.name;
    d["device"] = e.device;
    d["dtype"] = e.dtype;
    d["inputs"] = shapes_list(e.input_shapes);
    d["outputs"] = shapes_list(e.output_shapes);
    d["call_site"] = e.call_site;
    d["elements"] = e.elements;
    d["flops"] = e.flops;
    d["bytes"] = e.bytes;
    d["ts"] = e.start_us;
    d["dur"] = e.duration_us;
    d["complete"] = e.complete;
    out.append(d);
  }
  return out;
}

nb::typed<nb::dict, nb::str, int> stats_dict(const debug::MemoryStats& s) {
  nb::typed<nb::dict, nb::str, int> d;
  d["live_bytes"] = s.live_bytes;
  d["cached_bytes"] = s.cached_bytes;
  d["peak_bytes"] = s.peak_bytes;
  d["live_arrays"] = s.live_arrays;
  d["live_tensors"] = s.live_tensors;
  return d;
}

}  // namespace

void bind_debug(nb::module_& m) {
  debug::set_call_site_hook(&python_call_site);
  m.def(
      "debug_set_package_dir",
      [](const std::string& package, const std::string& cwd) {
        package_dir() = package;
        working_dir() = cwd;
      },
      nb::arg("package"), nb::arg("cwd"),
      "Frames under `package` are skipped when naming call sites; paths under `cwd` are shown relative.");

  nb::class_<TraceSession>(m, "TraceSession", "The recorder behind needle.trace(): start(), stop(), then read it.")
      .def(nb::init<>())
      .def("start", &TraceSession::start, "Starts recording (RuntimeError when another trace records).")
      .def("stop", &TraceSession::stop, "Stops recording.")
      .def(
          "events", [](const TraceSession& t) { return events_list(t.recording("events")); },
          "The recorded events as dicts (times in microseconds from the start of the trace).")
      .def(
          "chrome_json", [](const TraceSession& t) { return t.recording("chrome_json").chrome_json(); },
          "The recording in Chrome's trace event format.")
      .def(
          "save", [](const TraceSession& t, const std::string& path) { t.recording("save").save(path); },
          nb::arg("path"), "Writes the Chrome trace JSON to `path`.")
      .def(
          "summary", [](const TraceSession& t) { return t.recording("summary").summary(); },
          "Time per op, backward node and kernel, share of the traced time, GFLOP/s and GB/s.")
      .def(
          "duration_us", [](const TraceSession& t) { return t.recording("duration_us").duration_us(); },
          "Wall time of the trace in microseconds.");
  m.def("trace_is_recording", &trace::is_recording, "True while some trace records.");

  m.def("debug_enable_anomaly_mode", &debug::enable_anomaly_mode, "Turns anomaly mode on (calls nest).");
  m.def("debug_disable_anomaly_mode", &debug::disable_anomaly_mode, "Undoes one debug_enable_anomaly_mode().");
  m.def("anomaly_mode_enabled", &anomaly_mode_enabled, "True while anomaly mode is on.");

  m.def("debug_push_check_against_ref", &debug::push_check_against_ref, nb::arg("rtol"), nb::arg("atol"),
        "Starts checking every op against the ref device with these tolerances (calls nest).");
  m.def("debug_pop_check_against_ref", &debug::pop_check_against_ref, "Undoes one debug_push_check_against_ref().");
  m.def("check_against_ref_enabled", &debug::check_against_ref_enabled, "True while ops are checked against ref.");

  m.def(
      "memory_stats",
      [](const std::optional<Device>& device) { return stats_dict(debug::memory_stats(device_or_default(device))); },
      nb::arg("device") = nb::none(),
      "live_bytes, cached_bytes (0: no caching allocator), peak_bytes, live_arrays (of the device's type) and "
      "live_tensors (all devices).");
  m.def(
      "reset_peak_memory_stats",
      [](const std::optional<Device>& device) { debug::reset_peak_memory_stats(device_or_default(device)); },
      nb::arg("device") = nb::none(), "Restarts the peak at the current live bytes.");
  m.def("empty_cache", &debug::empty_cache, "Releases the allocator's cache; returns the bytes released (always 0).");
  m.def("memory_summary", &debug::memory_summary, "Per-device statistics and live tensors grouped by call site.");
  m.def(
      "memory_by_call_site",
      [] {
        nb::typed<nb::list, nb::typed<nb::tuple, nb::str, int, int>> out;
        for (const debug::SiteMemory& s : debug::memory_by_call_site()) {
          out.append(nb::make_tuple(s.call_site, s.tensors, s.bytes));
        }
        return out;
      },
      "(call site, live tensors, bytes) for tensors created while tracked, largest first.");
  m.def("debug_enable_memory_tracking", &debug::enable_memory_tracking, "Records tensors' call sites (calls nest).");
  m.def("debug_disable_memory_tracking", &debug::disable_memory_tracking, "Undoes one debug_enable_memory_tracking().");

  m.def(
      "measure_fma_peak",
      [](int threads, double seconds) {
        FmaPeak peak;
        {
          const nb::gil_scoped_release no_gil;  // a fraction of a second of pure arithmetic
          peak = measure_fma_peak(threads, seconds);
        }
        nb::typed<nb::dict, nb::str, nb::object> out;
        out["isa"] = peak.isa;
        out["threads"] = peak.threads;
        out["gflops"] = peak.gflops;
        return out;
      },
      nb::arg("threads") = 1, nb::arg("seconds") = 0.2,
      "The float32 FMA peak measured on `threads` threads at once: isa, threads, gflops (all together).");

  m.def("graph_dot", &debug::graph_dot, nb::arg("tensor"), "The autograd graph behind `tensor` as Graphviz DOT.");
}

}  // namespace needle::python
