// Host memory for the host backends: aligned heap blocks and byte copies.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "backend/ref/ref_kernels.h"
#include "needle/core/error.h"

namespace needle::ref {

namespace {
// A cache line, and enough for the widest SIMD loads a host kernel may use.
constexpr std::size_t kAlignment = 64;
}  // namespace

// Small arrays are the common case in overhead-bound code (scalars, biases, a loop of tiny adds), and glibc
// serves aligned_alloc by carving an aligned piece out of a larger chunk and freeing the rest: several
// times the cost of a plain malloc, which its per-thread cache answers in nanoseconds. So each block is a
// plain malloc of one alignment more than asked, aligned inside, with malloc's own pointer stored just below
// the aligned address for deallocate. A 0-byte request still gets a unique, freeable pointer (an empty
// array is a valid array).
void* allocate(std::size_t nbytes) {
  // Out of memory is a MemoryError; the array layer that asked adds the op and the shape to the message.
  NEEDLE_CHECK(nbytes <= SIZE_MAX - kAlignment, MemoryError, "allocate: ", nbytes, " bytes is too large");
  void* raw = std::malloc(nbytes + kAlignment);
  NEEDLE_CHECK(raw != nullptr, MemoryError, "allocate: out of memory (", nbytes, " bytes requested)");
  // malloc's blocks are 16-byte aligned, so aligning raw + 8 up to 64 moves it by at most 56 bytes: the
  // block holds the stored pointer and nbytes after it.
  void* aligned = static_cast<char*>(raw) + sizeof(void*);
  std::size_t space = nbytes + kAlignment - sizeof(void*);
  aligned = std::align(kAlignment, nbytes, aligned, space);
  if (aligned == nullptr) {  // cannot happen with a conforming malloc; never leak if it does
    std::free(raw);
    throw RuntimeError("allocate: malloc returned a block aligned to less than 8 bytes");
  }
  std::memcpy(static_cast<char*>(aligned) - sizeof(void*), &raw, sizeof(void*));
  return aligned;
}

void deallocate(void* data) noexcept {
  if (data == nullptr) return;
  void* raw = nullptr;
  std::memcpy(&raw, static_cast<char*>(data) - sizeof(void*), sizeof(void*));
  std::free(raw);
}

void copy_bytes(void* dst, const void* src, std::size_t nbytes) {
  // memcpy with a null pointer is undefined even for 0 bytes.
  if (nbytes == 0) return;
  std::memcpy(dst, src, nbytes);
}

}  // namespace needle::ref
