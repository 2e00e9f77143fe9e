// Device discovery in a build without NEEDLE_ENABLE_CUDA: no devices, and the reason says why.
#include "needle/backend/cuda.h"

namespace needle {

int cuda_device_count() noexcept { return 0; }

std::string cuda_unavailable_reason() { return "Needle was built without CUDA support (NEEDLE_ENABLE_CUDA=OFF)"; }

CudaMemoryStats cuda_memory_stats(int /*index*/) { return {}; }

void cuda_empty_cache(int /*index*/) {}

}  // namespace needle
