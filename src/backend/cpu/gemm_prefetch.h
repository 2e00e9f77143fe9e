// A prefetch shared by the x86 GEMM micro-kernels (gemm_kernels_avx2.cpp, gemm_kernels_avx512.cpp).
#pragma once
#if defined(__x86_64__)

#include <xmmintrin.h>  // _mm_prefetch: SSE, so callable from code compiled for any x86-64 target

#include <cstddef>
#include <cstdint>

namespace needle::cpu {

// Starts fetching the tile of C a micro-kernel will write (rows x cols elements of `itemsize` bytes,
// element (i, j) at c + (i * rsc + j * csc) * itemsize), so that its strided rows arrive while the kernel
// computes. Touches the first and the last element of each row: a tile row spans at most two cache
// lines of a row-major C.
inline void prefetch_tile(const void* c, std::int64_t rsc, std::int64_t csc, std::int64_t rows, std::int64_t cols,
                          std::size_t itemsize) {
  const auto* base = static_cast<const char*>(c);
  const auto row_bytes = static_cast<std::ptrdiff_t>(rsc) * static_cast<std::ptrdiff_t>(itemsize);
  const auto last = static_cast<std::ptrdiff_t>((cols - 1) * csc) * static_cast<std::ptrdiff_t>(itemsize);
  for (std::int64_t i = 0; i < rows; ++i) {
    _mm_prefetch(base + i * row_bytes, _MM_HINT_T0);
    _mm_prefetch(base + i * row_bytes + last, _MM_HINT_T0);
  }
}

}  // namespace needle::cpu

#endif  // defined(__x86_64__)
