// The caching device allocator (see CachingAllocator in cuda_context.h).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "backend/cuda/cuda_context.h"
#include "needle/core/error.h"

namespace needle::cuda {

namespace {
constexpr std::size_t kSmallStep = 512;
constexpr std::size_t kLargeStep = std::size_t{1} << 20U;
}  // namespace

std::size_t CachingAllocator::rounded_size(std::size_t nbytes) {
  const std::size_t step = nbytes < kLargeStep ? kSmallStep : kLargeStep;
  NEEDLE_CHECK(nbytes <= SIZE_MAX - step, MemoryError, "cuda: allocate: ", nbytes, " bytes is too large");
  // A 0-byte request still gets its own block: an empty array is a valid array with a unique address.
  return nbytes == 0 ? step : (nbytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(std::size_t nbytes) {
  const std::size_t size = rounded_size(nbytes);
  const std::lock_guard<std::mutex> lock(mutex_);
  void* data = nullptr;
  if (auto found = cached_.find(size); found != cached_.end()) {
    data = found->second;
    cached_.erase(found);
    bytes_cached_ -= size;
  } else {
    cudaError_t status = cudaMalloc(&data, size);
    if (status == cudaErrorMemoryAllocation) {
      // Blocks cached for other sizes may be what is missing: give them back and try once more.
      (void)cudaGetLastError();
      free_cached_locked();
      status = cudaMalloc(&data, size);
    }
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      std::size_t free_bytes = 0;
      std::size_t total_bytes = 0;
      (void)cudaMemGetInfo(&free_bytes, &total_bytes);
      (void)cudaGetLastError();
      // Only a refused allocation is a MemoryError (Python's, as on the host); any other status is a
      // broken device or driver.
      NEEDLE_CHECK(status == cudaErrorMemoryAllocation, RuntimeError, "cuda: allocating ", nbytes,
                   " bytes on cuda:", device_, " failed: ", cudaGetErrorString(status));
      throw MemoryError(str("cuda: out of memory allocating ", nbytes, " bytes on cuda:", device_, ": ", free_bytes,
                            " of ", total_bytes, " bytes free on the device, ", bytes_in_use_,
                            " bytes in use by Needle"));
    }
    ++driver_allocations_;
  }
  in_use_.emplace(data, size);
  bytes_in_use_ += size;
  return data;
}

void CachingAllocator::release(void* data) noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto found = in_use_.find(data);
  if (found == in_use_.end()) return;  // not ours: nothing sensible to do in a destructor path
  const std::size_t size = found->second;
  in_use_.erase(found);
  bytes_in_use_ -= size;
  cached_.emplace(size, data);
  bytes_cached_ += size;
}

void CachingAllocator::empty_cache() {
  const std::lock_guard<std::mutex> lock(mutex_);
  free_cached_locked();
}

void CachingAllocator::free_cached_locked() {
  // cudaFree waits for the device, so no queued kernel can still be using a block freed here.
  for (const auto& [size, data] : cached_) (void)cudaFree(data);
  cached_.clear();
  bytes_cached_ = 0;
  (void)cudaGetLastError();
}

std::size_t CachingAllocator::bytes_in_use() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return bytes_in_use_;
}

std::size_t CachingAllocator::bytes_cached() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return bytes_cached_;
}

std::size_t CachingAllocator::driver_allocations() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return driver_allocations_;
}

}  // namespace needle::cuda
