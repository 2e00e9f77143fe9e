// A backend that runs every primitive on another one (through its checked entry points) and composes the
// fused kernels from them (Backend's defaults); a test derives from it and overrides the kernel it wants
// to break or count, then installs it with set_backend_override.
#pragma once

#include <cstddef>
#include <string_view>

#include "needle/backend/backend.h"

namespace needle::testing {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(Backend& real) : real_(real) {}

  void* allocate(std::size_t nbytes) override { return real_.allocate(nbytes); }
  void deallocate(void* data, std::size_t nbytes) override { real_.deallocate(data, nbytes); }
  void copy_from_host(void* dst, const void* src, std::size_t nbytes) override {
    real_.copy_from_host(dst, src, nbytes);
  }
  void copy_to_host(void* dst, const void* src, std::size_t nbytes) override { real_.copy_to_host(dst, src, nbytes); }

 protected:
#define NEEDLE_PRIMITIVE(name, params, args, outputs, trace_name, flops) \
  void name##_kernel params override { real_.name args; }
#include "needle/backend/kernels.def"
#undef NEEDLE_PRIMITIVE

  [[nodiscard]] Backend& real() const { return real_; }

 private:
  Backend& real_;
};

}  // namespace needle::testing
