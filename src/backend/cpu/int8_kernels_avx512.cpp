// AVX-512 builds of the int8 kernels (int8_gemm.h): the packing of w and the register tile of the packed
// path, the dot-product tile on VNNI's vpdpbusd and the quantization of float32 rows. Compiled for AVX-512F/BW/VNNI and
// BMI2 whatever the project's flags say and called only after a run-time check of the CPU (int8_gemm.cpp).
//
// The packed path's layout and shift are described in int8_gemm.cpp. In the dot-product tile, a's bytes are flipped to
// a + 128 (xor 0x80, an unsigned byte) and 128 * w is summed alongside by a second vpdpbusd of 0x80 bytes with the same
// w vector: sum (a + 128) w - sum 128 w = sum a w. The lane sums may wrap around 2^32, but the difference is taken per
// lane before the lanes are added, and a lane's difference is a partial sum of the exact product, which fits: the
// result is exact for every int8 input.
#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "backend/cpu/int8_gemm.h"
#include "backend/ref/ref_kernels.h"

// GCC 12's AVX-512 reduction intrinsics start from _mm256_undefined_si256(), which it then reports as
// uninitialized (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define NEEDLE_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni,bmi2")))

namespace needle::cpu {

namespace {

// ---- the packed path ----

// The four bytes a[p .. p + 3] broadcast to every lane; only `count` (< 4) of them in the last group.
NEEDLE_TARGET_VNNI inline __m512i broadcast_group(const std::int8_t* a) {
  std::int32_t group = 0;
  std::memcpy(&group, a, sizeof group);
  return _mm512_set1_epi32(group);
}
NEEDLE_TARGET_VNNI inline __m512i broadcast_partial_group(const std::int8_t* a, std::int64_t count) {
  std::int32_t group = 0;
  std::memcpy(&group, a, static_cast<std::size_t>(count));
  return _mm512_set1_epi32(group);
}

// acc += per 32-bit lane the four products of unsigned_bytes' and signed_bytes' bytes (vpdpbusd), written as
// inline assembly: GCC 12 moves the intrinsic's accumulator through another register, and here spilled it to
// the stack, on every use.
NEEDLE_TARGET_VNNI inline void dpbusd(__m512i& acc, __m512i unsigned_bytes, __m512i signed_bytes) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(unsigned_bytes), "v"(signed_bytes));
}

// Lanes [0, count) of a panel (count clamped to 0 .. 16).
NEEDLE_TARGET_VNNI inline __mmask16 lane_mask(std::int64_t count) {
  return static_cast<__mmask16>(_bzhi_u32(0xffffU, static_cast<unsigned>(std::clamp<std::int64_t>(count, 0, 16))));
}

// Transposes the 16 x 16 matrix of 32-bit elements whose rows are v[0 .. 15], in place: interleaves within
// 128-bit lanes (32- then 64-bit), then moves the 128-bit lanes (twice).
NEEDLE_TARGET_VNNI inline void transpose_16x16_epi32(__m512i (&v)[16]) {
  __m512i t[16];
#pragma GCC unroll 16
  for (int q = 0; q < 16; q += 2) {
    t[q] = _mm512_unpacklo_epi32(v[q], v[q + 1]);
    t[q + 1] = _mm512_unpackhi_epi32(v[q], v[q + 1]);
  }
  // u[4 q + c], 128-bit lane l: rows 4 q .. 4 q + 3 of column 4 l + c.
  __m512i u[16];
#pragma GCC unroll 16
  for (int q = 0; q < 16; q += 4) {
    u[q] = _mm512_unpacklo_epi64(t[q], t[q + 2]);
    u[q + 1] = _mm512_unpackhi_epi64(t[q], t[q + 2]);
    u[q + 2] = _mm512_unpacklo_epi64(t[q + 1], t[q + 3]);
    u[q + 3] = _mm512_unpackhi_epi64(t[q + 1], t[q + 3]);
  }
#pragma GCC unroll 16
  for (int c = 0; c < 4; ++c) {
    // Column 4 l + c is lane l of u[c], u[4 + c], u[8 + c], u[12 + c].
    const __m512i even01 = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i odd01 = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i even23 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i odd23 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 1, 3, 1));
    v[c] = _mm512_shuffle_i32x4(even01, even23, _MM_SHUFFLE(2, 0, 2, 0));
    v[4 + c] = _mm512_shuffle_i32x4(odd01, odd23, _MM_SHUFFLE(2, 0, 2, 0));
    v[8 + c] = _mm512_shuffle_i32x4(even01, even23, _MM_SHUFFLE(3, 1, 3, 1));
    v[12 + c] = _mm512_shuffle_i32x4(odd01, odd23, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// The rows x panels register tile: for each group of four depths, one vector of each panel and one
// broadcast of each row of a, rows * panels vpdpbusd. Then the shift is taken off and the outputs stored.
// The loops over rows and panels are unrolled (the pragmas) so that GCC keeps acc in registers.
template <int rows, int panels>
NEEDLE_TARGET_VNNI void packed_tile(std::int64_t k, const std::int8_t* a, const std::int32_t* row_sums,
                                    const std::uint8_t* strip, std::int64_t cols, std::int64_t m0, std::int64_t n0,
                                    const Int8Output& output) {
  __m512i acc[rows][panels];
#pragma GCC unroll 8
  for (int i = 0; i < rows; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < panels; ++j) acc[i][j] = _mm512_setzero_si512();
  }
  const std::int8_t* a_rows[rows];
#pragma GCC unroll 8
  for (int i = 0; i < rows; ++i) a_rows[i] = a + i * k;
  const std::int64_t whole_groups = k / 4;
  const auto* vectors = reinterpret_cast<const __m512i*>(strip);
  for (std::int64_t g = 0; g < whole_groups; ++g, vectors += panels) {
    __m512i w[panels];
#pragma GCC unroll 8
    for (int j = 0; j < panels; ++j) w[j] = _mm512_load_si512(vectors + j);
#pragma GCC unroll 8
    for (int i = 0; i < rows; ++i) {
      const __m512i av = broadcast_group(a_rows[i] + 4 * g);
#pragma GCC unroll 8
      for (int j = 0; j < panels; ++j) dpbusd(acc[i][j], w[j], av);
    }
  }
  if (const std::int64_t rest = k - 4 * whole_groups; rest > 0) {
    __m512i w[panels];
#pragma GCC unroll 8
    for (int j = 0; j < panels; ++j) w[j] = _mm512_load_si512(vectors + j);
#pragma GCC unroll 8
    for (int i = 0; i < rows; ++i) {
      const __m512i av = broadcast_partial_group(a_rows[i] + 4 * whole_groups, rest);
#pragma GCC unroll 8
      for (int j = 0; j < panels; ++j) dpbusd(acc[i][j], w[j], av);
    }
  }
  // Take the shift off (the shifted w added 128 * a[m, p] per term; 128 * sum fits int32 for K <= kMaxInt8Depth)
  // and store, masked past the last column.
  __mmask16 masks[panels];
#pragma GCC unroll 8
  for (int j = 0; j < panels; ++j) masks[j] = lane_mask(cols - j * kInt8PanelCols);
  if (output.int_out != nullptr) {
#pragma GCC unroll 8
    for (int i = 0; i < rows; ++i) {
      const __m512i shift = _mm512_set1_epi32(128 * row_sums[i]);
      std::int32_t* out = output.int_out + (m0 + i) * output.ld + n0;
#pragma GCC unroll 8
      for (int j = 0; j < panels; ++j) {
        _mm512_mask_storeu_epi32(out + j * kInt8PanelCols, masks[j], _mm512_sub_epi32(acc[i][j], shift));
      }
    }
    return;
  }
  __m512 col_scales[panels];
  __m512 biases[panels];
#pragma GCC unroll 8
  for (int j = 0; j < panels; ++j) {
    const std::int64_t n = n0 + j * kInt8PanelCols;
    col_scales[j] = _mm512_maskz_loadu_ps(masks[j], output.col_scale + n);
    biases[j] = output.bias != nullptr ? _mm512_maskz_loadu_ps(masks[j], output.bias + n) : _mm512_setzero_ps();
  }
#pragma GCC unroll 8
  for (int i = 0; i < rows; ++i) {
    const __m512i shift = _mm512_set1_epi32(128 * row_sums[i]);
    const __m512 row_scale = _mm512_set1_ps(output.row_scale[m0 + i]);
    float* out = output.float_out + (m0 + i) * output.ld + n0;
#pragma GCC unroll 8
    for (int j = 0; j < panels; ++j) {
      const __m512 sums = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][j], shift));
      _mm512_mask_storeu_ps(out + j * kInt8PanelCols, masks[j],
                            _mm512_fmadd_ps(sums, _mm512_mul_ps(row_scale, col_scales[j]), biases[j]));
    }
  }
}

using PackedTileFn = void (*)(std::int64_t, const std::int8_t*, const std::int32_t*, const std::uint8_t*, std::int64_t,
                              std::int64_t, std::int64_t, const Int8Output&);

template <int rows, int... panels>
constexpr std::array<PackedTileFn, sizeof...(panels)> packed_tile_row(
    std::integer_sequence<int, panels...> /*unused*/) {
  return {&packed_tile<rows, panels + 1>...};
}
template <int... rows>
constexpr std::array<std::array<PackedTileFn, kInt8StripPanels>, sizeof...(rows)> packed_tile_table(
    std::integer_sequence<int, rows...> /*unused*/) {
  return {packed_tile_row<rows + 1>(std::make_integer_sequence<int, kInt8StripPanels>{})...};
}
// packed_tiles[rows - 1][panels - 1].
constexpr auto packed_tiles = packed_tile_table(std::make_integer_sequence<int, kInt8PackedTileRows>{});

// ---- the dot-product tile ----

// How far ahead of its loads the dot-product tile prefetches each row of w: with one row of a (decoding)
// the tile streams w from L3 or memory, and the prefetches keep more of it in flight.
constexpr std::int64_t kDotPrefetchBytes = 1024;

// One step of depth for a rows x cols tile: 64 bytes of each row of a and w (zeros past `mask`).
template <int rows, int cols>
NEEDLE_TARGET_VNNI inline void dot_step(const std::int8_t* a, std::int64_t lda, const std::int8_t* w, std::int64_t ldw,
                                        __mmask64 mask, __m512i (&acc)[rows][cols], __m512i (&offset)[cols]) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i wv[cols];
#pragma GCC unroll 4
  for (int j = 0; j < cols; ++j) {
    _mm_prefetch(reinterpret_cast<const char*>(w + j * ldw + kDotPrefetchBytes), _MM_HINT_T0);
    wv[j] = _mm512_maskz_loadu_epi8(mask, w + j * ldw);
    dpbusd(offset[j], flip, wv[j]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < rows; ++i) {
    const __m512i av = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, a + i * lda), flip);
#pragma GCC unroll 4
    for (int j = 0; j < cols; ++j) dpbusd(acc[i][j], av, wv[j]);
  }
}

template <int rows, int cols>
NEEDLE_TARGET_VNNI void dot_tile(std::int64_t k, const std::int8_t* a, std::int64_t lda, const std::int8_t* w,
                                 std::int64_t ldw, std::int32_t* sums) {
  __m512i acc[rows][cols];
  __m512i offset[cols];
#pragma GCC unroll 4
  for (int j = 0; j < cols; ++j) {
    offset[j] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int i = 0; i < rows; ++i) acc[i][j] = _mm512_setzero_si512();
  }
  std::int64_t p = 0;
  for (; p + 64 <= k; p += 64) dot_step<rows, cols>(a + p, lda, w + p, ldw, ~__mmask64{0}, acc, offset);
  if (p < k) dot_step<rows, cols>(a + p, lda, w + p, ldw, _bzhi_u64(~0ULL, static_cast<unsigned>(k - p)), acc, offset);
#pragma GCC unroll 4
  for (int i = 0; i < rows; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < cols; ++j) {
      sums[i * kInt8TileCols + j] = _mm512_reduce_add_epi32(_mm512_sub_epi32(acc[i][j], offset[j]));
    }
  }
}

using TileFn = void (*)(std::int64_t, const std::int8_t*, std::int64_t, const std::int8_t*, std::int64_t,
                        std::int32_t*);

template <int rows, int... cols>
constexpr std::array<TileFn, sizeof...(cols)> tile_row(std::integer_sequence<int, cols...> /*unused*/) {
  return {&dot_tile<rows, cols + 1>...};
}
template <int... rows>
constexpr std::array<std::array<TileFn, kInt8TileCols>, sizeof...(rows)> tile_table(
    std::integer_sequence<int, rows...> /*unused*/) {
  return {tile_row<rows + 1>(std::make_integer_sequence<int, kInt8TileCols>{})...};
}
// tiles[rows - 1][cols - 1]: each tile shape compiled with its accumulators in registers.
constexpr auto tiles = tile_table(std::make_integer_sequence<int, kInt8TileRows>{});

}  // namespace

void int8_dot_vnni(std::int64_t k, const std::int8_t* a, std::int64_t lda, const std::int8_t* w, std::int64_t ldw,
                   std::int64_t rows, std::int64_t cols, std::int32_t* sums) {
  tiles.at(static_cast<std::size_t>(rows - 1)).at(static_cast<std::size_t>(cols - 1))(k, a, lda, w, ldw, sums);
}

// A panel is packed 16 groups (64 bytes of depth) at a time: the 16 columns' 64-byte runs, shifted, are a
// 16 x 16 matrix of 32-bit groups, and its transpose is the panel's 16 vectors for those depths.
NEEDLE_TARGET_VNNI void pack_int8_strip_vnni(const std::int8_t* w, std::int64_t k, std::int64_t cols,
                                             std::uint8_t* strip) {
  const std::int64_t panels = (cols + kInt8PanelCols - 1) / kInt8PanelCols;
  const std::int64_t groups = (k + 3) / 4;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  auto* const vectors = reinterpret_cast<__m512i*>(strip);
  for (std::int64_t j = 0; j < panels; ++j) {
    for (std::int64_t p = 0; p < k; p += 64) {
      const std::int64_t depth = std::min<std::int64_t>(64, k - p);
      const __mmask64 depth_mask = _bzhi_u64(~0ULL, static_cast<unsigned>(depth));
      // Shift only the bytes that exist: the padding stays 0 and adds nothing whatever a holds there.
      const __m512i shift = _mm512_maskz_mov_epi8(depth_mask, flip);
      __m512i run[16];
#pragma GCC unroll 16
      for (int lane = 0; lane < 16; ++lane) {
        const std::int64_t col = j * kInt8PanelCols + lane;
        run[lane] = col < cols ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(depth_mask, w + col * k + p), shift)
                               : _mm512_setzero_si512();
      }
      transpose_16x16_epi32(run);
      const std::int64_t first_group = p / 4;
      const std::int64_t block_groups = std::min<std::int64_t>(16, groups - first_group);
      for (std::int64_t g = 0; g < block_groups; ++g) {
        _mm512_store_si512(vectors + (first_group + g) * panels + j, run[g]);
      }
    }
  }
}

void int8_packed_tile_vnni(std::int64_t k, const std::int8_t* a, const std::int32_t* row_sums, std::int64_t rows,
                           const std::uint8_t* strip, std::int64_t cols, std::int64_t m0, std::int64_t n0,
                           const Int8Output& output) {
  const std::int64_t panels = (cols + kInt8PanelCols - 1) / kInt8PanelCols;
  packed_tiles.at(static_cast<std::size_t>(rows - 1))
      .at(static_cast<std::size_t>(panels - 1))(k, a, row_sums, strip, cols, m0, n0, output);
}

// Two passes per row: the largest magnitude, taken on the bits (|x| as an integer orders like the float,
// and NaN above infinity), then the scaled values, converted by vcvtps2dq (half to even under the default
// MXCSR, as nearbyint) and narrowed by vpmovdb. Rows of zeros, with NaN or an infinity, or so tiny that
// 127 / amax overflows, are ref's.
NEEDLE_TARGET_VNNI void quantize_rows_avx512(const float* x, std::int8_t* values, float* scale, std::int64_t first,
                                             std::int64_t last, std::int64_t cols) {
  const __m512i magnitude_bits = _mm512_set1_epi32(0x7fffffff);
  for (std::int64_t row = first; row < last; ++row) {
    const float* in = x + row * cols;
    std::int8_t* out = values + row * cols;
    __m512i largest = _mm512_setzero_si512();
    for (std::int64_t j = 0; j < cols; j += 16) {
      const auto mask =
          static_cast<__mmask16>(_bzhi_u32(0xffffU, static_cast<unsigned>(std::min<std::int64_t>(16, cols - j))));
      const __m512i bits = _mm512_and_si512(_mm512_maskz_loadu_epi32(mask, in + j), magnitude_bits);
      largest = _mm512_max_epi32(largest, bits);
    }
    const std::int32_t amax_bits = _mm512_reduce_max_epi32(largest);
    float amax = 0.0F;
    std::memcpy(&amax, &amax_bits, sizeof amax);
    const float inv = 127.0F / amax;
    if (amax_bits == 0 || amax_bits >= 0x7f800000 || !std::isfinite(inv)) {
      ref::quantize_row(in, out, scale + row, cols);
      continue;
    }
    scale[row] = amax / 127.0F;
    const __m512 inv_vector = _mm512_set1_ps(inv);
    const __m512i low = _mm512_set1_epi32(-127);
    const __m512i high = _mm512_set1_epi32(127);
    for (std::int64_t j = 0; j < cols; j += 16) {
      const auto mask =
          static_cast<__mmask16>(_bzhi_u32(0xffffU, static_cast<unsigned>(std::min<std::int64_t>(16, cols - j))));
      const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, in + j), inv_vector));
      _mm512_mask_cvtepi32_storeu_epi8(out + j, mask, _mm512_min_epi32(_mm512_max_epi32(q, low), high));
    }
  }
}

}  // namespace needle::cpu

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif
