// Host memory for the host backends: aligned heap blocks and byte copies.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "backend/ref/ref_kernels.h"
#include "needle/core/error.h"

namespace needle::ref {

namespace {
// A cache line, and enough for the widest SIMD loads a host kernel may use.
constexpr std::size_t kAlignment = 64;
}  // namespace

void* allocate(std::size_t nbytes) {
  NEEDLE_CHECK(nbytes <= SIZE_MAX - kAlignment, RuntimeError, "allocate: ", nbytes, " bytes is too large");
  // aligned_alloc wants a multiple of the alignment, and a 0-byte request must still get a unique,
  // freeable pointer (an empty array is a valid array).
  const std::size_t rounded = (nbytes == 0 ? kAlignment : (nbytes + kAlignment - 1) / kAlignment * kAlignment);
  void* data = std::aligned_alloc(kAlignment, rounded);
  NEEDLE_CHECK(data != nullptr, RuntimeError, "allocate: out of memory (", nbytes, " bytes requested)");
  return data;
}

void deallocate(void* data) noexcept { std::free(data); }

void copy_bytes(void* dst, const void* src, std::size_t nbytes) {
  // memcpy with a null pointer is undefined even for 0 bytes.
  if (nbytes == 0) return;
  std::memcpy(dst, src, nbytes);
}

}  // namespace needle::ref
