// The `cpu` backend's int8 kernels (int8_gemm.cpp): the exact int8 product a @ wᵀ with its output either
// stored as int32 or requantized to float32 as it is produced, and the per-row quantization of float32 rows.
//
// The product is a grid of dot products of contiguous rows (w is stored as a linear layer's weight, one
// output feature per row, so no operand needs packing). A micro-kernel computes an up to 4 x 4 tile of sums
// over the whole depth, holding one vector accumulator per output, and the driver turns each tile into its
// outputs at once, so no int32 (M, N) temporary exists. The tiles are walked a block of w's rows at a time
// (kept in L2 while every row of a passes over it) and split over threads by rows of the output, or by
// columns when there are fewer rows than columns (M = 1, decoding one token, splits N).
#pragma once

#include <cstdint>

namespace needle::cpu {

// The largest tile of the micro-kernels.
constexpr std::int64_t kInt8TileRows = 4;
constexpr std::int64_t kInt8TileCols = 4;

// sums[i * kInt8TileCols + j] = sum over p < k of a[i * lda + p] * w[j * ldw + p], exactly, for i < rows and
// j < cols (1 <= rows <= kInt8TileRows, 1 <= cols <= kInt8TileCols, k <= kMaxInt8Depth).
using Int8DotKernel = void (*)(std::int64_t k, const std::int8_t* a, std::int64_t lda, const std::int8_t* w,
                               std::int64_t ldw, std::int64_t rows, std::int64_t cols, std::int32_t* sums);

// The rows [first, last) of quantize_rows (kernels.def) over contiguous rows of `cols` values.
using QuantizeRowsKernel = void (*)(const float* x, std::int8_t* values, float* scale, std::int64_t first,
                                    std::int64_t last, std::int64_t cols);

#if defined(__x86_64__)
// AVX-512 VNNI (vpdpbusd) and AVX2 builds (int8_kernels_avx512.cpp, int8_kernels_avx2.cpp); call only where
// the CPU has them.
void int8_dot_vnni(std::int64_t k, const std::int8_t* a, std::int64_t lda, const std::int8_t* w, std::int64_t ldw,
                   std::int64_t rows, std::int64_t cols, std::int32_t* sums);
void int8_dot_avx2(std::int64_t k, const std::int8_t* a, std::int64_t lda, const std::int8_t* w, std::int64_t ldw,
                   std::int64_t rows, std::int64_t cols, std::int32_t* sums);
void quantize_rows_avx512(const float* x, std::int8_t* values, float* scale, std::int64_t first, std::int64_t last,
                          std::int64_t cols);
void quantize_rows_avx2(const float* x, std::int8_t* values, float* scale, std::int64_t first, std::int64_t last,
                        std::int64_t cols);
#endif

// ---- controls for tests and benchmarks ------------------------------------------------------------

// Which build the int8 kernels use. Auto takes the best the CPU has (AVX-512 VNNI, then AVX2, then portable
// C++); the others force one, so that tests reach every build on a machine that has them all. A forced
// build the CPU lacks falls back to Auto's choice (int8_kernel_supported says which are real). Vnni also
// selects the AVX-512 build of quantize_rows.
enum class Int8Kernel { Auto, Vnni, Avx2, Portable };
void set_int8_kernel(Int8Kernel kernel);
bool int8_kernel_supported(Int8Kernel kernel);

}  // namespace needle::cpu
