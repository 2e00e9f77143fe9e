// Checks shared by the array layer's files (array_ops.cpp, fused_ops.cpp): each raises the error a user
// sees, naming the function called.
#pragma once

#include <string_view>
#include <vector>

#include "needle/backend/backend.h"
#include "needle/core/error.h"
#include "needle/core/ndarray.h"

namespace needle::detail {

inline Backend& backend_of(const NDArray& a) { return backend_for(a.device()); }

inline void check_same_device(std::string_view op, const std::vector<const NDArray*>& arrays) {
  for (const NDArray* a : arrays) {
    NEEDLE_CHECK(a->device() == arrays.front()->device(), RuntimeError, op,
                 ": expected all arrays on the same device, got ", arrays.front()->device(), " and ", a->device());
  }
}

}  // namespace needle::detail
