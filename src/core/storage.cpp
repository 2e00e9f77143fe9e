#include "needle/core/storage.h"

#include <array>
#include <atomic>
#include <new>

#include "needle/backend/backend.h"
#include "needle/core/error.h"
#include "needle/core/shape.h"

namespace needle {

namespace {

// Live storage per device type: what memory statistics and leak tests read. Relaxed atomics suffice:
// the counters order nothing, they only have to add up.
struct LiveCounters {
  std::atomic<std::size_t> bytes{0};
  std::atomic<std::size_t> count{0};
  std::atomic<std::size_t> peak{0};
};
constexpr std::size_t kDeviceTypes = 3;

LiveCounters& counters(Device device) {
  static std::array<LiveCounters, kDeviceTypes> per_type;
  return per_type.at(static_cast<std::size_t>(device.type));
}

}  // namespace

std::shared_ptr<Storage> Storage::allocate(Device device, std::size_t nbytes) {
  Backend& backend = backend_for(device);  // throws for a disabled device
  void* data = nullptr;
  try {
    data = backend.allocate(nbytes);
  } catch (const std::bad_alloc&) {  // a backend allocating with operator new: make it Needle's error
    throw MemoryError(str("allocate: out of memory (", nbytes, " bytes requested)"));
  }
  LiveCounters& live = counters(device);
  const std::size_t now_live = live.bytes.fetch_add(nbytes, std::memory_order_relaxed) + nbytes;
  live.count.fetch_add(1, std::memory_order_relaxed);
  // Raise the peak unless another thread already raised it further.
  std::size_t peak = live.peak.load(std::memory_order_relaxed);
  while (now_live > peak && !live.peak.compare_exchange_weak(peak, now_live, std::memory_order_relaxed)) {
  }
  // Ids start at 1 and are never reused (2^64 allocations will not happen).
  static std::atomic<std::uint64_t> next_id{1};
  const std::uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
  // The constructor is private, so std::make_shared cannot be used.
  return std::shared_ptr<Storage>(new Storage(device, data, nbytes, id));
}

Storage::~Storage() {
  backend_for(device_).deallocate(data_, nbytes_);
  LiveCounters& live = counters(device_);
  live.bytes.fetch_sub(nbytes_, std::memory_order_relaxed);
  live.count.fetch_sub(1, std::memory_order_relaxed);
}

std::size_t Storage::live_bytes(Device device) { return counters(device).bytes.load(std::memory_order_relaxed); }

std::size_t Storage::live_count(Device device) { return counters(device).count.load(std::memory_order_relaxed); }

std::size_t Storage::peak_bytes(Device device) { return counters(device).peak.load(std::memory_order_relaxed); }

void Storage::reset_peak_bytes(Device device) {
  LiveCounters& live = counters(device);
  live.peak.store(live.bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

}  // namespace needle
