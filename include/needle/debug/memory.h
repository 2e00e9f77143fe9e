// Memory accounting: what is allocated per device, the peak, and which call sites created the tensors
// that are alive.
//
// cached_bytes is what the device's backend keeps of freed memory for reuse (the `cpu` backend caches
// blocks of 64 KiB and more, see src/backend/cpu/block_cache.h; `ref` caches nothing); empty_cache()
// returns those blocks to the system.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "needle/core/device.h"

namespace needle::debug {

struct MemoryStats {
  std::size_t live_bytes = 0;    // bytes held by live arrays on devices of this type
  std::size_t cached_bytes = 0;  // freed bytes the backend keeps for reuse
  std::size_t peak_bytes = 0;    // the most live_bytes since reset_peak_memory_stats (or the start)
  std::size_t live_arrays = 0;   // live storage blocks on devices of this type
  std::size_t live_tensors = 0;  // live autograd tensors, all devices together
};

MemoryStats memory_stats(Device device);
// Restarts the peak at the current live bytes.
void reset_peak_memory_stats(Device device);
// Returns the bytes released from the allocator's cache (always 0: there is no cache yet).
std::size_t empty_cache();

// While on (nestable, process-wide), each tensor created records its call site so memory_summary() can
// group live tensors by where they were made. Tracing and anomaly mode record sites too.
void enable_memory_tracking();
void disable_memory_tracking();
class MemoryTrackingGuard {
 public:
  MemoryTrackingGuard() { enable_memory_tracking(); }
  ~MemoryTrackingGuard() { disable_memory_tracking(); }
  MemoryTrackingGuard(const MemoryTrackingGuard&) = delete;
  MemoryTrackingGuard& operator=(const MemoryTrackingGuard&) = delete;
  MemoryTrackingGuard(MemoryTrackingGuard&&) = delete;
  MemoryTrackingGuard& operator=(MemoryTrackingGuard&&) = delete;
};

struct SiteMemory {
  std::string call_site;  // "file:line", or "(unknown)" for tensors created where no site was known
  std::size_t tensors = 0;
  std::size_t bytes = 0;  // bytes of the distinct storages these tensors' values hold
};
// Live tensors that were created while tracking was on, grouped by call site, largest first.
std::vector<SiteMemory> memory_by_call_site();
// A printable table: per-device statistics and memory_by_call_site(), plus how many live tensors were
// created while nothing tracked them.
std::string memory_summary();

}  // namespace needle::debug
