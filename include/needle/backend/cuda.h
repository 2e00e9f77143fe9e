// CUDA device discovery. Safe to call in any build and on any machine: without CUDA support compiled in,
// without a driver or without a GPU it reports no devices instead of failing.
#pragma once

#include <cstddef>
#include <string>

namespace needle {

// Number of CUDA devices this process can use; 0 when built without NEEDLE_ENABLE_CUDA or when the
// driver or the GPU is missing. Never throws; the answer is computed once and cached.
int cuda_device_count() noexcept;

// True when at least one CUDA device is usable (cuda_device_count() > 0).
inline bool cuda_available() noexcept { return cuda_device_count() > 0; }

// Why no device is usable, or an empty string when one is: "Needle was built without CUDA support ...",
// or the CUDA runtime's answer to the device query (e.g. "cudaGetDeviceCount: CUDA driver version is
// insufficient for CUDA runtime version"). Part of the error raised when a missing device is asked for.
std::string cuda_unavailable_reason();

// What the caching allocator of device cuda:`index` holds (all zero without CUDA or for a missing device).
struct CudaMemoryStats {
  std::size_t bytes_in_use = 0;        // held by live arrays (rounded block sizes)
  std::size_t bytes_cached = 0;        // freed by arrays, kept for reuse
  std::size_t driver_allocations = 0;  // cudaMalloc calls so far: constant in a training loop's steady state
};
CudaMemoryStats cuda_memory_stats(int index = 0);

// Returns the cached blocks of device cuda:`index` to the driver (no-op without CUDA).
void cuda_empty_cache(int index = 0);

}  // namespace needle
