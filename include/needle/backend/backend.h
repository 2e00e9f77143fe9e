// The kernel interface: the only thing a new device implements.
//
// The layer above (NDArray and its functions in core/) validates arguments, works out dtypes and
// output shapes, broadcasts inputs with zero strides, allocates outputs, and then calls one of these
// kernels. Kernels therefore get simple, pre-checked work: every operand already has the same shape
// (except where a kernel says otherwise) and the dtype the kernel documents, and each kernel's entry
// point checks that promise once before any backend runs. Kernels must still accept arbitrary strides
// (zero, negative, non-contiguous) on inputs and outputs, and shapes with size-0 or size-1 dimensions.
// The kernels themselves are listed once, in kernels.def.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "needle/backend/layouts.h"
#include "needle/backend/strided_view.h"
#include "needle/core/device.h"
#include "needle/core/dtype.h"
#include "needle/core/kernel_types.h"
#include "needle/core/scalar.h"
#include "needle/core/shape.h"

namespace needle {

// A kernel's argument list from kernels.def without its parentheses: NEEDLE_KERNEL_ARGS (out, in) is out, in.
#define NEEDLE_KERNEL_ARGS(...) __VA_ARGS__

// The optional kernels of kernels.def, for Backend::implements.
enum class OptionalKernel : std::uint8_t {
#define NEEDLE_OPTIONAL(name, ...) name,
#include "needle/backend/kernels.def"
#undef NEEDLE_OPTIONAL
};

class Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  [[nodiscard]] virtual std::string_view name() const = 0;

  // ---- memory -------------------------------------------------------------------------------
  // Returns at least `nbytes` bytes aligned to 64 bytes (a valid unique pointer even for 0 bytes).
  virtual void* allocate(std::size_t nbytes) = 0;
  virtual void deallocate(void* data, std::size_t nbytes) = 0;
  // Byte copies between this device's memory and host memory (same thing for host devices).
  virtual void copy_from_host(void* device_dst, const void* host_src, std::size_t nbytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* device_src, std::size_t nbytes) = 0;
  // Waits until every kernel launched so far has finished (no-op on synchronous devices).
  virtual void synchronize() {}
  // Bytes of freed memory the backend keeps for reuse instead of returning it (0 without a cache), and
  // a way to return them; release_cache returns how many bytes it released.
  [[nodiscard]] virtual std::size_t cached_bytes() const { return 0; }
  virtual std::size_t release_cache() { return 0; }

  // ---- kernels ---------------------------------------------------------------------------------
  // Every kernel is listed once, with what the caller guarantees and what it computes, in kernels.def.
  // Each has two parts. `name(parameters)` is the entry point the layers above call: it checks the
  // operands against the kernel's contract, once for every backend (src/backend/kernel_contracts.cpp),
  // and runs `name_kernel`, the virtual a backend implements, handing a fused or optional kernel the
  // operands' sizes as a layout (layouts.h) so that no kernel checks or measures its operands again.
  // Primitives are pure virtual: every device implements them. Fused kernels are virtual with a default
  // composed from the primitives (src/backend/*_defaults.cpp), so a device that does not override one
  // still runs it, only with more passes over memory; composed_name() runs that default on this backend,
  // so tests can compare it with the backend's own kernel. Optional kernels run only where implements()
  // says so (the array layer composes them elsewhere); their default throws RuntimeError naming the
  // kernel and the backend.
  [[nodiscard]] virtual bool implements(OptionalKernel /*kernel*/) const { return false; }
#define NEEDLE_PRIMITIVE(name, params, args, outputs, trace_name, flops) void name params;
#define NEEDLE_FUSED(name, params, args, Layout, check, outputs, trace_name, flops) \
  void name params;                                                                 \
  void composed_##name params;
#define NEEDLE_OPTIONAL(name, params, args, Layout, check, outputs, trace_name, flops) void name params;
#include "needle/backend/kernels.def"
#undef NEEDLE_PRIMITIVE
#undef NEEDLE_FUSED
#undef NEEDLE_OPTIONAL

 protected:
  // What a backend implements, reached only through the checked entry points above.
#define NEEDLE_PRIMITIVE(name, params, args, outputs, trace_name, flops) virtual void name##_kernel params = 0;
#define NEEDLE_FUSED(name, params, args, Layout, check, outputs, trace_name, flops) \
  virtual void name##_kernel(const kernels::Layout& layout, NEEDLE_KERNEL_ARGS params);
#define NEEDLE_OPTIONAL NEEDLE_FUSED
#include "needle/backend/kernels.def"
#undef NEEDLE_PRIMITIVE
#undef NEEDLE_FUSED
#undef NEEDLE_OPTIONAL
};

// The backend that runs kernels for `device`; throws RuntimeError if that device is not enabled.
Backend& backend_for(Device device);

// The backend compiled in for `device`, ignoring any override below.
Backend& builtin_backend_for(Device device);
// Puts `backend` in front of the built-in backend of every device of type `type` (nullptr removes it) and
// returns the override it replaces. This is the hook of the debugging tools (the tracer wraps each device's
// backend to time its kernels) and of tests (a backend with one deliberately wrong kernel). The override
// must outlive its installation and hand allocate/deallocate to builtin_backend_for(): storage it
// allocates may be freed after it is removed. While none is installed, backend_for pays one load.
Backend* set_backend_override(DeviceType type, Backend* backend);

}  // namespace needle
