// AVX2 builds of the int8 kernels (int8_gemm.h): the dot-product tile and the quantization of float32 rows.
// Compiled for AVX2 whatever the project's flags say and called only after a run-time check of the CPU
// (int8_gemm.cpp).
//
// The tile widens 16 bytes of each row to int16 (vpmovsxbw) and multiplies them with vpmaddwd, which adds
// adjacent products into int32 lanes: exact for every int8 value, -128 included (two products of at most
// 2^14). vpmaddubsw would do more per instruction but saturates its int16 sums.
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

#define NEEDLE_TARGET_AVX2 __attribute__((target("avx2")))

namespace needle::cpu {

namespace {

NEEDLE_TARGET_AVX2 inline __m256i widen(const std::int8_t* x) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)));
}

NEEDLE_TARGET_AVX2 inline std::int32_t sum_lanes(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

template <int rows, int cols>
NEEDLE_TARGET_AVX2 void dot_tile(std::int64_t k, const std::int8_t* a, std::int64_t lda, const std::int8_t* w,
                                 std::int64_t ldw, std::int32_t* sums) {
  __m256i acc[rows][cols];
#pragma GCC unroll 4
  for (int i = 0; i < rows; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < cols; ++j) acc[i][j] = _mm256_setzero_si256();
  }
  std::int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    __m256i wv[cols];
#pragma GCC unroll 4
    for (int j = 0; j < cols; ++j) wv[j] = widen(w + j * ldw + p);
#pragma GCC unroll 4
    for (int i = 0; i < rows; ++i) {
      const __m256i av = widen(a + i * lda + p);
#pragma GCC unroll 4
      for (int j = 0; j < cols; ++j) acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(av, wv[j]));
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < rows; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < cols; ++j) {
      std::int32_t sum = sum_lanes(acc[i][j]);
      for (std::int64_t q = p; q < k; ++q) sum += std::int32_t{a[i * lda + q]} * std::int32_t{w[j * ldw + q]};
      sums[i * kInt8TileCols + j] = sum;
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
// Rows of a per pass: a 2 x 4 tile's 8 accumulators, 4 vectors of w and a row of a fit the 16 ymm registers
// (a 4 x 4 tile's 16 accumulators alone would fill them and spill).
constexpr std::int64_t kPassRows = 2;
// tiles[rows - 1][cols - 1]: each tile shape compiled with its accumulators in registers.
constexpr auto tiles = tile_table(std::make_integer_sequence<int, kPassRows>{});

}  // namespace

void int8_dot_avx2(std::int64_t k, const std::int8_t* a, std::int64_t lda, const std::int8_t* w, std::int64_t ldw,
                   std::int64_t rows, std::int64_t cols, std::int32_t* sums) {
  for (std::int64_t i = 0; i < rows; i += kPassRows) {
    const std::int64_t pass_rows = std::min(kPassRows, rows - i);
    tiles.at(static_cast<std::size_t>(pass_rows - 1))
        .at(static_cast<std::size_t>(cols - 1))(k, a + i * lda, lda, w, ldw, sums + i * kInt8TileCols);
  }
}

// As quantize_rows_avx512, eight values at a time; the last cols % 8 values of a row are scalar.
NEEDLE_TARGET_AVX2 void quantize_rows_avx2(const float* x, std::int8_t* values, float* scale, std::int64_t first,
                                           std::int64_t last, std::int64_t cols) {
  const __m256i magnitude_bits = _mm256_set1_epi32(0x7fffffff);
  const std::int64_t whole = cols / 8 * 8;
  for (std::int64_t row = first; row < last; ++row) {
    const float* in = x + row * cols;
    std::int8_t* out = values + row * cols;
    __m256i largest = _mm256_setzero_si256();
    for (std::int64_t j = 0; j < whole; j += 8) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + j));
      largest = _mm256_max_epi32(largest, _mm256_and_si256(bits, magnitude_bits));
    }
    alignas(32) std::array<std::int32_t, 8> lanes{};
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes.data()), largest);
    std::int32_t amax_bits = *std::max_element(lanes.begin(), lanes.end());
    for (std::int64_t j = whole; j < cols; ++j) {
      std::int32_t bits = 0;
      std::memcpy(&bits, in + j, sizeof bits);
      amax_bits = std::max(amax_bits, bits & 0x7fffffff);
    }
    float amax = 0.0F;
    std::memcpy(&amax, &amax_bits, sizeof amax);
    const float inv = 127.0F / amax;
    if (amax_bits == 0 || amax_bits >= 0x7f800000 || !std::isfinite(inv)) {
      ref::quantize_row(in, out, scale + row, cols);
      continue;
    }
    scale[row] = amax / 127.0F;
    const __m256 inv_vector = _mm256_set1_ps(inv);
    const __m256i low = _mm256_set1_epi32(-127);
    const __m256i high = _mm256_set1_epi32(127);
    for (std::int64_t j = 0; j < whole; j += 8) {
      __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(in + j), inv_vector));
      q = _mm256_min_epi32(_mm256_max_epi32(q, low), high);
      const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + j), _mm_packs_epi16(words, words));
    }
    for (std::int64_t j = whole; j < cols; ++j) out[j] = ref::quantize_value(in[j], inv);
  }
}

}  // namespace needle::cpu

#endif
