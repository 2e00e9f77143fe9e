// The cpu backend's int8 kernels (int8_gemm.h): the drivers of the int8 product with its two epilogues,
// the portable builds and the run-time choice between them and the AVX2 and AVX-512 VNNI builds.
//
// The packed path (AVX-512 VNNI). vpdpbusd multiplies four unsigned bytes by four signed bytes per 32-bit
// lane and adds the four products to the lane. w is cut into strips of kInt8StripCols columns (rows of w),
// each packed just before use into panels of 16 columns: for each group of four depths p .. p + 3, panel j
// holds one 64-byte vector whose lane l is w[n0 + 16 j + l, p .. p + 3], and the vectors of a strip's panels
// for one group lie next to each other, so the micro-kernel reads the strip front to back. Depth is padded
// to a multiple of 4 and columns to a multiple of 16 with zero bytes.
//
// The shift: the packed bytes are w + 128 (w xor 0x80, an unsigned byte), and a's four bytes are broadcast
// as they are (signed). So a tile accumulates sum_p (w + 128) a = sum_p w a + 128 * sum_p a[m, p], and the
// row sums of a, computed once per call, take the second term off at the end. The lanes may wrap around
// 2^32 on the way (vpdpbusd, unlike vpdpbusds, does not saturate), but the difference is right modulo 2^32
// and the exact result fits int32 (K <= kMaxInt8Depth), so it is exact for every int8 value, -128 included.
// Padding bytes are 0, not 0x80, so they add nothing whatever a holds there. (Shifting w rather than a
// costs nothing: the packing rewrites w anyway, while a is read in place, four bytes per broadcast.)
//
// A micro-kernel call computes kInt8PackedTileRows rows of a against one strip over the whole depth, with
// the 6 x 4 accumulators in registers, then subtracts the shift, converts, scales, adds the bias and stores
// (masked at the last columns). A thread packs one strip (k * 64 bytes) and passes all its rows of a over
// it before packing the next. The depth is not blocked: a strip stays in L2 for the depths of real layers
// (2 MiB at K = 32768). Threads split the strips or, with few columns and many rows, the rows.
#include "backend/cpu/int8_gemm.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/ref/ref_kernels.h"
#include "needle/core/threads.h"

namespace needle::cpu {

namespace {

// Rows of w per block: 64 rows of depth 4096 (256 KiB) stay in L2 while every row of a passes over them.
constexpr std::int64_t kColumnBlock = 64;
// Products smaller than this many multiply-adds stay on one thread: waking a worker costs microseconds.
constexpr double kParallelMinWork = 1 << 20;
// quantize_rows splits its rows over threads in chunks of at least this many values.
constexpr std::int64_t kQuantizeGrain = 32768;

std::atomic<Int8Kernel> g_int8_kernel{Int8Kernel::Auto};

bool cpu_has_vnni() {
#if defined(__x86_64__)
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("bmi2");
  return supported;
#else
  return false;
#endif
}

bool cpu_has_avx2() {
#if defined(__x86_64__)
  static const bool supported = __builtin_cpu_supports("avx2");
  return supported;
#else
  return false;
#endif
}

// The build a call uses: the forced one when the CPU has it, else the best the CPU has.
Int8Kernel resolve_kernel() {
  const Int8Kernel choice = g_int8_kernel.load(std::memory_order_relaxed);
  if (choice != Int8Kernel::Auto && int8_kernel_supported(choice)) return choice;
  if (cpu_has_vnni()) return Int8Kernel::Vnni;
  if (cpu_has_avx2()) return Int8Kernel::Avx2;
  return Int8Kernel::Portable;
}

// The portable micro-kernel: one dot product at a time, in loops the compiler vectorises for the target.
void int8_dot_portable(std::int64_t k, const std::int8_t* a, std::int64_t lda, const std::int8_t* w, std::int64_t ldw,
                       std::int64_t rows, std::int64_t cols, std::int32_t* sums) {
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) {
      const std::int8_t* x = a + i * lda;
      const std::int8_t* y = w + j * ldw;
      std::int32_t sum = 0;
      for (std::int64_t p = 0; p < k; ++p) sum += std::int32_t{x[p]} * std::int32_t{y[p]};
      sums[i * kInt8TileCols + j] = sum;
    }
  }
}

void quantize_rows_portable(const float* x, std::int8_t* values, float* scale, std::int64_t first, std::int64_t last,
                            std::int64_t cols) {
  for (std::int64_t row = first; row < last; ++row) {
    ref::quantize_row(x + row * cols, values + row * cols, scale + row, cols);
  }
}

Int8DotKernel choose_dot_kernel() {
  switch (resolve_kernel()) {
#if defined(__x86_64__)
    case Int8Kernel::Vnni:
      return &int8_dot_vnni;
    case Int8Kernel::Avx2:
      return &int8_dot_avx2;
#endif
    default:
      return &int8_dot_portable;
  }
}

QuantizeRowsKernel choose_quantize_kernel() {
  switch (resolve_kernel()) {
#if defined(__x86_64__)
    case Int8Kernel::Vnni:
      return &quantize_rows_avx512;
    case Int8Kernel::Avx2:
      return &quantize_rows_avx2;
#endif
    default:
      return &quantize_rows_portable;
  }
}

// Runs the dot kernel over the (M, N) grid of a (M, K) @ w (N, K)ᵀ and hands every finished tile to
// epilogue(m0, n0, rows, cols, sums), split over threads by rows or, with fewer rows than columns, by
// columns. Each output is computed by exactly one tile whatever the split, so threads never change it.
template <typename Epilogue>
void int8_gemm(const kernels::Int8MatmulLayout& layout, const std::int8_t* a, const std::int8_t* w,
               const Epilogue& epilogue) {
  const std::int64_t m = layout.m;
  const std::int64_t n = layout.n;
  const std::int64_t k = layout.k;
  if (m == 0 || n == 0) return;
  const Int8DotKernel kernel = choose_dot_kernel();
  // One thread's share: rows [m0, m1) times columns [n0, n1), a block of w's rows at a time.
  const auto run = [&](std::int64_t m0, std::int64_t m1, std::int64_t n0, std::int64_t n1) {
    alignas(64) std::int32_t sums[kInt8TileRows * kInt8TileCols];
    for (std::int64_t block = n0; block < n1; block += kColumnBlock) {
      const std::int64_t block_end = std::min(n1, block + kColumnBlock);
      for (std::int64_t i = m0; i < m1; i += kInt8TileRows) {
        const std::int64_t rows = std::min(kInt8TileRows, m1 - i);
        for (std::int64_t j = block; j < block_end; j += kInt8TileCols) {
          const std::int64_t cols = std::min(kInt8TileCols, block_end - j);
          kernel(k, a + i * k, k, w + j * k, k, rows, cols, sums);
          epilogue(i, j, rows, cols, sums);
        }
      }
    }
  };
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (get_num_threads() <= 1 || in_parallel_region() || work < kParallelMinWork) return run(0, m, 0, n);
  if (m >= n) {
    parallel_for(0, (m + kInt8TileRows - 1) / kInt8TileRows, 1, [&](std::int64_t q0, std::int64_t q1) {
      run(q0 * kInt8TileRows, std::min(m, q1 * kInt8TileRows), 0, n);
    });
  } else {
    parallel_for(0, (n + kInt8TileCols - 1) / kInt8TileCols, 1, [&](std::int64_t q0, std::int64_t q1) {
      run(0, m, q0 * kInt8TileCols, std::min(n, q1 * kInt8TileCols));
    });
  }
}

#if defined(__x86_64__)
// A 64-byte aligned scratch buffer per thread, grown on demand and kept for the thread's lifetime.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { release(); }

  std::uint8_t* get(std::int64_t bytes) {
    const auto size = static_cast<std::size_t>(std::max<std::int64_t>(bytes, 64));
    if (size > capacity_) {
      release();
      data_ = ::operator new (size, std::align_val_t{64});
      capacity_ = size;
    }
    return static_cast<std::uint8_t*>(data_);
  }

 private:
  void release() {
    if (data_ != nullptr) ::operator delete (data_, std::align_val_t{64});
    data_ = nullptr;
    capacity_ = 0;
  }
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// The strip of w a thread is passing its rows of a over.
thread_local Scratch t_packed_strip;

bool use_packed_path(const kernels::Int8MatmulLayout& layout) {
  return layout.m >= kInt8PackedMinRows && resolve_kernel() == Int8Kernel::Vnni;
}

// The packed path (see the top of this file) over the whole product, writing through `output`.
void int8_gemm_packed(const kernels::Int8MatmulLayout& layout, const std::int8_t* a, const std::int8_t* w,
                      const Int8Output& output) {
  const std::int64_t m = layout.m;
  const std::int64_t n = layout.n;
  const std::int64_t k = layout.k;
  if (m == 0 || n == 0) return;
  std::vector<std::int32_t> row_sums(static_cast<std::size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) {
    const std::int8_t* row = a + i * k;
    std::int32_t sum = 0;
    for (std::int64_t p = 0; p < k; ++p) sum += row[p];
    row_sums[static_cast<std::size_t>(i)] = sum;
  }
  const std::int64_t strips = (n + kInt8StripCols - 1) / kInt8StripCols;
  // One thread's share: rows [m0, m1) against strips [s0, s1).
  const auto run = [&](std::int64_t m0, std::int64_t m1, std::int64_t s0, std::int64_t s1) {
    std::uint8_t* const strip = t_packed_strip.get(int8_packed_strip_bytes(k, kInt8StripCols));
    for (std::int64_t s = s0; s < s1; ++s) {
      const std::int64_t n0 = s * kInt8StripCols;
      const std::int64_t cols = std::min(kInt8StripCols, n - n0);
      pack_int8_strip_vnni(w + n0 * k, k, cols, strip);
      for (std::int64_t i = m0; i < m1; i += kInt8PackedTileRows) {
        const std::int64_t rows = std::min(kInt8PackedTileRows, m1 - i);
        int8_packed_tile_vnni(k, a + i * k, row_sums.data() + i, rows, strip, cols, i, n0, output);
      }
    }
  };
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const int threads = get_num_threads();
  if (threads <= 1 || in_parallel_region() || work < kParallelMinWork) return run(0, m, 0, strips);
  if (strips >= 2 * threads || n >= m) {
    parallel_for(0, strips, 1, [&](std::int64_t s0, std::int64_t s1) { run(0, m, s0, s1); });
  } else {
    const std::int64_t tiles = (m + kInt8PackedTileRows - 1) / kInt8PackedTileRows;
    parallel_for(0, tiles, 1, [&](std::int64_t t0, std::int64_t t1) {
      run(t0 * kInt8PackedTileRows, std::min(m, t1 * kInt8PackedTileRows), 0, strips);
    });
  }
}
#endif

}  // namespace

void set_int8_kernel(Int8Kernel kernel) { g_int8_kernel.store(kernel, std::memory_order_relaxed); }

bool int8_kernel_supported(Int8Kernel kernel) {
  switch (kernel) {
    case Int8Kernel::Vnni:
      return cpu_has_vnni();
    case Int8Kernel::Avx2:
      return cpu_has_avx2();
    case Int8Kernel::Auto:
    case Int8Kernel::Portable:
      return true;
  }
  return false;
}

}  // namespace needle::cpu

namespace needle {

void CpuBackend::quantize_rows_kernel(const kernels::RowLayout& layout, const StridedView& values,
                                      const StridedView& scale, const StridedView& x) {
  const cpu::QuantizeRowsKernel kernel = cpu::choose_quantize_kernel();
  const std::int64_t grain = std::max<std::int64_t>(1, cpu::kQuantizeGrain / std::max<std::int64_t>(1, layout.cols));
  parallel_for(0, layout.rows, grain, [&](std::int64_t first, std::int64_t last) {
    kernel(x.ptr<float>(), values.ptr<std::int8_t>(), scale.ptr<float>(), first, last, layout.cols);
  });
}

void CpuBackend::int8_matmul_kernel(const kernels::Int8MatmulLayout& layout, const StridedView& out,
                                    const StridedView& a, const StridedView& w) {
  auto* const c = out.ptr<std::int32_t>();
#if defined(__x86_64__)
  if (cpu::use_packed_path(layout)) {
    cpu::Int8Output output;
    output.int_out = c;
    output.ld = layout.n;
    return cpu::int8_gemm_packed(layout, a.ptr<std::int8_t>(), w.ptr<std::int8_t>(), output);
  }
#endif
  cpu::int8_gemm(layout, a.ptr<std::int8_t>(), w.ptr<std::int8_t>(),
                 [&](std::int64_t m0, std::int64_t n0, std::int64_t rows, std::int64_t cols, const std::int32_t* sums) {
                   for (std::int64_t i = 0; i < rows; ++i) {
                     std::copy_n(sums + i * cpu::kInt8TileCols, cols, c + (m0 + i) * layout.n + n0);
                   }
                 });
}

void CpuBackend::quantized_matmul_kernel(const kernels::Int8MatmulLayout& layout, const StridedView& out,
                                         const StridedView& a, const StridedView& a_scale, const StridedView& w,
                                         const StridedView& w_scale, const StridedView& bias) {
  auto* const c = out.ptr<float>();
  const float* const row_scale = a_scale.ptr<float>();
  const float* const col_scale = w_scale.ptr<float>();
  const float* const bias_data = kernels::present(bias) ? bias.ptr<float>() : nullptr;
#if defined(__x86_64__)
  if (cpu::use_packed_path(layout)) {
    cpu::Int8Output output;
    output.float_out = c;
    output.row_scale = row_scale;
    output.col_scale = col_scale;
    output.bias = bias_data;
    output.ld = layout.n;
    return cpu::int8_gemm_packed(layout, a.ptr<std::int8_t>(), w.ptr<std::int8_t>(), output);
  }
#endif
  cpu::int8_gemm(layout, a.ptr<std::int8_t>(), w.ptr<std::int8_t>(),
                 [&](std::int64_t m0, std::int64_t n0, std::int64_t rows, std::int64_t cols, const std::int32_t* sums) {
                   for (std::int64_t i = 0; i < rows; ++i) {
                     for (std::int64_t j = 0; j < cols; ++j) {
                       const std::int64_t col = n0 + j;
                       c[(m0 + i) * layout.n + col] =
                           ref::requantize(sums[i * cpu::kInt8TileCols + j], row_scale[m0 + i] * col_scale[col],
                                           bias_data != nullptr ? bias_data[col] : 0.0F);
                     }
                   }
                 });
}

}  // namespace needle
