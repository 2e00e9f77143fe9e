// What the debugging tools record about one tensor. It is kept out of TensorImpl's public definition, and
// TensorImpl holds it through a pointer that stays null unless a tool (trace, anomaly mode,
// check_against_ref, memory tracking) was on when the tensor was created, so the tools cost an ordinary
// tensor one null pointer.
#pragma once

#include <cstdint>

#include "needle/autograd/tensor.h"

namespace needle {

// Created by debug::detail::on_tensor_created, which also registers the tensor with memory tracking: a
// TensorImpl that holds one must be unregistered when it is destroyed.
struct TensorDebugInfo {
  // Where the tensor was created: an id for debug::call_site_name(), 0 when the site was unknown.
  std::uint32_t call_site = 0;
};

// The call site recorded for `impl`, 0 when none was (no tool was on when it was created).
[[nodiscard]] inline std::uint32_t call_site_of(const TensorImpl& impl) {
  return impl.debug_info != nullptr ? impl.debug_info->call_site : 0;
}

}  // namespace needle
