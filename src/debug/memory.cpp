// Memory statistics (from Storage's counters) and the registry of tensors created while a tool tracked
// them, which memory_summary groups by call site.
#include "needle/debug/memory.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <unordered_set>

#include "autograd/tensor_debug_info.h"
#include "debug/debug_internal.h"
#include "needle/autograd/tensor.h"
#include "needle/backend/backend.h"
#include "needle/core/storage.h"
#include "needle/debug/call_site.h"

namespace needle::debug {

namespace {

struct Registry {
  std::mutex mutex;
  std::unordered_set<const TensorImpl*> tensors;
};

Registry& registry() {
  static auto* const instance = new Registry();  // never destroyed: tensors may die after main()
  return *instance;
}

std::string bytes_str(std::size_t bytes) {
  std::ostringstream out;
  const auto b = static_cast<double>(bytes);
  if (bytes >= (1U << 20U)) {
    out << std::fixed << std::setprecision(2) << b / (1024.0 * 1024.0) << " MiB";
  } else if (bytes >= (1U << 10U)) {
    out << std::fixed << std::setprecision(1) << b / 1024.0 << " KiB";
  } else {
    out << bytes << " B";
  }
  return out.str();
}

}  // namespace

namespace detail {

void on_tensor_created(TensorImpl& impl) {
  // Allocated before registering: should the insertion throw, the constructor fails with nothing registered.
  impl.debug_info = std::make_unique<TensorDebugInfo>();
  impl.debug_info->call_site = current_call_site();
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  r.tensors.insert(&impl);
}

void on_tensor_destroyed(TensorImpl& impl) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  r.tensors.erase(&impl);
}

}  // namespace detail

MemoryStats memory_stats(Device device) {
  MemoryStats stats;
  stats.live_bytes = Storage::live_bytes(device);
  stats.cached_bytes = device.enabled() ? backend_for(device).cached_bytes() : 0;
  stats.peak_bytes = std::max(Storage::peak_bytes(device), stats.live_bytes);
  stats.live_arrays = Storage::live_count(device);
  stats.live_tensors = TensorImpl::live_count();
  return stats;
}

void reset_peak_memory_stats(Device device) { Storage::reset_peak_bytes(device); }

std::size_t empty_cache() {
  std::size_t released = 0;
  for (const Device device : {cpu_device(), ref_device(), cuda_device()}) {
    if (device.enabled()) released += backend_for(device).release_cache();
  }
  return released;
}

void enable_memory_tracking() { detail::acquire_tool(detail::kTrackMemoryBit); }
void disable_memory_tracking() { detail::release_tool(detail::kTrackMemoryBit); }

std::vector<SiteMemory> memory_by_call_site() {
  std::map<std::uint32_t, std::pair<std::size_t, std::unordered_set<const Storage*>>> groups;
  std::map<std::uint32_t, std::size_t> bytes;
  {
    Registry& r = registry();
    const std::lock_guard lock(r.mutex);
    for (const TensorImpl* impl : r.tensors) {
      const std::uint32_t site = call_site_of(*impl);
      auto& [count, storages] = groups[site];
      ++count;
      const std::shared_ptr<Storage>& storage = impl->value.storage();
      if (storage != nullptr && storages.insert(storage.get()).second) bytes[site] += storage->nbytes();
    }
  }
  std::vector<SiteMemory> out;
  out.reserve(groups.size());
  for (const auto& [site, group] : groups) {
    const std::string name = call_site_name(site);
    out.push_back({name.empty() ? "(unknown)" : name, group.first, bytes[site]});
  }
  std::sort(out.begin(), out.end(), [](const SiteMemory& a, const SiteMemory& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.tensors > b.tensors;
  });
  return out;
}

std::string memory_summary() {
  std::ostringstream out;
  for (const Device device : {cpu_device(), ref_device()}) {
    const MemoryStats s = memory_stats(device);
    out << device << ": " << bytes_str(s.live_bytes) << " live in " << s.live_arrays << " arrays, peak "
        << bytes_str(s.peak_bytes) << ", cached " << bytes_str(s.cached_bytes) << "\n";
  }
  const std::vector<SiteMemory> sites = memory_by_call_site();
  std::size_t tracked = 0;
  for (const SiteMemory& site : sites) tracked += site.tensors;
  const std::size_t live = TensorImpl::live_count();
  out << "live tensors: " << live << " (" << tracked << " created while tracked, by call site below)\n";
  if (!sites.empty()) {
    out << std::right << std::setw(12) << "bytes" << std::setw(9) << "tensors"
        << "  call site\n";
    for (const SiteMemory& site : sites) {
      out << std::setw(12) << bytes_str(site.bytes) << std::setw(9) << site.tensors << "  " << site.call_site << "\n";
    }
  }
  return out.str();
}

}  // namespace needle::debug
