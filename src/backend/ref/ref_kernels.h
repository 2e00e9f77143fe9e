// The `ref` kernels as free functions, so that other host backends can fall back on them for the cases
// they have no faster path for. Each does exactly what the Backend method of the same name documents.
#pragma once

#include <cstddef>
#include <cstdint>

#include "needle/backend/backend.h"

namespace needle::ref {

// Host memory: 64-byte aligned blocks from the C heap.
void* allocate(std::size_t nbytes);
void deallocate(void* data) noexcept;
void copy_bytes(void* dst, const void* src, std::size_t nbytes);

// One plain-loop function per kernel of kernels.def, with the parameters of its Backend virtual (a fused
// kernel gets its layout first). Each trusts its operands: Backend checked them before the call.
#define NEEDLE_PRIMITIVE(name, params, args, outputs, trace_name, flops) void name params;
#define NEEDLE_FUSED(name, params, args, Layout, check, outputs, trace_name, flops) \
  void name(const kernels::Layout& layout, NEEDLE_KERNEL_ARGS params);
#include "needle/backend/kernels.def"
#undef NEEDLE_PRIMITIVE
#undef NEEDLE_FUSED

}  // namespace needle::ref
