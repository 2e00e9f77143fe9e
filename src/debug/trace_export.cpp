// A finished trace written out: Chrome's trace-event JSON (chrome://tracing, Perfetto) and the text summary.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/json_quote.h"
#include "debug/debug_internal.h"
#include "needle/core/error.h"
#include "needle/debug/trace.h"

namespace needle {

namespace trace {

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
