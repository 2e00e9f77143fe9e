#include "backend/cpu/block_cache.h"

#include <bit>

#include "backend/ref/ref_kernels.h"
#include "needle/core/error.h"

namespace needle {

std::size_t BlockCache::size_class(std::size_t nbytes) {
  if (nbytes < kMinCachedBytes) return nbytes;
  const std::size_t step = std::bit_floor(nbytes) / 8;
  return (nbytes + step - 1) / step * step;
}

void* BlockCache::allocate(std::size_t nbytes) {
  if (nbytes < kMinCachedBytes) return ref::allocate(nbytes);
  const std::size_t size = size_class(nbytes);
  {
    const std::lock_guard lock(mutex_);
    const auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= size;
      return block;
    }
  }
  try {
    return ref::allocate(size);
  } catch (const MemoryError&) {
    // Out of memory: blocks of other sizes may be what is missing.
    if (release() == 0) throw;
    return ref::allocate(size);
  }
}

void BlockCache::deallocate(void* data, std::size_t nbytes) noexcept {
  if (nbytes < kMinCachedBytes) return ref::deallocate(data);
  const std::size_t size = size_class(nbytes);
  {
    const std::lock_guard lock(mutex_);
    if (cached_bytes_ + size <= kMaxCachedBytes) {
      try {
        free_[size].push_back(data);
        cached_bytes_ += size;
        return;
      } catch (...) {  // the free list could not grow: give the block back instead
      }
    }
  }
  ref::deallocate(data);
}

std::size_t BlockCache::cached_bytes() const {
  const std::lock_guard lock(mutex_);
  return cached_bytes_;
}

std::size_t BlockCache::release() {
  std::unordered_map<std::size_t, std::vector<void*>> blocks;
  std::size_t released = 0;
  {
    const std::lock_guard lock(mutex_);
    blocks.swap(free_);
    released = cached_bytes_;
    cached_bytes_ = 0;
  }
  for (auto& [size, list] : blocks) {
    for (void* block : list) ref::deallocate(block);
  }
  return released;
}

}  // namespace needle
