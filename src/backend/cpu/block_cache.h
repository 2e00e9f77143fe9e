// A cache of freed host memory blocks for the `cpu` backend. A training step frees and allocates the
// same sizes every iteration; handing a freed block back instead of returning it to the C library
// saves the page faults (and zeroing) of fresh pages that a large malloc pays on first touch.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace needle {

class BlockCache {
 public:
  // Blocks smaller than this go straight to malloc, which already keeps small blocks in free lists.
  static constexpr std::size_t kMinCachedBytes = 64 * 1024;
  // Freed blocks beyond this many cached bytes are returned to the system instead of kept. Under
  // AddressSanitizer nothing is kept, so that a use after free is still caught.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr std::size_t kMaxCachedBytes = 0;
#else
  static constexpr std::size_t kMaxCachedBytes = std::size_t{2} << 30;
#endif

  BlockCache() = default;
  ~BlockCache() = default;  // the backend is immortal; blocks still cached at exit are the system's
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  // A 64-byte-aligned block of at least `nbytes`: a cached one of the same size class when there is one.
  void* allocate(std::size_t nbytes);
  // Takes back a block from allocate(nbytes) (the same nbytes).
  void deallocate(void* data, std::size_t nbytes) noexcept;
  // Bytes held in the cache, not in use.
  [[nodiscard]] std::size_t cached_bytes() const;
  // Returns every cached block to the system; returns how many bytes that was.
  std::size_t release();

  // The size a request of `nbytes` is rounded up to: 8 classes per power of two (at most 12.5% more).
  static std::size_t size_class(std::size_t nbytes);

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;  // size class -> cached blocks
  std::size_t cached_bytes_ = 0;
};

}  // namespace needle
