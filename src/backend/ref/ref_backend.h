// The `ref` backend: plain scalar loops over strided memory, written to be obviously correct. It is
// the baseline every other backend is tested against, not the one to make fast. Every kernel of
// kernels.def, fused ones included, runs the ref:: function of the same name (ref_kernels.h).
#pragma once

#include "backend/ref/ref_kernels.h"
#include "needle/backend/backend.h"

namespace needle {

class RefBackend : public Backend {
 public:
  [[nodiscard]] std::string_view name() const override { return "ref"; }

  void* allocate(std::size_t nbytes) override { return ref::allocate(nbytes); }
  void deallocate(void* data, std::size_t /*nbytes*/) override { ref::deallocate(data); }
  void copy_from_host(void* device_dst, const void* host_src, std::size_t nbytes) override {
    ref::copy_bytes(device_dst, host_src, nbytes);
  }
  void copy_to_host(void* host_dst, const void* device_src, std::size_t nbytes) override {
    ref::copy_bytes(host_dst, device_src, nbytes);
  }

 protected:
#define NEEDLE_PRIMITIVE(name, params, args, outputs, trace_name, flops) \
  void name##_kernel params override { ref::name args; }
#define NEEDLE_FUSED(name, params, args, Layout, check, outputs, trace_name, flops)       \
  void name##_kernel(const kernels::Layout& layout, NEEDLE_KERNEL_ARGS params) override { \
    ref::name(layout, NEEDLE_KERNEL_ARGS args);                                           \
  }
#include "needle/backend/kernels.def"
#undef NEEDLE_PRIMITIVE
#undef NEEDLE_FUSED
};

}  // namespace needle
