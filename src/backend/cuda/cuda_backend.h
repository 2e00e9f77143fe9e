// The `cuda` backend as the registry sees it: one Backend per visible device. Plain C++ (no CUDA
// headers), so that the registry compiles with the host compiler alone.
#pragma once

#include "needle/backend/backend.h"

namespace needle {

// The backend of device cuda:`index`, created on first use and never destroyed (like the host backends,
// so storage freed late at exit still finds it). Throws RuntimeError naming the device and the reason
// when no such device is visible.
Backend& cuda_backend(int index);

}  // namespace needle
