// The `cpu` backend's int8 kernels (int8_gemm.cpp): the exact int8 product a @ wᵀ with its output either
// stored as int32 or requantized to float32 as it is produced, and the per-row quantization of float32 rows.
//
// Two product paths. Where the CPU has AVX-512 VNNI and a has enough rows, w is packed a strip of columns
// at a time into the layout vpdpbusd wants and an MR x NR register tile is computed per step (the packed
// path, int8_gemm.cpp explains the layout). Otherwise (few rows, as when decoding one token, or no VNNI)
// the product is a grid of dot products of contiguous rows: a micro-kernel computes an up to 4 x 4 tile of
// sums over the whole depth and the driver turns each tile into its outputs at once. Both are split over
// threads so that every output is computed by one thread, whatever the thread count.
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

// ---- the packed path (AVX-512 VNNI) --------------------------------------------------------------

// Columns of w per packed panel (one zmm of int32 lanes), panels per strip, and rows of a per tile: a tile
// holds kInt8PackedTileRows x kInt8StripPanels accumulators (24 of the 32 zmm registers).
constexpr std::int64_t kInt8PanelCols = 16;
constexpr std::int64_t kInt8StripPanels = 4;
constexpr std::int64_t kInt8StripCols = kInt8PanelCols * kInt8StripPanels;
constexpr std::int64_t kInt8PackedTileRows = 6;

// Products with fewer rows than this take the dot-product tiles even where the packed path exists: packing
// w costs about as much as passing 16 rows of a over it in place (M = 1 .. 15 read w once, unpacked).
constexpr std::int64_t kInt8PackedMinRows = 16;

// Bytes of a packed strip of `cols` columns (1 <= cols <= kInt8StripCols) and depth k.
constexpr std::int64_t int8_packed_strip_bytes(std::int64_t k, std::int64_t cols) {
  return (k + 3) / 4 * ((cols + kInt8PanelCols - 1) / kInt8PanelCols) * 64;
}

// Where the packed micro-kernel writes output (m, n): the exact sum to int_out[m * ld + n] when int_out is
// set, else fma(float(sum), row_scale[m] * col_scale[n], bias[n]) to float_out[m * ld + n] (+ 0 without a
// bias), as ref::requantize.
struct Int8Output {
  std::int32_t* int_out = nullptr;
  float* float_out = nullptr;
  const float* row_scale = nullptr;
  const float* col_scale = nullptr;
  const float* bias = nullptr;
  std::int64_t ld = 0;
};

#if defined(__x86_64__)
// Packs the `cols` rows of w (each k bytes, contiguous) into a strip of int8_packed_strip_bytes(k, cols)
// bytes, laid out as int8_gemm.cpp describes.
void pack_int8_strip_vnni(const std::int8_t* w, std::int64_t k, std::int64_t cols, std::uint8_t* strip);
// Outputs [m0, m0 + rows) x [n0, n0 + cols) (rows <= kInt8PackedTileRows) from rows m0.. of a (each k bytes,
// contiguous, starting at `a`), the strip packed from w's rows n0.. and row_sums[i] = sum over p of
// a[i * k + p].
void int8_packed_tile_vnni(std::int64_t k, const std::int8_t* a, const std::int32_t* row_sums, std::int64_t rows,
                           const std::uint8_t* strip, std::int64_t cols, std::int64_t m0, std::int64_t n0,
                           const Int8Output& output);

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
