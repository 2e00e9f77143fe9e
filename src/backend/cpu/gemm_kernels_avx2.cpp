// AVX2 + FMA micro-kernels of the cpu GEMM: a 6 x 16 float tile and a 6 x 8 double tile, each held in
// twelve 256-bit accumulators. Per step of k the kernel loads two vectors of the B panel, broadcasts the
// six values of the A panel and issues twelve FMAs: 12 of the 16 vector registers hold C, which is what
// keeps both FMA units busy without spilling. These functions are compiled for AVX2 + FMA whatever the
// project's flags say and are only called after a run-time check of the CPU (gemm.cpp).
#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backend/cpu/gemm.h"
#include "backend/cpu/gemm_prefetch.h"

namespace needle::cpu {

namespace {

// Writes the first rows x cols of a row-major tile (ld elements per row) to C.
template <typename T>
void store_tile(const T* tile, std::int64_t ld, T* c, std::int64_t rsc, std::int64_t csc, std::int64_t rows,
                std::int64_t cols, bool accumulate) {
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) {
      T& out = c[i * rsc + j * csc];
      out = accumulate ? out + tile[i * ld + j] : tile[i * ld + j];
    }
  }
}

}  // namespace

// The row kernel (gemm.h's row_times_matrix) compiled for AVX2 + FMA: the loops vectorise over columns.
__attribute__((target("avx2,fma"))) void row_kernel_avx2(std::int64_t k, const float* a, std::int64_t csa,
                                                         const float* b, std::int64_t rsb, float* c, std::int64_t csc,
                                                         std::int64_t cols) {
  alignas(64) float block[kRowBlockCols];
  row_times_matrix(k, a, csa, b, rsb, c, csc, cols, block);
}

__attribute__((target("avx2,fma"))) void row_kernel_avx2(std::int64_t k, const double* a, std::int64_t csa,
                                                         const double* b, std::int64_t rsb, double* c, std::int64_t csc,
                                                         std::int64_t cols) {
  alignas(64) double block[kRowBlockCols];
  row_times_matrix(k, a, csa, b, rsb, c, csc, cols, block);
}

// One row of the tile: acc_r0/acc_r1 += a[r] * (b0, b1).
#define NEEDLE_FMA_ROW_PS(r)                        \
  {                                                 \
    const __m256 ar = _mm256_broadcast_ss(a + (r)); \
    c##r##0 = _mm256_fmadd_ps(ar, b0, c##r##0);     \
    c##r##1 = _mm256_fmadd_ps(ar, b1, c##r##1);     \
  }

#define NEEDLE_STORE_ROW_PS(r)                                    \
  {                                                               \
    float* row = c + (r)*rsc;                                     \
    if (accumulate) {                                             \
      c##r##0 = _mm256_add_ps(_mm256_loadu_ps(row), c##r##0);     \
      c##r##1 = _mm256_add_ps(_mm256_loadu_ps(row + 8), c##r##1); \
    }                                                             \
    _mm256_storeu_ps(row, c##r##0);                               \
    _mm256_storeu_ps(row + 8, c##r##1);                           \
  }

__attribute__((target("avx2,fma"))) void micro_kernel_avx2(std::int64_t kc, const float* a, const float* b,
                                                           std::int64_t ldb, float* c, std::int64_t rsc,
                                                           std::int64_t csc, std::int64_t rows, std::int64_t cols,
                                                           bool accumulate) {
  prefetch_tile(c, rsc, csc, rows, cols, sizeof(float));
  __m256 c00 = _mm256_setzero_ps();
  __m256 c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps();
  __m256 c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps();
  __m256 c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps();
  __m256 c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps();
  __m256 c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps();
  __m256 c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (std::int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    NEEDLE_FMA_ROW_PS(0)
    NEEDLE_FMA_ROW_PS(1)
    NEEDLE_FMA_ROW_PS(2)
    NEEDLE_FMA_ROW_PS(3)
    NEEDLE_FMA_ROW_PS(4)
    NEEDLE_FMA_ROW_PS(5)
    a += 6;
    b += ldb;
  }
  if (rows == 6 && cols == 16 && csc == 1) {
    NEEDLE_STORE_ROW_PS(0)
    NEEDLE_STORE_ROW_PS(1)
    NEEDLE_STORE_ROW_PS(2)
    NEEDLE_STORE_ROW_PS(3)
    NEEDLE_STORE_ROW_PS(4)
    NEEDLE_STORE_ROW_PS(5)
    return;
  }
  alignas(32) float tile[6 * 16];
  _mm256_store_ps(tile + 0, c00);
  _mm256_store_ps(tile + 8, c01);
  _mm256_store_ps(tile + 16, c10);
  _mm256_store_ps(tile + 24, c11);
  _mm256_store_ps(tile + 32, c20);
  _mm256_store_ps(tile + 40, c21);
  _mm256_store_ps(tile + 48, c30);
  _mm256_store_ps(tile + 56, c31);
  _mm256_store_ps(tile + 64, c40);
  _mm256_store_ps(tile + 72, c41);
  _mm256_store_ps(tile + 80, c50);
  _mm256_store_ps(tile + 88, c51);
  store_tile(tile, 16, c, rsc, csc, rows, cols, accumulate);
}

// One row of the in-place tile: acc_r0/acc_r1 += a_r[q] * (b0, b1).
#define NEEDLE_FMA_ROW_IN_PLACE(r)                   \
  {                                                  \
    const __m256 ar = _mm256_broadcast_ss(a##r + q); \
    c##r##0 = _mm256_fmadd_ps(ar, b0, c##r##0);      \
    c##r##1 = _mm256_fmadd_ps(ar, b1, c##r##1);      \
  }

__attribute__((target("avx2,fma"))) void in_place_tile_avx2(const InPlaceTile& tile) {
  constexpr std::int64_t mr = Avx2Tile<float>::mr;
  prefetch_tile(tile.c, tile.rsc, 1, tile.rows, tile.cols, sizeof(float));
  // Rows past `rows` read the last real row again (their sums are dropped): no row of A past the tile's is
  // touched, so a product's last, partial tile needs no padded copy. (Each offset from the one before, by a
  // conditional move: a loop of products here costs more than a short product's arithmetic.)
  std::int64_t row_offset[mr];
  row_offset[0] = 0;
  for (std::int64_t i = 1; i < mr; ++i)
    row_offset[i] = i < tile.rows ? row_offset[i - 1] + tile.rsa : row_offset[i - 1];
  __m256 c00 = _mm256_setzero_ps();
  __m256 c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps();
  __m256 c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps();
  __m256 c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps();
  __m256 c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps();
  __m256 c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps();
  __m256 c51 = _mm256_setzero_ps();
  for (std::int64_t s = 0; s < tile.segments; ++s) {
    const float* a = tile.a + s * tile.seg_a;
    const float* a0 = a + row_offset[0];
    const float* a1 = a + row_offset[1];
    const float* a2 = a + row_offset[2];
    const float* a3 = a + row_offset[3];
    const float* a4 = a + row_offset[4];
    const float* a5 = a + row_offset[5];
    // Six row pointers and one running offset q = p * csa: each broadcast then addresses a_r + q directly.
    // Left to itself GCC folds the pointers back into a + row_offset[r] and spends an addition per row and
    // step to rebuild each address (measured: 75-84 instead of 94-100 GFLOP/s on a Zen 3 core); the empty asm
    // makes the pointers opaque values it must keep.
    asm("" : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a4), "+r"(a5));
    const float* b = tile.b + s * tile.seg_b;
    std::int64_t q = 0;
#pragma GCC unroll 4
    for (std::int64_t p = 0; p < tile.kc; ++p) {
      const __m256 b0 = _mm256_loadu_ps(b);
      const __m256 b1 = _mm256_loadu_ps(b + 8);
      NEEDLE_FMA_ROW_IN_PLACE(0)
      NEEDLE_FMA_ROW_IN_PLACE(1)
      NEEDLE_FMA_ROW_IN_PLACE(2)
      NEEDLE_FMA_ROW_IN_PLACE(3)
      NEEDLE_FMA_ROW_IN_PLACE(4)
      NEEDLE_FMA_ROW_IN_PLACE(5)
      q += tile.csa;
      b += tile.ldb;
    }
  }
  float* const c = tile.c;
  const std::int64_t rsc = tile.rsc;
  const bool accumulate = tile.accumulate;
  if (tile.rows == mr && tile.cols == Avx2Tile<float>::nr) {
    NEEDLE_STORE_ROW_PS(0)
    NEEDLE_STORE_ROW_PS(1)
    NEEDLE_STORE_ROW_PS(2)
    NEEDLE_STORE_ROW_PS(3)
    NEEDLE_STORE_ROW_PS(4)
    NEEDLE_STORE_ROW_PS(5)
    return;
  }
  alignas(32) float result[6 * 16];
  _mm256_store_ps(result + 0, c00);
  _mm256_store_ps(result + 8, c01);
  _mm256_store_ps(result + 16, c10);
  _mm256_store_ps(result + 24, c11);
  _mm256_store_ps(result + 32, c20);
  _mm256_store_ps(result + 40, c21);
  _mm256_store_ps(result + 48, c30);
  _mm256_store_ps(result + 56, c31);
  _mm256_store_ps(result + 64, c40);
  _mm256_store_ps(result + 72, c41);
  _mm256_store_ps(result + 80, c50);
  _mm256_store_ps(result + 88, c51);
  store_tile(result, 16, c, rsc, std::int64_t{1}, tile.rows, tile.cols, accumulate);
}

__attribute__((target("avx2,fma"))) void pack_a_rows_avx2(std::int64_t kc, const float* a, std::int64_t rs,
                                                          float* dst) {
  constexpr std::int64_t mr = Avx2Tile<float>::mr;
  static_assert(mr == 6);
  std::int64_t p = 0;
  // Eight steps of p at a time: one vector from each of the six rows, transposed 8 x 8 in registers (the two
  // missing rows are don't-cares), so that step j becomes column j's first six values. Each column is stored
  // as a whole vector whose last two values the next column's store overwrites; the last one of the eight is
  // stored as 4 + 2 values, so nothing is written past the panel.
  for (; p + 8 <= kc; p += 8) {
    const __m256 r0 = _mm256_loadu_ps(a + p);
    const __m256 r1 = _mm256_loadu_ps(a + rs + p);
    const __m256 r2 = _mm256_loadu_ps(a + 2 * rs + p);
    const __m256 r3 = _mm256_loadu_ps(a + 3 * rs + p);
    const __m256 r4 = _mm256_loadu_ps(a + 4 * rs + p);
    const __m256 r5 = _mm256_loadu_ps(a + 5 * rs + p);
    // t: rows side by side in pairs; s: rows 0-3 (s0..s3) and 4-5 (s4..s7) at columns (j, j + 4) per lane.
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1);
    const __m256 t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3);
    const __m256 t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5);
    const __m256 t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44);
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44);
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t4, 0x44);
    const __m256 s5 = _mm256_shuffle_ps(t4, t4, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t5, 0x44);
    const __m256 s7 = _mm256_shuffle_ps(t5, t5, 0xEE);
    float* out = dst + p * mr;
    _mm256_storeu_ps(out + 0 * mr, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(out + 1 * mr, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(out + 2 * mr, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(out + 3 * mr, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(out + 4 * mr, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(out + 5 * mr, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(out + 6 * mr, _mm256_permute2f128_ps(s2, s6, 0x31));
    const __m256 last = _mm256_permute2f128_ps(s3, s7, 0x31);
    _mm_storeu_ps(out + 7 * mr, _mm256_castps256_ps128(last));
    _mm_storel_pi(reinterpret_cast<__m64*>(out + 7 * mr + 4), _mm256_extractf128_ps(last, 1));
  }
  for (; p < kc; ++p) {
    for (std::int64_t i = 0; i < mr; ++i) dst[p * mr + i] = a[i * rs + p];
  }
}

#define NEEDLE_FMA_ROW_PD(r)                         \
  {                                                  \
    const __m256d ar = _mm256_broadcast_sd(a + (r)); \
    c##r##0 = _mm256_fmadd_pd(ar, b0, c##r##0);      \
    c##r##1 = _mm256_fmadd_pd(ar, b1, c##r##1);      \
  }

#define NEEDLE_STORE_ROW_PD(r)                                    \
  {                                                               \
    double* row = c + (r)*rsc;                                    \
    if (accumulate) {                                             \
      c##r##0 = _mm256_add_pd(_mm256_loadu_pd(row), c##r##0);     \
      c##r##1 = _mm256_add_pd(_mm256_loadu_pd(row + 4), c##r##1); \
    }                                                             \
    _mm256_storeu_pd(row, c##r##0);                               \
    _mm256_storeu_pd(row + 4, c##r##1);                           \
  }

__attribute__((target("avx2,fma"))) void micro_kernel_avx2(std::int64_t kc, const double* a, const double* b,
                                                           std::int64_t ldb, double* c, std::int64_t rsc,
                                                           std::int64_t csc, std::int64_t rows, std::int64_t cols,
                                                           bool accumulate) {
  prefetch_tile(c, rsc, csc, rows, cols, sizeof(double));
  __m256d c00 = _mm256_setzero_pd();
  __m256d c01 = _mm256_setzero_pd();
  __m256d c10 = _mm256_setzero_pd();
  __m256d c11 = _mm256_setzero_pd();
  __m256d c20 = _mm256_setzero_pd();
  __m256d c21 = _mm256_setzero_pd();
  __m256d c30 = _mm256_setzero_pd();
  __m256d c31 = _mm256_setzero_pd();
  __m256d c40 = _mm256_setzero_pd();
  __m256d c41 = _mm256_setzero_pd();
  __m256d c50 = _mm256_setzero_pd();
  __m256d c51 = _mm256_setzero_pd();
#pragma GCC unroll 4
  for (std::int64_t p = 0; p < kc; ++p) {
    const __m256d b0 = _mm256_loadu_pd(b);
    const __m256d b1 = _mm256_loadu_pd(b + 4);
    NEEDLE_FMA_ROW_PD(0)
    NEEDLE_FMA_ROW_PD(1)
    NEEDLE_FMA_ROW_PD(2)
    NEEDLE_FMA_ROW_PD(3)
    NEEDLE_FMA_ROW_PD(4)
    NEEDLE_FMA_ROW_PD(5)
    a += 6;
    b += ldb;
  }
  if (rows == 6 && cols == 8 && csc == 1) {
    NEEDLE_STORE_ROW_PD(0)
    NEEDLE_STORE_ROW_PD(1)
    NEEDLE_STORE_ROW_PD(2)
    NEEDLE_STORE_ROW_PD(3)
    NEEDLE_STORE_ROW_PD(4)
    NEEDLE_STORE_ROW_PD(5)
    return;
  }
  alignas(32) double tile[6 * 8];
  _mm256_store_pd(tile + 0, c00);
  _mm256_store_pd(tile + 4, c01);
  _mm256_store_pd(tile + 8, c10);
  _mm256_store_pd(tile + 12, c11);
  _mm256_store_pd(tile + 16, c20);
  _mm256_store_pd(tile + 20, c21);
  _mm256_store_pd(tile + 24, c30);
  _mm256_store_pd(tile + 28, c31);
  _mm256_store_pd(tile + 32, c40);
  _mm256_store_pd(tile + 36, c41);
  _mm256_store_pd(tile + 40, c50);
  _mm256_store_pd(tile + 44, c51);
  store_tile(tile, 8, c, rsc, csc, rows, cols, accumulate);
}

namespace {

__attribute__((target("avx2,fma"))) float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_hadd_ps(sum, sum);
  sum = _mm_hadd_ps(sum, sum);
  return _mm_cvtss_f32(sum);
}

__attribute__((target("avx2,fma"))) double horizontal_sum(__m256d v) {
  __m128d sum = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  sum = _mm_hadd_pd(sum, sum);
  return _mm_cvtsd_f64(sum);
}

__attribute__((target("avx2,fma"))) inline __m256 load(const float* x) { return _mm256_loadu_ps(x); }
__attribute__((target("avx2,fma"))) inline __m256d load(const double* x) { return _mm256_loadu_pd(x); }
__attribute__((target("avx2,fma"))) inline __m256 fma(__m256 x, __m256 y, __m256 z) { return _mm256_fmadd_ps(x, y, z); }
__attribute__((target("avx2,fma"))) inline __m256d fma(__m256d x, __m256d y, __m256d z) {
  return _mm256_fmadd_pd(x, y, z);
}

// The 3 x 4 dot-product tile for float or double (V: its 256-bit vector): twelve vector accumulators
// over k, then horizontal sums and the scalar tail of k. Rows and columns past the tile's edge read the
// last valid row or column (their results are dropped), so the loop never branches.
template <typename T, typename V>
__attribute__((target("avx2,fma"))) inline void dot_tile(std::int64_t k, const T* a, std::int64_t rsa, const T* b,
                                                         std::int64_t csb, T* c, std::int64_t rsc, std::int64_t csc,
                                                         std::int64_t rows, std::int64_t cols) {
  constexpr std::int64_t lanes = sizeof(V) / sizeof(T);
  const T* ar[kDotRows];
  const T* bc[kDotCols];
  for (std::int64_t i = 0; i < kDotRows; ++i) ar[i] = a + std::min(i, rows - 1) * rsa;
  for (std::int64_t j = 0; j < kDotCols; ++j) bc[j] = b + std::min(j, cols - 1) * csb;
  V acc[kDotRows][kDotCols];
  for (auto& row : acc) {
    for (V& v : row) v = V{};
  }
  std::int64_t p = 0;
  for (; p + lanes <= k; p += lanes) {
    const V x0 = load(ar[0] + p);
    const V x1 = load(ar[1] + p);
    const V x2 = load(ar[2] + p);
#pragma GCC unroll 4
    for (std::int64_t j = 0; j < kDotCols; ++j) {
      const V y = load(bc[j] + p);
      acc[0][j] = fma(x0, y, acc[0][j]);
      acc[1][j] = fma(x1, y, acc[1][j]);
      acc[2][j] = fma(x2, y, acc[2][j]);
    }
  }
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) {
      T sum = horizontal_sum(acc[i][j]);
      for (std::int64_t q = p; q < k; ++q) sum += ar[i][q] * bc[j][q];
      c[i * rsc + j * csc] = sum;
    }
  }
}

}  // namespace

__attribute__((target("avx2,fma"))) void dot_kernel_avx2(std::int64_t k, const float* a, std::int64_t rsa,
                                                         const float* b, std::int64_t csb, float* c, std::int64_t rsc,
                                                         std::int64_t csc, std::int64_t rows, std::int64_t cols) {
  dot_tile<float, __m256>(k, a, rsa, b, csb, c, rsc, csc, rows, cols);
}

__attribute__((target("avx2,fma"))) void dot_kernel_avx2(std::int64_t k, const double* a, std::int64_t rsa,
                                                         const double* b, std::int64_t csb, double* c, std::int64_t rsc,
                                                         std::int64_t csc, std::int64_t rows, std::int64_t cols) {
  dot_tile<double, __m256d>(k, a, rsa, b, csb, c, rsc, csc, rows, cols);
}

#undef NEEDLE_FMA_ROW_PS
#undef NEEDLE_STORE_ROW_PS
#undef NEEDLE_FMA_ROW_IN_PLACE
#undef NEEDLE_FMA_ROW_PD
#undef NEEDLE_STORE_ROW_PD

}  // namespace needle::cpu

#endif  // defined(__x86_64__)
