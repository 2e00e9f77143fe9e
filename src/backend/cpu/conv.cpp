// The cpu backend's im2col and col2im: one pass over the columns, split over the thread pool by rows of
// output cells (im2col) or of image cells (col2im), so every chunk writes memory no other chunk does and
// results do not depend on the thread count. Unlike the composed default (a strided copy per kernel tap
// with runs of C elements), consecutive taps j of one kernel row read or write consecutive image cells,
// so with channels-last data each kernel row is one contiguous run of up to K * C elements, and the
// padding is written as zeros instead of being copied from a padded image.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

// Rows per parallel chunk are chosen so each chunk moves at least this many elements: below it, waking a
// thread costs more than the copy.
constexpr std::int64_t kParallelGrain = 32768;

std::int64_t grain_for(std::int64_t elements_per_row) {
  return std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(1, elements_per_row));
}

// dst[e] = src[e] for e < n. A kernel row of a few taps of one or two channels is a run of a few values,
// copied here without the call to memcpy that would cost more than the copy; longer runs take memcpy.
template <typename T>
inline void copy_run(T* dst, const T* src, std::int64_t n) {
  constexpr std::int64_t kShort = 8;
  if (n > kShort) {
    std::memcpy(dst, src, sizeof(T) * static_cast<std::size_t>(n));
    return;
  }
  for (std::int64_t e = 0; e < kShort; ++e) {
    if (e < n) dst[e] = src[e];
  }
}

// The columns of the output rows [first, last) (row r = n * H_out + y) written from cols on.
template <typename T>
void im2col_rows(const kernels::ConvLayout& l, T* cols, const StridedView& image, std::int64_t first,
                 std::int64_t last) {
  const T* in = image.ptr<T>();
  const Strides& is = image.strides;
  // Channels-last with dense rows: a kernel row's taps inside the image are one run of memory. Other
  // layouts (the NCHW array the Conv layer permutes) have each image row gathered into that order, a
  // W x C transpose that reads the image contiguously along W, kept in a ring of K rows: the K image rows
  // one output row reads are consecutive, hence in distinct slots, and the next output row reuses the
  // ones it shares, so each image row is transposed once per chunk.
  const bool dense_rows = is[3] == 1 && is[2] == l.c;
  const std::int64_t row_size = l.w * l.c;
  std::vector<T> ring(dense_rows ? 0 : static_cast<std::size_t>(l.k * row_size));
  std::vector<std::int64_t> ring_row(dense_rows ? 0 : static_cast<std::size_t>(l.k), -1);  // n * H + iy held
  const std::int64_t kc = l.k * l.c;
  const std::int64_t cell = l.k * kc;  // column entries of one output cell
  for (std::int64_t r = first; r < last; ++r) {
    const std::int64_t n = r / l.h_out;
    const std::int64_t y = r % l.h_out;
    T* const cells = cols + (r - first) * l.w_out * cell;
    // With padding, zero the whole row of cells once (one call instead of up to three small ones per
    // cell and kernel row) and copy only the taps inside the image over it.
    const bool zeroed = l.padding > 0;
    if (zeroed) std::memset(cells, 0, sizeof(T) * static_cast<std::size_t>(l.w_out * cell));
    for (std::int64_t i = 0; i < l.k; ++i) {
      const std::int64_t iy = y * l.stride + i - l.padding;
      if (iy < 0 || iy >= l.h) {
        for (std::int64_t x = 0; x < l.w_out && !zeroed; ++x) {
          std::memset(cells + x * cell + i * kc, 0, sizeof(T) * static_cast<std::size_t>(kc));
        }
        continue;
      }
      const T* src = in + n * is[0] + iy * is[1];
      if (!dense_rows) {
        const auto slot = static_cast<std::size_t>(iy % l.k);
        T* row = ring.data() + static_cast<std::int64_t>(slot) * row_size;
        if (ring_row[slot] != n * l.h + iy) {
          ring_row[slot] = n * l.h + iy;
          for (std::int64_t c = 0; c < l.c; ++c) {
            for (std::int64_t ix = 0; ix < l.w; ++ix) row[ix * l.c + c] = src[c * is[3] + ix * is[2]];
          }
        }
        src = row;
      }
      for (std::int64_t x = 0; x < l.w_out; ++x) {
        T* out = cells + x * cell + i * kc;
        const kernels::ConvLayout::Taps js = l.taps(x, l.w);
        if (js.first >= js.last) {
          if (!zeroed) std::memset(out, 0, sizeof(T) * static_cast<std::size_t>(kc));
          continue;
        }
        if (!zeroed) {
          std::memset(out, 0, sizeof(T) * static_cast<std::size_t>(js.first * l.c));
          std::memset(out + js.last * l.c, 0, sizeof(T) * static_cast<std::size_t>((l.k - js.last) * l.c));
        }
        copy_run(out + js.first * l.c, src + (x * l.stride - l.padding + js.first) * l.c, (js.last - js.first) * l.c);
      }
    }
  }
}

template <typename T>
void col2im_rows(const kernels::ConvLayout& l, T* image, const T* cols, std::int64_t first, std::int64_t last) {
  const std::int64_t kc = l.k * l.c;
  const std::int64_t row_cols = l.w_out * l.k * kc;  // column entries of one row of output cells
  for (std::int64_t row = first; row < last; ++row) {
    const std::int64_t n = row / l.h;
    const std::int64_t iy = row % l.h;
    T* out = image + row * l.w * l.c;
    std::memset(out, 0, sizeof(T) * static_cast<std::size_t>(l.w * l.c));
    // The kernel rows i of the output rows y with y * stride + i - padding = iy, in a fixed order.
    for (std::int64_t i = 0; i < l.k; ++i) {
      const std::int64_t t = iy + l.padding - i;
      if (t < 0 || t % l.stride != 0 || t / l.stride >= l.h_out) continue;
      const T* src = cols + (n * l.h_out + t / l.stride) * row_cols + i * kc;
      for (std::int64_t x = 0; x < l.w_out; ++x, src += l.k * kc) {
        const kernels::ConvLayout::Taps js = l.taps(x, l.w);
        if (js.first >= js.last) continue;
        T* dst = out + (x * l.stride - l.padding + js.first) * l.c;
        const T* from = src + js.first * l.c;
        const std::int64_t len = (js.last - js.first) * l.c;
        for (std::int64_t e = 0; e < len; ++e) dst[e] += from[e];
      }
    }
  }
}

// ---- the one-pass convolution kernels ----
// Each works through blocks of output rows whose columns (about kBlockElements values) stay in L2: im2col
// of one block into a scratch buffer, then the blocked GEMM on it. The columns of the whole batch (nine
// times the image for a 3 x 3 kernel) never go through memory, and the block boundaries depend on the
// shape alone, so no result depends on the thread count.
constexpr std::int64_t kBlockElements = 65536;

// Output rows per block: enough for kBlockElements column values, at least one.
std::int64_t rows_per_block(const kernels::ConvLayout& l) {
  return std::max<std::int64_t>(1, kBlockElements / std::max<std::int64_t>(1, l.w_out * l.patch()));
}

// The weight gradient is a sum over every output cell, so the blocks are grouped into at most
// kWeightGradChunks chunks of consecutive blocks, fixed by the shape: each chunk sums its blocks' products in
// block order into a partial of its own (the threads share out the chunks), and the partials are added in
// chunk order.
constexpr std::int64_t kWeightGradChunks = 8;

// out[e] = the sum over q < chunks of partials[q * size + e], added in chunk order.
template <typename T>
void add_partials_in_order(const std::vector<T>& partials, std::int64_t chunks, std::int64_t size, T* out) {
  for (std::int64_t e = 0; e < size; ++e) {
    T total = partials[static_cast<std::size_t>(e)];
    for (std::int64_t q = 1; q < chunks; ++q) total += partials[static_cast<std::size_t>(q * size + e)];
    out[e] = total;
  }
}

// Scratch of `count` values for one block. Each thread keeps a buffer of up to kKeptScratchBytes for its
// lifetime (a block's columns, reused by every block and call); a larger request (the columns of one large
// image in conv2d_input_grad) takes `oversized`, freed by the caller.
constexpr std::size_t kKeptScratchBytes = std::size_t{4} << 20;

template <typename T>
T* block_scratch(std::int64_t count, std::vector<T>& oversized) {
  thread_local std::vector<T> kept;
  const auto n = static_cast<std::size_t>(count);
  std::vector<T>& buffer = n * sizeof(T) <= kKeptScratchBytes ? kept : oversized;
  if (buffer.size() < std::max<std::size_t>(n, 1)) buffer.resize(std::max<std::size_t>(n, 1));  // never null
  return buffer.data();
}

// out (rows of cells, C_out) = columns @ weight (patch, C_out), one block of output rows at a time.
template <typename T>
void conv2d_blocks(const kernels::ConvLayout& l, T* out, const StridedView& image, const T* weight) {
  const std::int64_t patch = l.patch();
  const std::int64_t rows = l.n * l.h_out;
  const std::int64_t per_block = rows_per_block(l);
  parallel_for(0, (rows + per_block - 1) / per_block, 1, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<T> oversized;
    T* cols = block_scratch<T>(per_block * l.w_out * patch, oversized);
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t first = b * per_block;
      const std::int64_t last = std::min(rows, first + per_block);
      im2col_rows<T>(l, cols, image, first, last);
      cpu::gemm<T>((last - first) * l.w_out, l.c_out, patch, cols, patch, 1, weight, l.c_out, 1,
                   out + first * l.w_out * l.c_out, l.c_out, 1);
    }
  });
}

#if defined(__x86_64__)
// ---- the direct forward convolution: float32 where the AVX-512 kernels run ----
// A block of output rows first copies the image rows it reads into a band, dense and with the padding
// written as zeros (rows of (W + 2 * padding) * C values). In the band, output cell x of an output row reads
// kernel row i as one run of K * C values at x * stride * C, and the next cell's run starts stride * C
// further: exactly a row-major A with row stride stride * C, so in_place_tile_avx512 reads the image in place.
// That replaces the columns (K * K times the image) and their packing with one copy of the image.
constexpr std::int64_t kTileCells = cpu::Avx512Tile<float>::mr;
constexpr std::int64_t kTileChannels = cpu::Avx512Tile<float>::nr;

// weight (patch, C_out) as panels of kTileChannels output channels, zero-padded: panel q holds
// weight[p, q * kTileChannels + j] at (q * patch + p) * kTileChannels + j.
std::vector<float> weight_panels(const float* weight, std::int64_t patch, std::int64_t c_out) {
  const std::int64_t panels = (c_out + kTileChannels - 1) / kTileChannels;
  std::vector<float> packed(static_cast<std::size_t>(panels * patch * kTileChannels), 0.0F);
  for (std::int64_t q = 0; q < panels; ++q) {
    const std::int64_t width = std::min(kTileChannels, c_out - q * kTileChannels);
    for (std::int64_t p = 0; p < patch; ++p) {
      std::copy_n(weight + p * c_out + q * kTileChannels, width, packed.data() + (q * patch + p) * kTileChannels);
    }
  }
  return packed;
}

// Rows first_row .. first_row + count - 1 of image n, padded: zeros outside the image.
void fill_band(const kernels::ConvLayout& l, const StridedView& image, std::int64_t n, std::int64_t first_row,
               std::int64_t count, float* band) {
  const float* in = image.ptr<float>();
  const Strides& is = image.strides;
  const std::int64_t band_row = (l.w + 2 * l.padding) * l.c;
  const std::int64_t pad = l.padding * l.c;
  for (std::int64_t t = 0; t < count; ++t) {
    const std::int64_t iy = first_row + t;
    float* dst = band + t * band_row;
    if (iy < 0 || iy >= l.h) {
      std::fill(dst, dst + band_row, 0.0F);
      continue;
    }
    std::fill(dst, dst + pad, 0.0F);
    std::fill(dst + pad + l.w * l.c, dst + band_row, 0.0F);
    const float* src = in + n * is[0] + iy * is[1];
    if (is[3] == 1 && is[2] == l.c) {
      std::copy_n(src, l.w * l.c, dst + pad);
      continue;
    }
    for (std::int64_t ix = 0; ix < l.w; ++ix) {
      for (std::int64_t c = 0; c < l.c; ++c) dst[pad + ix * l.c + c] = src[ix * is[2] + c * is[3]];
    }
  }
}

// Whether the direct kernels suit rows of `cells` output cells: a tile covers up to 14 cells of one output row,
// so narrow images would leave most of each tile idle (a 1 x 1 image: 1 of 14 rows), where the blocked
// kernels fill whole tiles with the cells of many rows. Direct when at least two thirds of the tiles' rows work.
bool rows_fill_tiles(std::int64_t cells) {
  const std::int64_t tiles = (cells + kTileCells - 1) / kTileCells;
  return cells > 0 && 3 * cells >= 2 * tiles * kTileCells;
}

// The band a block of output rows reads: its rows and the slack after them. A tile reads all 14 rows of A,
// past the last cell of a short run (or past the last value of a kernel row), and the slack keeps that inside
// the buffer.
struct BandSize {
  std::int64_t row;   // values per band row: (W + 2 * padding) * C
  std::int64_t size;  // values of the buffer
};
BandSize band_size(const kernels::ConvLayout& l, std::int64_t per_block) {
  const std::int64_t row = (l.w + 2 * l.padding) * l.c;
  const std::int64_t slack = kTileCells * l.stride * l.c + l.patch();
  return {row, ((per_block - 1) * l.stride + l.k) * row + slack};
}

// For the blocks [b0, b1) of output rows: each run of output rows y0 .. y1 - 1 of one image n in a block,
// fn(n, y0, y1) after the band holds the image rows the run reads (band row t: image row y0 * stride -
// padding + t).
template <typename Fn>
void for_each_run(const kernels::ConvLayout& l, const StridedView& image, std::int64_t per_block, std::int64_t b0,
                  std::int64_t b1, float* band, Fn&& fn) {
  const std::int64_t rows = l.n * l.h_out;
  for (std::int64_t r = b0 * per_block; r < std::min(rows, b1 * per_block);) {
    const std::int64_t n = r / l.h_out;
    const std::int64_t y0 = r % l.h_out;
    const std::int64_t block_end = std::min(rows, (r / per_block + 1) * per_block);
    const std::int64_t run_end = std::min(block_end, (n + 1) * l.h_out);
    const std::int64_t y1 = y0 + (run_end - r);
    fill_band(l, image, n, y0 * l.stride - l.padding, (y1 - 1 - y0) * l.stride + l.k, band);
    fn(n, y0, y1);
    r = run_end;
  }
}

void conv2d_direct(const kernels::ConvLayout& l, float* out, const StridedView& image, const float* weight) {
  const std::int64_t patch = l.patch();
  const std::int64_t kernel_row = l.k * l.c;  // one kernel row's values, contiguous in the band
  const std::int64_t cell_step = l.stride * l.c;
  const std::vector<float> panels = weight_panels(weight, patch, l.c_out);
  const std::int64_t rows = l.n * l.h_out;
  const std::int64_t per_block = rows_per_block(l);
  const BandSize band = band_size(l, per_block);
  parallel_for(0, (rows + per_block - 1) / per_block, 1, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<float> oversized;
    float* scratch = block_scratch<float>(band.size, oversized);
    for_each_run(l, image, per_block, b0, b1, scratch, [&](std::int64_t n, std::int64_t y0, std::int64_t y1) {
      for (std::int64_t j0 = 0; j0 < l.c_out; j0 += kTileChannels) {
        const std::int64_t cols = std::min(kTileChannels, l.c_out - j0);
        // A narrow panel takes two output rows per tile (the second tile one row further down).
        const bool narrow = cols <= kTileChannels / 2;
        for (std::int64_t y = y0; y < y1; y += narrow ? 2 : 1) {
          const float* a = scratch + (y - y0) * l.stride * band.row;
          float* out_row = out + (n * l.h_out + y) * l.w_out * l.c_out + j0;
          const bool second = narrow && y + 1 < y1;
          for (std::int64_t x0 = 0; x0 < l.w_out; x0 += kTileCells) {
            const std::int64_t cells = std::min(kTileCells, l.w_out - x0);
            // Segments: the K kernel rows, band.row apart in the band and kernel_row rows apart in the panel.
            cpu::in_place_tile_avx512({l.k, band.row, kernel_row * kTileChannels, kernel_row, a + x0 * cell_step,
                                       cell_step, 1, panels.data() + j0 * patch, kTileChannels, out_row + x0 * l.c_out,
                                       l.c_out, cells, cols, false, l.stride * band.row, l.w_out * l.c_out,
                                       second ? cells : 0});
          }
        }
      }
    });
  });
}

// The weight gradient from the same bands: tile rows are 14 consecutive values p of one kernel row (contiguous
// in the band, so A(i, cell) = band + i + cell * stride * C), tile columns 32 output channels, and the sum runs
// over the cells of each output row (segments: the rows of the run). Chunks as conv2d_weight_grad_blocks'.
void conv2d_weight_grad_direct(const kernels::ConvLayout& l, float* grad_weight, const StridedView& image,
                               const float* grad_out) {
  const std::int64_t patch = l.patch();
  const std::int64_t size = patch * l.c_out;
  const std::int64_t kernel_row = l.k * l.c;
  const std::int64_t cell_step = l.stride * l.c;
  const std::int64_t rows = l.n * l.h_out;
  const std::int64_t per_block = rows_per_block(l);
  const std::int64_t blocks = (rows + per_block - 1) / per_block;
  const std::int64_t chunks = std::min(blocks, kWeightGradChunks);
  const BandSize band = band_size(l, per_block);
  std::vector<float> partials(chunks > 1 ? static_cast<std::size_t>(chunks * size) : 0, 0.0F);
  if (chunks == 1) std::fill(grad_weight, grad_weight + size, 0.0F);
  parallel_for(0, chunks, 1, [&](std::int64_t q0, std::int64_t q1) {
    std::vector<float> oversized;
    float* scratch = block_scratch<float>(band.size, oversized);
    for (std::int64_t q = q0; q < q1; ++q) {
      float* sum = chunks > 1 ? partials.data() + q * size : grad_weight;
      for_each_run(l, image, per_block, q * blocks / chunks, (q + 1) * blocks / chunks, scratch,
                   [&](std::int64_t n, std::int64_t y0, std::int64_t y1) {
                     const float* g = grad_out + (n * l.h_out + y0) * l.w_out * l.c_out;
                     for (std::int64_t i = 0; i < l.k; ++i) {
                       for (std::int64_t j0 = 0; j0 < l.c_out; j0 += kTileChannels) {
                         const std::int64_t cols = std::min(kTileChannels, l.c_out - j0);
                         // A narrow panel takes the next 14 values of the kernel row as a second tile.
                         const bool narrow = cols <= kTileChannels / 2;
                         for (std::int64_t p0 = 0; p0 < kernel_row; p0 += narrow ? 2 * kTileCells : kTileCells) {
                           const std::int64_t second = narrow ? kernel_row - p0 - kTileCells : 0;
                           cpu::in_place_tile_avx512(
                               {y1 - y0, l.stride * band.row, l.w_out * l.c_out, l.w_out, scratch + i * band.row + p0,
                                1, cell_step, g + j0, l.c_out, sum + (i * kernel_row + p0) * l.c_out + j0, l.c_out,
                                std::min(kTileCells, kernel_row - p0), cols, true, kTileCells, kTileCells * l.c_out,
                                std::clamp<std::int64_t>(second, 0, kTileCells)});
                         }
                       }
                     }
                   });
    }
  });
  if (chunks > 1) add_partials_in_order(partials, chunks, size, grad_weight);
}

// The image gradient of a stride-1 convolution is itself one: grad_out padded by K - 1 - padding, convolved
// with the kernel turned half a turn and its channel axes swapped (weight[K-1-i, K-1-j, c, o] at [i, j, o, c]).
bool input_grad_is_a_convolution(const kernels::ConvLayout& l) {
  return l.stride == 1 && l.padding <= l.k - 1 && rows_fill_tiles(l.w);
}

void conv2d_input_grad_direct(const kernels::ConvLayout& l, float* grad_image, const StridedView& grad_out,
                              const float* weight) {
  std::vector<float> turned(static_cast<std::size_t>(l.k * l.k * l.c_out * l.c));
  for (std::int64_t i = 0; i < l.k; ++i) {
    for (std::int64_t j = 0; j < l.k; ++j) {
      const float* from = weight + ((l.k - 1 - i) * l.k + (l.k - 1 - j)) * l.c * l.c_out;
      float* to = turned.data() + (i * l.k + j) * l.c_out * l.c;
      for (std::int64_t c = 0; c < l.c; ++c) {
        for (std::int64_t o = 0; o < l.c_out; ++o) to[o * l.c + c] = from[c * l.c_out + o];
      }
    }
  }
  kernels::ConvLayout adjoint = l;
  adjoint.h = l.h_out;
  adjoint.w = l.w_out;
  adjoint.c = l.c_out;
  adjoint.c_out = l.c;
  adjoint.padding = l.k - 1 - l.padding;
  adjoint.h_out = l.h;
  adjoint.w_out = l.w;
  conv2d_direct(adjoint, grad_image, grad_out, turned.data());
}
#endif

template <typename T>
void conv2d_weight_grad_blocks(const kernels::ConvLayout& l, T* grad_weight, const StridedView& image,
                               const T* grad_out) {
  const std::int64_t patch = l.patch();
  const std::int64_t size = patch * l.c_out;
  const std::int64_t rows = l.w_out > 0 ? l.n * l.h_out : 0;
  if (rows == 0) {  // no output cell: nothing to sum
    std::fill(grad_weight, grad_weight + size, T(0));
    return;
  }
  const std::int64_t per_block = rows_per_block(l);
  const std::int64_t blocks = (rows + per_block - 1) / per_block;
  const std::int64_t chunks = std::min(blocks, kWeightGradChunks);
  std::vector<T> partials(chunks > 1 ? static_cast<std::size_t>(chunks * size) : 0);
  parallel_for(0, chunks, 1, [&](std::int64_t q0, std::int64_t q1) {
    std::vector<T> oversized;
    T* cols = block_scratch<T>(per_block * l.w_out * patch, oversized);
    std::vector<T> product(static_cast<std::size_t>(size));
    for (std::int64_t q = q0; q < q1; ++q) {
      T* sum = chunks > 1 ? partials.data() + q * size : grad_weight;
      for (std::int64_t b = q * blocks / chunks; b < (q + 1) * blocks / chunks; ++b) {
        const std::int64_t first = b * per_block;
        const std::int64_t last = std::min(rows, first + per_block);
        const bool first_of_chunk = b == q * blocks / chunks;
        im2col_rows<T>(l, cols, image, first, last);
        // (patch, cells) @ (cells, C_out): the block's columns read transposed where they lie.
        cpu::gemm<T>(patch, l.c_out, (last - first) * l.w_out, cols, 1, patch, grad_out + first * l.w_out * l.c_out,
                     l.c_out, 1, first_of_chunk ? sum : product.data(), l.c_out, 1);
        if (!first_of_chunk) {
          for (std::int64_t e = 0; e < size; ++e) sum[e] += product[static_cast<std::size_t>(e)];
        }
      }
    }
  });
  if (chunks > 1) add_partials_in_order(partials, chunks, size, grad_weight);
}

// A group of whole images at a time: their columns grad_out @ weightᵀ into scratch, then col2im of them into
// their cells of grad_image. Groups write disjoint memory, so the threads share out the groups; a single group
// is split inside instead (the GEMM by rows, col2im by image rows). A group holds as many images as fit
// kBlockElements column values (at least one), so that small images still make one GEMM of many rows.
template <typename T>
void conv2d_input_grad_images(const kernels::ConvLayout& l, T* grad_image, const T* grad_out, const T* weight) {
  const std::int64_t patch = l.patch();
  const std::int64_t cells = l.h_out * l.w_out;
  const std::int64_t image_size = l.h * l.w * l.c;
  const std::int64_t per_group = std::max<std::int64_t>(1, kBlockElements / std::max<std::int64_t>(1, cells * patch));
  parallel_for(0, (l.n + per_group - 1) / per_group, 1, [&](std::int64_t g0, std::int64_t g1) {
    std::vector<T> oversized;
    T* cols = block_scratch<T>(per_group * cells * patch, oversized);
    for (std::int64_t g = g0; g < g1; ++g) {
      const std::int64_t first = g * per_group;
      kernels::ConvLayout group = l;
      group.n = std::min(per_group, l.n - first);
      // (cells, C_out) @ (C_out, patch), the weight (patch, C_out) read transposed.
      cpu::gemm<T>(group.n * cells, patch, l.c_out, grad_out + first * cells * l.c_out, l.c_out, 1, weight, 1, l.c_out,
                   cols, patch, 1);
      T* images = grad_image + first * image_size;
      const std::int64_t per_row = l.w_out * patch * l.k / l.stride + l.w * l.c;
      parallel_for(0, group.n * l.h, grain_for(per_row),
                   [&](std::int64_t r0, std::int64_t r1) { col2im_rows<T>(group, images, cols, r0, r1); });
    }
  });
}

}  // namespace

void CpuBackend::im2col_kernel(const kernels::ConvLayout& layout, const StridedView& cols, const StridedView& image,
                               std::int64_t /*stride*/, std::int64_t /*padding*/) {
  if (cols.size() == 0) return;
  dispatch_floating(layout.dtype, "im2col", [&]<typename T>() {
    T* out = cols.ptr<T>();
    parallel_for(0, layout.n * layout.h_out, grain_for(layout.w_out * layout.patch()),
                 [&](std::int64_t first, std::int64_t last) {
                   im2col_rows<T>(layout, out + first * layout.w_out * layout.patch(), image, first, last);
                 });
  });
}

void CpuBackend::col2im_kernel(const kernels::ConvLayout& layout, const StridedView& image, const StridedView& cols,
                               std::int64_t /*stride*/, std::int64_t /*padding*/) {
  if (image.size() == 0) return;
  dispatch_floating(layout.dtype, "col2im", [&]<typename T>() {
    T* out = image.ptr<T>();
    const T* in = cols.ptr<T>();
    // Each image row gathers from about K / stride rows of output cells.
    const std::int64_t per_row = layout.w_out * layout.patch() * layout.k / layout.stride + layout.w * layout.c;
    parallel_for(0, layout.n * layout.h, grain_for(per_row),
                 [&](std::int64_t first, std::int64_t last) { col2im_rows<T>(layout, out, in, first, last); });
  });
}

void CpuBackend::conv2d_kernel(const kernels::ConvLayout& layout, const StridedView& out, const StridedView& image,
                               const StridedView& weight, std::int64_t /*stride*/, std::int64_t /*padding*/) {
  if (out.size() == 0) return;
#if defined(__x86_64__)
  if (layout.dtype == DType::Float32 && cpu::gemm_uses_avx512() && rows_fill_tiles(layout.w_out)) {
    return conv2d_direct(layout, out.ptr<float>(), image, weight.ptr<float>());
  }
#endif
  dispatch_floating(layout.dtype, "conv2d",
                    [&]<typename T>() { conv2d_blocks<T>(layout, out.ptr<T>(), image, weight.ptr<T>()); });
}

void CpuBackend::conv2d_weight_grad_kernel(const kernels::ConvLayout& layout, const StridedView& grad_weight,
                                           const StridedView& image, const StridedView& grad_out,
                                           std::int64_t /*stride*/, std::int64_t /*padding*/) {
  if (grad_weight.size() == 0) return;
#if defined(__x86_64__)
  if (layout.dtype == DType::Float32 && cpu::gemm_uses_avx512() && layout.n > 0 && rows_fill_tiles(layout.w_out) &&
      layout.k * layout.c >= kTileCells) {  // shorter kernel rows would leave most of a tile's rows empty
    return conv2d_weight_grad_direct(layout, grad_weight.ptr<float>(), image, grad_out.ptr<float>());
  }
#endif
  dispatch_floating(layout.dtype, "conv2d_weight_grad", [&]<typename T>() {
    conv2d_weight_grad_blocks<T>(layout, grad_weight.ptr<T>(), image, grad_out.ptr<T>());
  });
}

void CpuBackend::conv2d_input_grad_kernel(const kernels::ConvLayout& layout, const StridedView& grad_image,
                                          const StridedView& grad_out, const StridedView& weight,
                                          std::int64_t /*stride*/, std::int64_t /*padding*/) {
  if (grad_image.size() == 0) return;
#if defined(__x86_64__)
  if (layout.dtype == DType::Float32 && cpu::gemm_uses_avx512() && input_grad_is_a_convolution(layout)) {
    return conv2d_input_grad_direct(layout, grad_image.ptr<float>(), grad_out, weight.ptr<float>());
  }
#endif
  dispatch_floating(layout.dtype, "conv2d_input_grad", [&]<typename T>() {
    conv2d_input_grad_images<T>(layout, grad_image.ptr<T>(), grad_out.ptr<T>(), weight.ptr<T>());
  });
}

}  // namespace needle
