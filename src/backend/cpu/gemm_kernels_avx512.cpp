// AVX-512F micro-kernels of the cpu GEMM: a 14 x 32 float tile and a 14 x 16 double tile, each row of C
// held in two zmm accumulators (28 of the 32 registers). Per step of k the kernel loads the two B vectors
// of the panel, and each of the 14 values of the A panel is broadcast from memory once and feeds the two
// FMAs of its row: 28 FMAs for 16 loads, so the two FMA pipes, not the load ports, set the pace, and 28
// independent chains cover the FMA latency (eight would do). In L1 this runs at the FMA peak of the core.
// Edge tiles store through lane masks, and a tile at most one vector wide (a narrow C) runs with one
// accumulator per row and reads only its `cols` values of each row of B, through a lane mask: half the
// FMAs, and a narrow B can be read where it lies instead of padded into a panel. Also here: the packing of row-major A
// into the 14-row float panels, transposed sixteen steps of k at a time in registers, and the in-place float tile
// (A and B read where they lie: a convolution's image rows, narrow products). These functions are compiled for
// AVX-512F whatever the project's flags say and are only called after a run-time check of the CPU
// (gemm.cpp).
#if defined(__x86_64__)

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "backend/cpu/gemm.h"
#include "backend/cpu/gemm_prefetch.h"

namespace needle::cpu {

namespace {

// The vector operations of one element type, so that one kernel body serves float and double.
struct Float512 {
  using T = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr std::int64_t lanes = 16;
  __attribute__((target("avx512f"))) static V zero() { return _mm512_setzero_ps(); }
  __attribute__((target("avx512f"))) static V load(const T* x) { return _mm512_loadu_ps(x); }
  __attribute__((target("avx512f"))) static V splat(const T* x) { return _mm512_set1_ps(*x); }
  __attribute__((target("avx512f"))) static V fma(V x, V y, V z) { return _mm512_fmadd_ps(x, y, z); }
  __attribute__((target("avx512f"))) static V add(V x, V y) { return _mm512_add_ps(x, y); }
  __attribute__((target("avx512f"))) static void store(T* x, V v) { _mm512_storeu_ps(x, v); }
  __attribute__((target("avx512f"))) static V load(const T* x, Mask m) { return _mm512_maskz_loadu_ps(m, x); }
  __attribute__((target("avx512f"))) static void store(T* x, Mask m, V v) { _mm512_mask_storeu_ps(x, m, v); }
};

struct Double512 {
  using T = double;
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr std::int64_t lanes = 8;
  __attribute__((target("avx512f"))) static V zero() { return _mm512_setzero_pd(); }
  __attribute__((target("avx512f"))) static V load(const T* x) { return _mm512_loadu_pd(x); }
  __attribute__((target("avx512f"))) static V splat(const T* x) { return _mm512_set1_pd(*x); }
  __attribute__((target("avx512f"))) static V fma(V x, V y, V z) { return _mm512_fmadd_pd(x, y, z); }
  __attribute__((target("avx512f"))) static V add(V x, V y) { return _mm512_add_pd(x, y); }
  __attribute__((target("avx512f"))) static void store(T* x, V v) { _mm512_storeu_pd(x, v); }
  __attribute__((target("avx512f"))) static V load(const T* x, Mask m) { return _mm512_maskz_loadu_pd(m, x); }
  __attribute__((target("avx512f"))) static void store(T* x, Mask m, V v) { _mm512_mask_storeu_pd(x, m, v); }
};

// The first `count` lanes of a vector (all of them from `lanes` on, none at or below zero).
template <typename Ops>
typename Ops::Mask first_lanes(std::int64_t count) {
  if (count >= Ops::lanes) return static_cast<typename Ops::Mask>(~0U);
  if (count <= 0) return 0;
  return static_cast<typename Ops::Mask>((1U << count) - 1U);
}

// The MR x (NV * lanes) tile, NV = 1 or 2 vectors per row. The accumulator array is indexed only by
// constants after full unrolling, so it lives in registers. Every element gets the same FMAs in the same
// order whatever NV is, so the narrow variant changes no result.
template <typename Ops, int MR, int NV>
__attribute__((target("avx512f"))) inline void tile_kernel(std::int64_t kc, const typename Ops::T* a,
                                                           const typename Ops::T* b, std::int64_t ldb,
                                                           typename Ops::T* c, std::int64_t rsc, std::int64_t csc,
                                                           std::int64_t rows, std::int64_t cols, bool accumulate) {
  using T = typename Ops::T;
  using V = typename Ops::V;
  constexpr std::int64_t lanes = Ops::lanes;
  prefetch_tile(c, rsc, csc, rows, cols, sizeof(T));
  V acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = Ops::zero();
    acc[i][1] = Ops::zero();
  }
  const typename Ops::Mask b_lanes = first_lanes<Ops>(cols);
#pragma GCC unroll 4
  for (std::int64_t p = 0; p < kc; ++p) {
    if constexpr (NV == 1) {
      const V b0 = Ops::load(b, b_lanes);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) acc[i][0] = Ops::fma(Ops::splat(a + i), b0, acc[i][0]);
    } else {
      const V b0 = Ops::load(b);
      const V b1 = Ops::load(b + lanes);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const V ai = Ops::splat(a + i);
        acc[i][0] = Ops::fma(ai, b0, acc[i][0]);
        acc[i][1] = Ops::fma(ai, b1, acc[i][1]);
      }
    }
    a += MR;
    b += ldb;
  }
  if (csc == 1) {
    const typename Ops::Mask m0 = first_lanes<Ops>(cols);
    const typename Ops::Mask m1 = first_lanes<Ops>(cols - lanes);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      if (i >= rows) break;
      T* row = c + i * rsc;
      if (accumulate) {
        acc[i][0] = Ops::add(Ops::load(row, m0), acc[i][0]);
        acc[i][1] = Ops::add(Ops::load(row + lanes, m1), acc[i][1]);
      }
      Ops::store(row, m0, acc[i][0]);
      Ops::store(row + lanes, m1, acc[i][1]);
    }
    return;
  }
  alignas(64) T tile[MR * 2 * lanes];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    Ops::store(tile + i * 2 * lanes, acc[i][0]);
    Ops::store(tile + i * 2 * lanes + lanes, acc[i][1]);
  }
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) {
      T& out = c[i * rsc + j * csc];
      out = accumulate ? out + tile[i * 2 * lanes + j] : tile[i * 2 * lanes + j];
    }
  }
}

}  // namespace

__attribute__((target("avx512f"))) void micro_kernel_avx512(std::int64_t kc, const float* a, const float* b,
                                                            std::int64_t ldb, float* c, std::int64_t rsc,
                                                            std::int64_t csc, std::int64_t rows, std::int64_t cols,
                                                            bool accumulate) {
  static_assert(Avx512Tile<float>::nr == 2 * Float512::lanes);
  constexpr int mr = Avx512Tile<float>::mr;
  if (cols <= Float512::lanes) return tile_kernel<Float512, mr, 1>(kc, a, b, ldb, c, rsc, csc, rows, cols, accumulate);
  tile_kernel<Float512, mr, 2>(kc, a, b, ldb, c, rsc, csc, rows, cols, accumulate);
}

__attribute__((target("avx512f"))) void micro_kernel_avx512(std::int64_t kc, const double* a, const double* b,
                                                            std::int64_t ldb, double* c, std::int64_t rsc,
                                                            std::int64_t csc, std::int64_t rows, std::int64_t cols,
                                                            bool accumulate) {
  static_assert(Avx512Tile<double>::nr == 2 * Double512::lanes);
  constexpr int mr = Avx512Tile<double>::mr;
  if (cols <= Double512::lanes) {
    return tile_kernel<Double512, mr, 1>(kc, a, b, ldb, c, rsc, csc, rows, cols, accumulate);
  }
  tile_kernel<Double512, mr, 2>(kc, a, b, ldb, c, rsc, csc, rows, cols, accumulate);
}

// The float tile with both operands read where they lie (gemm.h's InPlaceTile; a convolution's image rows, a
// narrow product's rows): one chain of
// FMAs per element across all segments, from zero, then stored or added to C. Broadcasting A from memory costs
// the same whatever its strides, so no operand needs packing. With two vectors of B per row (kPair false) the
// tile is 14 x 32; with one (kPair, cols <= 16) the second accumulator of each row serves a second tile of
// A rows, so that a narrow B still gets 28 FMAs per step.
// The lanes of `mask` of `value` stored at row, or added to what is there.
__attribute__((target("avx512f"))) inline void store_row(float* row, __mmask16 mask, __m512 value, bool accumulate) {
  if (accumulate) value = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, row), value);
  _mm512_mask_storeu_ps(row, mask, value);
}

template <bool kPair>
__attribute__((target("avx512f"))) inline void in_place_tile_body(const InPlaceTile& t) {
  constexpr int mr = Avx512Tile<float>::mr;
  constexpr std::int64_t lanes = Float512::lanes;
  const __mmask16 m0 = first_lanes<Float512>(t.cols);
  const __mmask16 m1 = kPair ? m0 : first_lanes<Float512>(t.cols - lanes);
  const std::int64_t rsa = t.rsa;
  const std::int64_t second_a = t.second_rows > 0 ? t.second_a : 0;  // no second tile: read the first twice
  __m512 acc[mr][2];
#pragma GCC unroll 16
  for (auto& row : acc) {
    row[0] = _mm512_setzero_ps();
    row[1] = _mm512_setzero_ps();
  }
  for (std::int64_t s = 0; s < t.segments; ++s) {
    const float* pa = t.a + s * t.seg_a;
    const float* pb = t.b + s * t.seg_b;
#pragma GCC unroll 2
    for (std::int64_t p = 0; p < t.kc; ++p) {
      const __m512 b0 = _mm512_maskz_loadu_ps(m0, pb);
      if constexpr (kPair) {
#pragma GCC unroll 16
        for (int i = 0; i < mr; ++i) {
          acc[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(pa[i * rsa]), b0, acc[i][0]);
          acc[i][1] = _mm512_fmadd_ps(_mm512_set1_ps(pa[second_a + i * rsa]), b0, acc[i][1]);
        }
      } else {
        const __m512 b1 = _mm512_maskz_loadu_ps(m1, pb + lanes);
#pragma GCC unroll 16
        for (int i = 0; i < mr; ++i) {
          const __m512 ai = _mm512_set1_ps(pa[i * rsa]);
          acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
          acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
      }
      pa += t.csa;
      pb += t.ldb;
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < mr; ++i) {
    if (i >= t.rows) break;
    store_row(t.c + i * t.rsc, m0, acc[i][0], t.accumulate);
    if constexpr (!kPair) store_row(t.c + i * t.rsc + lanes, m1, acc[i][1], t.accumulate);
  }
  if constexpr (kPair) {
#pragma GCC unroll 16
    for (int i = 0; i < mr; ++i) {
      if (i >= t.second_rows) break;
      store_row(t.c + t.second_c + i * t.rsc, m0, acc[i][1], t.accumulate);
    }
  }
}

__attribute__((target("avx512f"))) void in_place_tile_avx512(const InPlaceTile& tile) {
  if (tile.cols <= Float512::lanes) return in_place_tile_body<true>(tile);
  in_place_tile_body<false>(tile);
}

// GCC 12's AVX-512 shuffle intrinsics start from _mm512_undefined_ps(), which it then reports as
// maybe-uninitialized (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f"))) void pack_a_rows_avx512(std::int64_t kc, const float* a, std::int64_t rs,
                                                           float* dst) {
  constexpr std::int64_t mr = Avx512Tile<float>::mr;
  static_assert(mr <= 16);
  constexpr __mmask16 kPanel = (1U << mr) - 1U;
  std::int64_t p = 0;
  // Sixteen steps of p at a time: one vector from each row (the rows past mr are zero), transposed 16 x 16
  // in registers (two rounds of in-lane unpacks, two of 128-bit lane shuffles), so that each step of p
  // becomes one masked store of mr values.
  for (; p + 16 <= kc; p += 16) {
    __m512 r[16];
#pragma GCC unroll 16
    for (std::int64_t i = 0; i < 16; ++i) r[i] = i < mr ? _mm512_loadu_ps(a + i * rs + p) : _mm512_setzero_ps();
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // r[4 g + j]: rows 4 g .. 4 g + 3 at columns j, j + 4, j + 8, j + 12 (one per 128-bit lane).
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
      const __m512d lo0 = _mm512_castps_pd(t[4 * g]);
      const __m512d hi0 = _mm512_castps_pd(t[4 * g + 1]);
      const __m512d lo1 = _mm512_castps_pd(t[4 * g + 2]);
      const __m512d hi1 = _mm512_castps_pd(t[4 * g + 3]);
      r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
      r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
      r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
      r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512 u0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
      const __m512 u1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
      const __m512 u2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
      const __m512 u3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
      _mm512_mask_storeu_ps(dst + (p + j) * mr, kPanel, _mm512_shuffle_f32x4(u0, u2, 0x88));
      _mm512_mask_storeu_ps(dst + (p + j + 8) * mr, kPanel, _mm512_shuffle_f32x4(u0, u2, 0xdd));
      _mm512_mask_storeu_ps(dst + (p + j + 4) * mr, kPanel, _mm512_shuffle_f32x4(u1, u3, 0x88));
      _mm512_mask_storeu_ps(dst + (p + j + 12) * mr, kPanel, _mm512_shuffle_f32x4(u1, u3, 0xdd));
    }
  }
  for (; p < kc; ++p) {
    for (std::int64_t i = 0; i < mr; ++i) dst[p * mr + i] = a[i * rs + p];
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace needle::cpu

#endif  // defined(__x86_64__)
