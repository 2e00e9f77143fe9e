// The `cpu` backend's floating-point matrix product: C = A @ B for float32 and float64 with any strides.
//
// The layout follows BLIS. B is cut into KC x NC blocks (kept in L3) and packed into NR-wide column
// panels; A into MC x KC blocks (kept in L2) packed into MR-high row panels; a micro-kernel multiplies one
// A panel by one B panel into an MR x NR tile of C held in registers. Packing reads the operands through
// their strides, so transposed, stepped, flipped and broadcast views cost no more than a copy into the
// panels and are never materialised. Skinny products skip part of that work: with few rows of A the rows
// of B are read in place (no B packing), or, when B's columns are contiguous, each output is a dot
// product of two contiguous runs; with at most NR columns (float, AVX-512) nothing is packed and the in-place
// tile reads A and B where they lie, and with at most four NR-wide strips (float, AVX2) A is read in place;
// a product with one output column (or row) is a set of dot products. Large products
// are split over threads by rows or columns of C, so each element of C is computed by exactly one thread in the same
// order whatever the thread count. A small C from a long k (a convolution's weight gradient) is split along k
// instead, into chunks fixed by k alone, whose partial products are added in order.
#pragma once

#include <cstdint>

namespace needle::cpu {

// C (m x n) = A (m x k) @ B (k x n); element (i, j) of X is x[i * rsx + j * csx]. C is only written (its
// old contents, NaN included, never matter); k == 0 gives zeros. C must not overlap A or B.
template <typename T>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t rsa, std::int64_t csa, const T* b,
          std::int64_t rsb, std::int64_t csb, T* c, std::int64_t rsc, std::int64_t csc);

extern template void gemm<float>(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, std::int64_t,
                                 const float*, std::int64_t, std::int64_t, float*, std::int64_t, std::int64_t);
extern template void gemm<double>(std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t, std::int64_t,
                                  const double*, std::int64_t, std::int64_t, double*, std::int64_t, std::int64_t);

// ---- micro-kernels --------------------------------------------------------------------------------

// Register blocks (MR x NR) of the micro-kernels. The packed panels take the shape of the kernel that
// reads them, so the shape is chosen at run time together with the kernel. The AVX2 tile (also used by
// the portable kernel) fills 12 of the 16 ymm registers with C; the AVX-512 tile fills 28 of the 32 zmm
// registers (two vectors per row), which leaves room for the two B vectors, and each B vector loaded
// then feeds MR FMAs.
template <typename T>
struct Avx2Tile;
template <>
struct Avx2Tile<float> {
  static constexpr std::int64_t mr = 6;
  static constexpr std::int64_t nr = 16;  // two 8-float ymm registers
};
template <>
struct Avx2Tile<double> {
  static constexpr std::int64_t mr = 6;
  static constexpr std::int64_t nr = 8;  // two 4-double ymm registers
};
template <typename T>
struct Avx512Tile;
template <>
struct Avx512Tile<float> {
  static constexpr std::int64_t mr = 14;
  static constexpr std::int64_t nr = 32;  // two 16-float zmm registers
};
template <>
struct Avx512Tile<double> {
  static constexpr std::int64_t mr = 14;
  static constexpr std::int64_t nr = 16;  // two 8-double zmm registers
};

// tile = sum over p < kc of a[p * mr + i] * b[p * ldb + j] (i < mr, j < nr of the kernel's tile: a packed
// A panel, and kc rows of nr readable values of B), accumulated in p order from zero; then the top-left
// rows x cols of the tile is stored to c[i * rsc + j * csc], or added to it when `accumulate`.
// The AVX-512 kernels read only the first `cols` values of each row of B when cols <= NR / 2 (see
// GemmPlan::in_place_cols), so a B that narrow need not be padded to NR.
template <typename T>
using MicroKernel = void (*)(std::int64_t kc, const T* a, const T* b, std::int64_t ldb, T* c, std::int64_t rsc,
                             std::int64_t csc, std::int64_t rows, std::int64_t cols, bool accumulate);

// Dot-product tile for few rows of A against a B whose columns are contiguous (A @ Wᵀ with a row-major W):
// c[i * rsc + j * csc] = sum over p < k of a[i * rsa + p] * b[j * csb + p] for i < rows <= 3 and
// j < cols <= 4, reading both operands in place.
template <typename T>
using DotKernel = void (*)(std::int64_t k, const T* a, std::int64_t rsa, const T* b, std::int64_t csb, T* c,
                           std::int64_t rsc, std::int64_t csc, std::int64_t rows, std::int64_t cols);
constexpr std::int64_t kDotRows = 3;
constexpr std::int64_t kDotCols = 4;

// One row of A times a B with contiguous rows (x @ W with a row-major W: a linear layer's forward for one
// sample, the decode step of generation): c[j * csc] = sum over p < k of a[p * csa] * b[p * rsb + j] for
// j < cols, accumulated in p order. B is streamed row by row, four rows per pass over a block of c held in
// cache, so it is read once, sequentially: the product is bound by memory bandwidth, as it should be.
template <typename T>
using RowKernel = void (*)(std::int64_t k, const T* a, std::int64_t csa, const T* b, std::int64_t rsb, T* c,
                           std::int64_t csc, std::int64_t cols);
// Columns of C per block of the row kernel (and per work item of its thread split): 32 KiB of float.
constexpr std::int64_t kRowBlockCols = 8192;

// The row kernel's loops, shared by the portable build (gemm.cpp) and the AVX2 + FMA build
// (gemm_kernels_avx2.cpp), which inlines them into a function compiled for those instructions.
template <typename T>
[[gnu::always_inline]] inline void row_times_matrix(std::int64_t k, const T* a, std::int64_t csa, const T* b,
                                                    std::int64_t rsb, T* c, std::int64_t csc, std::int64_t cols,
                                                    T* block) {
  for (std::int64_t j = 0; j < cols; ++j) block[j] = T(0);
  std::int64_t p = 0;
  for (; p + 4 <= k; p += 4) {
    const T a0 = a[p * csa];
    const T a1 = a[(p + 1) * csa];
    const T a2 = a[(p + 2) * csa];
    const T a3 = a[(p + 3) * csa];
    const T* b0 = b + p * rsb;
    const T* b1 = b0 + rsb;
    const T* b2 = b1 + rsb;
    const T* b3 = b2 + rsb;
    for (std::int64_t j = 0; j < cols; ++j) block[j] = block[j] + a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
  }
  for (; p < k; ++p) {
    const T ap = a[p * csa];
    const T* bp = b + p * rsb;
    for (std::int64_t j = 0; j < cols; ++j) block[j] = block[j] + ap * bp[j];
  }
  for (std::int64_t j = 0; j < cols; ++j) c[j * csc] = block[j];
}

#if defined(__x86_64__)
// AVX2 + FMA kernels (gemm_kernels_avx2.cpp), on Avx2Tile panels; call only where the CPU supports both.
void dot_kernel_avx2(std::int64_t k, const float* a, std::int64_t rsa, const float* b, std::int64_t csb, float* c,
                     std::int64_t rsc, std::int64_t csc, std::int64_t rows, std::int64_t cols);
void dot_kernel_avx2(std::int64_t k, const double* a, std::int64_t rsa, const double* b, std::int64_t csb, double* c,
                     std::int64_t rsc, std::int64_t csc, std::int64_t rows, std::int64_t cols);
void row_kernel_avx2(std::int64_t k, const float* a, std::int64_t csa, const float* b, std::int64_t rsb, float* c,
                     std::int64_t csc, std::int64_t cols);
void row_kernel_avx2(std::int64_t k, const double* a, std::int64_t csa, const double* b, std::int64_t rsb, double* c,
                     std::int64_t csc, std::int64_t cols);
void micro_kernel_avx2(std::int64_t kc, const float* a, const float* b, std::int64_t ldb, float* c, std::int64_t rsc,
                       std::int64_t csc, std::int64_t rows, std::int64_t cols, bool accumulate);
void micro_kernel_avx2(std::int64_t kc, const double* a, const double* b, std::int64_t ldb, double* c, std::int64_t rsc,
                       std::int64_t csc, std::int64_t rows, std::int64_t cols, bool accumulate);
// Packs one whole Avx2Tile<float> panel of a row-major A (element (i, p) at a[i * rs + p]):
// dst[p * mr + i] = a[i * rs + p] for i < mr, p < kc.
void pack_a_rows_avx2(std::int64_t kc, const float* a, std::int64_t rs, float* dst);
// AVX-512F kernels (gemm_kernels_avx512.cpp), on Avx512Tile panels; call only where the CPU has AVX-512F.
void micro_kernel_avx512(std::int64_t kc, const float* a, const float* b, std::int64_t ldb, float* c, std::int64_t rsc,
                         std::int64_t csc, std::int64_t rows, std::int64_t cols, bool accumulate);
void micro_kernel_avx512(std::int64_t kc, const double* a, const double* b, std::int64_t ldb, double* c,
                         std::int64_t rsc, std::int64_t csc, std::int64_t rows, std::int64_t cols, bool accumulate);
// An Avx512Tile<float> tile with both operands read where they lie (a convolution's image rows in
// src/backend/cpu/conv.cpp, narrow products in gemm_narrow): c[i * rsc + j] (i < rows <= 14,
// j < cols <= 32) = the sum over s < segments and p < kc, in that order, of
// a[s * seg_a + i * rsa + p * csa] * b[s * seg_b + p * ldb + j], stored, or added to c when `accumulate`.
// Only `cols` values of each row of B are read, but all 14 rows of A are: rows past `rows` must be readable
// (their values are unused). When cols <= 16, a second tile over the same B is computed alongside: its A at
// a + second_a, its results at c + second_c, second_rows of its rows stored (none when 0; its A is then
// not read).
struct InPlaceTile {
  std::int64_t segments, seg_a, seg_b, kc;
  const float* a;
  std::int64_t rsa, csa;
  const float* b;
  std::int64_t ldb;
  float* c;
  std::int64_t rsc, rows, cols;
  bool accumulate;
  std::int64_t second_a, second_c, second_rows;
};
void in_place_tile_avx512(const InPlaceTile& tile);
// The same sum on an Avx2Tile<float> tile (rows <= 6, cols <= 16; gemm_narrow_avx2): all 16 values of each
// row of B are read (a narrower strip must be padded), but only the first `rows` rows of A. The second tile is
// not computed: second_rows must be 0.
void in_place_tile_avx2(const InPlaceTile& tile);
// Packs one whole Avx512Tile<float> panel of a row-major A (element (i, p) at a[i * rs + p]):
// dst[p * mr + i] = a[i * rs + p] for i < mr, p < kc.
void pack_a_rows_avx512(std::int64_t kc, const float* a, std::int64_t rs, float* dst);
#endif

// ---- controls for tests and benchmarks ------------------------------------------------------------

// Which micro-kernel gemm uses. Auto takes the best the CPU supports (AVX-512, then AVX2 + FMA, then the
// portable C++ one); the others force one, so that tests and benchmarks reach every kernel on a machine
// that has them all. A forced kernel the CPU lacks falls back to Auto's choice (gemm_supports says which
// are real). The dot-product paths use AVX2 under every choice but Portable.
enum class GemmKernel { Auto, Avx512, Avx2, Portable };
void set_gemm_kernel(GemmKernel kernel);
// Whether this machine can run `kernel` (Auto and Portable always can).
bool gemm_supports(GemmKernel kernel);
// Whether Auto picks the AVX2 + FMA kernels (or better) on this machine.
bool gemm_has_avx2();
// Whether products now run the AVX-512 kernels (the CPU has them and no other kernel is forced).
bool gemm_uses_avx512();

// Overrides the MC, KC, NC cache blocks (0 restores the kernel's defaults), so tests can cross every block
// edge with small matrices. MC and NC are rounded down to whole panels of the kernel in use (at least one).
void set_gemm_blocking(std::int64_t mc, std::int64_t kc, std::int64_t nc);

}  // namespace needle::cpu
