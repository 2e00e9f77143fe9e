// The cpu GEMM's driver: cache blocking, packing, the skinny paths, the kernel choice and the split over
// threads. The layout is described in gemm.h; the micro-kernels are in gemm_kernels_avx2.cpp and
// gemm_kernels_avx512.cpp.
#include "backend/cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <vector>

#include "needle/core/threads.h"

namespace needle::cpu {

namespace {

// Cache blocks, per kernel. The kernel sweeps one KC x NR panel of B across the MC x KC block of A (kept
// in L2), then moves to the next panel of B; the KC x NC block of B sits in L3.
//  - AVX2 (6 x 16 float): the 16 KiB float panel of B fits a 32 KiB L1, the 144 KiB block of A a 512 KiB L2.
//  - AVX-512 (14 x 32 float; CPUs with AVX-512 have a 48 KiB L1 and 1-2 MiB of L2 per core): KC = 512
//    makes a 64 KiB panel of B, more than L1 holds, but it is read front to back, which the prefetchers
//    follow; what does not stream is C, whose tile is 14 rows far apart, and C is read and written once per
//    KC step. Measured on an Emerald Rapids Xeon with 2048 x 2048 floats, KC = 512 ran about 5% faster
//    than KC = 256 (larger KC gained nothing more), and MC from 84 to 336 made no difference.
struct BlockSizes {
  std::int64_t mc;
  std::int64_t kc;
  std::int64_t nc;
};

template <typename T>
struct Avx2Blocking;
template <>
struct Avx2Blocking<float> {
  static constexpr BlockSizes blocks = {144, 256, 3072};
};
template <>
struct Avx2Blocking<double> {
  static constexpr BlockSizes blocks = {72, 256, 2048};
};
template <typename T>
struct Avx512Blocking;
template <>
struct Avx512Blocking<float> {
  static constexpr BlockSizes blocks = {168, 512, 3072};
};
template <>
struct Avx512Blocking<double> {
  static constexpr BlockSizes blocks = {84, 512, 2048};
};

// Products smaller than this many multiply-adds stay on one thread: waking a worker costs microseconds.
constexpr double kParallelMinWork = 1 << 20;

// With at most this many rows of A, B's rows are read in place instead of packed: packing B would cost as
// much as the arithmetic it feeds.
constexpr std::int64_t kSkinnyMaxRows = 24;

// A product whose C has at most this many elements and whose k is at least twice kSplitKMinChunk is cut
// along k (see gemm): C is too small to split between threads, and k is long enough to.
constexpr std::int64_t kSplitKMaxOutput = 64 * 64;
constexpr std::int64_t kSplitKMinChunk = 8192;
// At most this many chunks of k, so that their partial products stay small whatever k is.
constexpr std::int64_t kSplitKMaxChunks = 64;

std::atomic<GemmKernel> g_kernel_choice{GemmKernel::Auto};
std::atomic<std::int64_t> g_mc{0};
std::atomic<std::int64_t> g_kc{0};
std::atomic<std::int64_t> g_nc{0};

// A 64-byte aligned scratch buffer per thread, grown on demand and kept for the thread's lifetime.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { release(); }

  template <typename T>
  T* get(std::int64_t count) {
    const auto bytes = static_cast<std::size_t>(count) * sizeof(T);
    if (bytes > capacity_) {
      release();
      data_ = ::operator new (bytes, std::align_val_t{64});
      capacity_ = bytes;
    }
    return static_cast<T*>(data_);
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

thread_local Scratch t_pack_a;
thread_local Scratch t_pack_b;

// The portable micro-kernel: the same contract and tile as the AVX2 ones, as loops the compiler vectorises
// for whatever the target offers (SSE2, NEON).
template <typename T>
void micro_kernel_portable(std::int64_t kc, const T* a, const T* b, std::int64_t ldb, T* c, std::int64_t rsc,
                           std::int64_t csc, std::int64_t rows, std::int64_t cols, bool accumulate) {
  constexpr std::int64_t mr = Avx2Tile<T>::mr;
  constexpr std::int64_t nr = Avx2Tile<T>::nr;
  T tile[mr][nr] = {};
  for (std::int64_t p = 0; p < kc; ++p) {
    for (std::int64_t i = 0; i < mr; ++i) {
      const T x = a[i];
      for (std::int64_t j = 0; j < nr; ++j) tile[i][j] += x * b[j];
    }
    a += mr;
    b += ldb;
  }
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) {
      T& out = c[i * rsc + j * csc];
      out = accumulate ? out + tile[i][j] : tile[i][j];
    }
  }
}

bool cpu_has_avx2() {
#if defined(__x86_64__)
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__)
  static const bool supported = __builtin_cpu_supports("avx512f");
  return supported;
#else
  return false;
#endif
}

// The kernel a product uses: the forced one when the CPU has it, else the best the CPU has.
GemmKernel resolve_kernel() {
  const GemmKernel choice = g_kernel_choice.load(std::memory_order_relaxed);
  if (choice == GemmKernel::Portable) return choice;
  if (choice == GemmKernel::Avx2 && cpu_has_avx2()) return choice;
  if (cpu_has_avx512()) return GemmKernel::Avx512;
  if (cpu_has_avx2()) return GemmKernel::Avx2;
  return GemmKernel::Portable;
}

// The portable dot-product tile: eight partial sums per output, the same contract as dot_kernel_avx2.
template <typename T>
void dot_kernel_portable(std::int64_t k, const T* a, std::int64_t rsa, const T* b, std::int64_t csb, T* c,
                         std::int64_t rsc, std::int64_t csc, std::int64_t rows, std::int64_t cols) {
  constexpr std::int64_t lanes = 8;
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) {
      const T* x = a + i * rsa;
      const T* y = b + j * csb;
      T partial[lanes] = {};
      std::int64_t p = 0;
      for (; p + lanes <= k; p += lanes) {
        for (std::int64_t l = 0; l < lanes; ++l) partial[l] += x[p + l] * y[p + l];
      }
      T sum = 0;
      for (const T part : partial) sum += part;
      for (; p < k; ++p) sum += x[p] * y[p];
      c[i * rsc + j * csc] = sum;
    }
  }
}

// The portable row kernel: gemm.h's loops in the project's baseline instructions.
template <typename T>
void row_kernel_portable(std::int64_t k, const T* a, std::int64_t csa, const T* b, std::int64_t rsb, T* c,
                         std::int64_t csc, std::int64_t cols) {
  std::vector<T> block(static_cast<std::size_t>(cols));
  row_times_matrix(k, a, csa, b, rsb, c, csc, cols, block.data());
}

template <typename T>
RowKernel<T> choose_row_kernel() {
#if defined(__x86_64__)
  if (resolve_kernel() != GemmKernel::Portable && cpu_has_avx2()) return static_cast<RowKernel<T>>(&row_kernel_avx2);
#endif
  return &row_kernel_portable<T>;
}

template <typename T>
DotKernel<T> choose_dot_kernel() {
#if defined(__x86_64__)
  if (resolve_kernel() != GemmKernel::Portable && cpu_has_avx2()) return static_cast<DotKernel<T>>(&dot_kernel_avx2);
#endif
  return &dot_kernel_portable<T>;
}

// How whole panels of a row-major float A are packed: a transpose in registers of the kernel's own width
// (several values a cycle, where the scalar loop moves about one), or the scalar loop.
enum class RowPacking { Scalar, Avx2, Avx512 };

// Packs rows x kc of A (element (i, p) at a[i * rs + p * cs]) into MR-high panels: panel q holds
// a[q * MR + i, p] at dst[q * MR * kc + p * MR + i], zero-padded to a whole panel.
template <typename T, std::int64_t mr, RowPacking rows_packing = RowPacking::Scalar>
void pack_a(std::int64_t rows, std::int64_t kc, const T* a, std::int64_t rs, std::int64_t cs, T* dst) {
  for (std::int64_t i0 = 0; i0 < rows; i0 += mr) {
    const T* src = a + i0 * rs;
    const std::int64_t height = std::min(mr, rows - i0);
    if (height == mr && rs == 1) {  // a column-major A: each step of p is mr contiguous values
      for (std::int64_t p = 0; p < kc; ++p) {
        for (std::int64_t i = 0; i < mr; ++i) dst[p * mr + i] = src[p * cs + i];
      }
    } else if (height == mr && cs == 1) {  // a row-major A: mr rows read side by side
#if defined(__x86_64__)
      if constexpr (rows_packing == RowPacking::Avx512 && std::is_same_v<T, float>) {
        pack_a_rows_avx512(kc, src, rs, dst);
        dst += mr * kc;
        continue;
      }
      if constexpr (rows_packing == RowPacking::Avx2 && std::is_same_v<T, float>) {
        pack_a_rows_avx2(kc, src, rs, dst);
        dst += mr * kc;
        continue;
      }
#endif
      const T* row[mr];
      for (std::int64_t i = 0; i < mr; ++i) row[i] = src + i * rs;
      for (std::int64_t p = 0; p < kc; ++p) {
        for (std::int64_t i = 0; i < mr; ++i) dst[p * mr + i] = row[i][p];
      }
    } else if (height == mr) {
      for (std::int64_t p = 0; p < kc; ++p) {
        for (std::int64_t i = 0; i < mr; ++i) dst[p * mr + i] = src[i * rs + p * cs];
      }
    } else {  // the last, partial panel: height values over zeros, without a test per element
      for (std::int64_t p = 0; p < kc; ++p) {
        // A loop of constant length, and one with a run-time stride: neither becomes a call to memset or
        // memcpy, which would cost more than the few values of a panel row.
        T* out = dst + p * mr;
        for (std::int64_t i = 0; i < mr; ++i) out[i] = T(0);
        for (std::int64_t i = 0; i < height; ++i) out[i] = src[i * rs + p * cs];
      }
    }
    dst += mr * kc;
  }
}

// Packs kc x cols of B (element (p, j) at b[p * rs + j * cs]) into NR-wide panels: panel q holds
// b[p, q * NR + j] at dst[q * NR * kc + p * NR + j], zero-padded to a whole panel.
template <typename T, std::int64_t nr>
void pack_b(std::int64_t kc, std::int64_t cols, const T* b, std::int64_t rs, std::int64_t cs, T* dst) {
  const std::int64_t full = cols / nr;
  if (cs == 1 && full > 1) {
    // A row-major B: the whole panels are filled a row of B at a time, so that B is read front to back (one
    // stream the hardware prefetches) instead of as kc strided pieces per panel.
    for (std::int64_t p = 0; p < kc; ++p) {
      const T* src = b + p * rs;
      for (std::int64_t q = 0; q < full; ++q) {
        T* out = dst + q * nr * kc + p * nr;
        for (std::int64_t j = 0; j < nr; ++j) out[j] = src[q * nr + j];
      }
    }
    if (full * nr == cols) return;
    b += full * nr;
    cols -= full * nr;
    dst += full * nr * kc;
  }
  for (std::int64_t j0 = 0; j0 < cols; j0 += nr) {
    const T* src = b + j0 * cs;
    const std::int64_t width = std::min(nr, cols - j0);
    if (width == nr && cs == 1) {  // a row-major B: each step of p is nr contiguous values
      for (std::int64_t p = 0; p < kc; ++p) {
        for (std::int64_t j = 0; j < nr; ++j) dst[p * nr + j] = src[p * rs + j];
      }
    } else if (width == nr) {
      for (std::int64_t p = 0; p < kc; ++p) {
        for (std::int64_t j = 0; j < nr; ++j) dst[p * nr + j] = src[p * rs + j * cs];
      }
    } else {  // the last, partial panel: width values over zeros, as pack_a's
      for (std::int64_t p = 0; p < kc; ++p) {
        T* out = dst + p * nr;
        for (std::int64_t j = 0; j < nr; ++j) out[j] = T(0);
        for (std::int64_t j = 0; j < width; ++j) out[j] = src[p * rs + j * cs];
      }
    }
    dst += nr * kc;
  }
}

// A micro-kernel with the panel shape and the cache blocks that go with it, chosen once per product.
template <typename T>
struct GemmPlan {
  std::int64_t mr;
  std::int64_t nr;
  MicroKernel<T> kernel;
  void (*pack_a)(std::int64_t rows, std::int64_t kc, const T* a, std::int64_t rs, std::int64_t cs, T* dst);
  void (*pack_b)(std::int64_t kc, std::int64_t cols, const T* b, std::int64_t rs, std::int64_t cs, T* dst);
  BlockSizes block;
  // A strip of B at most this wide may be handed to the kernel with its own row stride, unpadded: the
  // kernel reads no value of a row past `cols` (0: every strip must have NR readable values per row).
  std::int64_t in_place_cols;
  // Whether products at most NR wide read both operands in place (gemm_narrow): the AVX-512 float plan.
  bool narrow_in_place;
  // Whether products at most kNarrowStripsAvx2 strips wide read A in place (gemm_narrow_avx2): the AVX2 float plan.
  bool narrow_a_in_place;
};

// The plan of a kernel on Tile-shaped panels, with set_gemm_blocking's overrides applied (MC and NC
// rounded down to whole panels, so that only the last block of a product has a partial panel).
template <typename T, typename Tile, bool avx512 = false, bool avx2 = false>
GemmPlan<T> make_plan(MicroKernel<T> kernel, BlockSizes defaults) {
  constexpr std::int64_t mr = Tile::mr;
  constexpr std::int64_t nr = Tile::nr;
  const std::int64_t mc = g_mc.load(std::memory_order_relaxed);
  const std::int64_t kc = g_kc.load(std::memory_order_relaxed);
  const std::int64_t nc = g_nc.load(std::memory_order_relaxed);
  BlockSizes block = defaults;
  if (mc > 0) block.mc = std::max(mr, mc / mr * mr);
  if (kc > 0) block.kc = kc;
  if (nc > 0) block.nc = std::max(nr, nc / nr * nr);
  return {mr,
          nr,
          kernel,
          &pack_a < T,
          mr,
          avx512 ? RowPacking::Avx512 : (avx2 ? RowPacking::Avx2 : RowPacking::Scalar) >,
          &pack_b<T, nr>,
          block,
          avx512 ? nr / 2 : 0,
          avx512 && std::is_same_v<T, float>,
          avx2 && std::is_same_v<T, float>};
}

template <typename T>
GemmPlan<T> choose_plan() {
  switch (resolve_kernel()) {
#if defined(__x86_64__)
    case GemmKernel::Avx512:
      return make_plan<T, Avx512Tile<T>, true>(static_cast<MicroKernel<T>>(&micro_kernel_avx512),
                                               Avx512Blocking<T>::blocks);
    case GemmKernel::Avx2:
      return make_plan<T, Avx2Tile<T>, false, true>(static_cast<MicroKernel<T>>(&micro_kernel_avx2),
                                                    Avx2Blocking<T>::blocks);
#endif
    default:
      return make_plan<T, Avx2Tile<T>>(&micro_kernel_portable<T>, Avx2Blocking<T>::blocks);
  }
}

template <typename T>
struct Operands {
  const T* a;
  std::int64_t rsa;
  std::int64_t csa;
  const T* b;
  std::int64_t rsb;
  std::int64_t csb;
  T* c;
  std::int64_t rsc;
  std::int64_t csc;
};

// The blocked product on one thread: both operands packed.
template <typename T>
void gemm_packed(std::int64_t m, std::int64_t n, std::int64_t k, const Operands<T>& x, const GemmPlan<T>& plan) {
  const std::int64_t mr = plan.mr;
  const std::int64_t nr = plan.nr;
  const MicroKernel<T> kernel = plan.kernel;
  const BlockSizes block = plan.block;
  const std::int64_t kc_max = std::min(block.kc, k);
  T* packed_a = t_pack_a.get<T>(std::min(block.mc, (m + mr - 1) / mr * mr) * kc_max);
  T* packed_b = t_pack_b.get<T>(std::min(block.nc, (n + nr - 1) / nr * nr) * kc_max);
  for (std::int64_t jc = 0; jc < n; jc += block.nc) {
    const std::int64_t nc = std::min(block.nc, n - jc);
    for (std::int64_t pc = 0; pc < k; pc += block.kc) {
      const std::int64_t kc = std::min(block.kc, k - pc);
      const bool accumulate = pc > 0;  // the first block of k overwrites C
      plan.pack_b(kc, nc, x.b + pc * x.rsb + jc * x.csb, x.rsb, x.csb, packed_b);
      for (std::int64_t ic = 0; ic < m; ic += block.mc) {
        const std::int64_t mc = std::min(block.mc, m - ic);
        plan.pack_a(mc, kc, x.a + ic * x.rsa + pc * x.csa, x.rsa, x.csa, packed_a);
        for (std::int64_t jr = 0; jr < nc; jr += nr) {
          const T* b_panel = packed_b + jr * kc;
          for (std::int64_t ir = 0; ir < mc; ir += mr) {
            kernel(kc, packed_a + ir * kc, b_panel, nr, x.c + (ic + ir) * x.rsc + (jc + jr) * x.csc, x.rsc, x.csc,
                   std::min(mr, mc - ir), std::min(nr, nc - jr), accumulate);
          }
        }
      }
    }
  }
}

// Few rows of A and a row-major B: only A is packed, and the kernel reads B's rows where they are. Each
// NR-wide strip of B is used by every row panel of A before moving on, so it is read from memory once.
template <typename T>
void gemm_skinny(std::int64_t m, std::int64_t n, std::int64_t k, const Operands<T>& x, const GemmPlan<T>& plan) {
  const std::int64_t mr = plan.mr;
  const std::int64_t nr = plan.nr;
  const MicroKernel<T> kernel = plan.kernel;
  const BlockSizes block = plan.block;
  const std::int64_t kc_max = std::min(block.kc, k);
  T* packed_a = t_pack_a.get<T>((m + mr - 1) / mr * mr * kc_max);
  T* edge_b = t_pack_b.get<T>(nr * kc_max);  // the last strip when n is not a multiple of NR
  for (std::int64_t pc = 0; pc < k; pc += block.kc) {
    const std::int64_t kc = std::min(block.kc, k - pc);
    const bool accumulate = pc > 0;
    plan.pack_a(m, kc, x.a + pc * x.csa, x.rsa, x.csa, packed_a);
    for (std::int64_t jr = 0; jr < n; jr += nr) {
      const std::int64_t cols = std::min(nr, n - jr);
      const T* strip = x.b + pc * x.rsb + jr;
      std::int64_t ldb = x.rsb;
      if (cols < nr && cols > plan.in_place_cols) {
        plan.pack_b(kc, cols, strip, x.rsb, std::int64_t{1}, edge_b);
        strip = edge_b;
        ldb = nr;
      }
      for (std::int64_t ir = 0; ir < m; ir += mr) {
        kernel(kc, packed_a + ir * kc, strip, ldb, x.c + ir * x.rsc + jr * x.csc, x.rsc, x.csc, std::min(mr, m - ir),
               cols, accumulate);
      }
    }
  }
}

// y[i] = sum_p a[i, p] * v[p] for rows of A that are contiguous (cs == 1). Eight partial sums per row,
// combined at the end, give the compiler independent chains to vectorise.
template <typename T>
void gemv_rows(std::int64_t rows, std::int64_t k, const T* a, std::int64_t rs, const T* v, std::int64_t vs, T* y,
               std::int64_t ys) {
  constexpr std::int64_t lanes = 8;
  const T* vec = v;
  if (vs != 1) {
    T* packed = t_pack_b.get<T>(k);
    for (std::int64_t p = 0; p < k; ++p) packed[p] = v[p * vs];
    vec = packed;
  }
  for (std::int64_t i = 0; i < rows; ++i) {
    const T* row = a + i * rs;
    T partial[lanes] = {};
    std::int64_t p = 0;
    for (; p + lanes <= k; p += lanes) {
      for (std::int64_t l = 0; l < lanes; ++l) partial[l] += row[p + l] * vec[p + l];
    }
    T sum = 0;
    for (const T part : partial) sum += part;
    for (; p < k; ++p) sum += row[p] * vec[p];
    y[i * ys] = sum;
  }
}

// Few rows of A (contiguous rows) against a B with contiguous columns: nothing is packed, every output is
// a dot product of two contiguous runs. A KDotCols-wide group of B's columns stays in L1 while every row
// group of A passes over it, so B is read from memory once.
template <typename T>
void gemm_dot(std::int64_t m, std::int64_t n, std::int64_t k, const Operands<T>& x, DotKernel<T> kernel) {
  for (std::int64_t j = 0; j < n; j += kDotCols) {
    for (std::int64_t i = 0; i < m; i += kDotRows) {
      kernel(k, x.a + i * x.rsa, x.rsa, x.b + j * x.csb, x.csb, x.c + i * x.rsc + j * x.csc, x.rsc, x.csc,
             std::min(kDotRows, m - i), std::min(kDotCols, n - j));
    }
  }
}

#if defined(__x86_64__)
// At most NR columns of C (a head's 32 values in attention, a classifier's few classes) with row-major B and C:
// nothing is packed. Packing A would cost about as much as the product, which has only one panel of B to use
// it for; in_place_tile_avx512 broadcasts A's values from where they lie instead (any strides) and reads B's rows
// in place, 14 rows of C at a time (28, as two tiles, when n <= 16). The KC blocks and each element's chain of
// FMAs are the packed kernel's, so the result is bit for bit gemm_packed's. The rows past the last whole tile
// go to gemm_packed: the kernel reads all 14 rows of A.
void gemm_narrow(std::int64_t m, std::int64_t n, std::int64_t k, const Operands<float>& x,
                 const GemmPlan<float>& plan) {
  const std::int64_t mr = plan.mr;
  const std::int64_t whole = m / mr * mr;
  const std::int64_t step = n <= plan.nr / 2 ? 2 * mr : mr;
  for (std::int64_t pc = 0; pc < k; pc += plan.block.kc) {
    const std::int64_t kc = std::min(plan.block.kc, k - pc);
    for (std::int64_t i0 = 0; i0 < whole; i0 += step) {
      const std::int64_t second_rows = step > mr && i0 + mr < whole ? mr : 0;
      in_place_tile_avx512({1, 0, 0, kc, x.a + i0 * x.rsa + pc * x.csa, x.rsa, x.csa, x.b + pc * x.rsb, x.rsb,
                            x.c + i0 * x.rsc, x.rsc, mr, n, pc > 0, mr * x.rsa, mr * x.rsc, second_rows});
    }
  }
  if (whole == m) return;
  Operands<float> rest = x;
  rest.a += whole * x.rsa;
  rest.c += whole * x.rsc;
  gemm_packed(m - whole, n, k, rest, plan);
}

// A float product at most kNarrowStripsAvx2 NR-wide strips wide with a row-major C, on AVX2 (attention's
// 64 x 64 score tiles and its 32 values per head, a convolution's 16 or 32 output channels): A is read in
// place by in_place_tile_avx2 instead of packed. A packed panel of A pays for its copy by serving every strip
// of B; with at most four strips the copy costs a large share of the product (pack_a took 13% of the
// attention kernels' time on a Zen 3 core). B's rows are read in place when contiguous, except a last,
// partial strip; a B with strided rows (the keys of attention's scores, read transposed) is packed, once for
// all rows of A. Each 6-row tile of A runs across every strip while its rows stay in L1. The KC blocks and
// each element's chain of FMAs are gemm_packed's: the same bits.
constexpr std::int64_t kNarrowStripsAvx2 = 4;

void gemm_narrow_avx2(std::int64_t m, std::int64_t n, std::int64_t k, const Operands<float>& x,
                      const GemmPlan<float>& plan) {
  const std::int64_t mr = plan.mr;
  const std::int64_t nr = plan.nr;
  const std::int64_t kc_max = std::min(plan.block.kc, k);
  const std::int64_t whole_strips = x.csb == 1 ? n / nr : 0;  // strips read in place
  float* packed_b = t_pack_b.get<float>((n + nr - 1) / nr * nr * kc_max);
  for (std::int64_t pc = 0; pc < k; pc += plan.block.kc) {
    const std::int64_t kc = std::min(plan.block.kc, k - pc);
    const float* b_block = x.b + pc * x.rsb;
    if (whole_strips * nr < n) {
      plan.pack_b(kc, n - whole_strips * nr, b_block + whole_strips * nr * x.csb, x.rsb, x.csb,
                  packed_b + whole_strips * nr * kc);
    }
    for (std::int64_t ir = 0; ir < m; ir += mr) {
      for (std::int64_t jr = 0; jr < n; jr += nr) {
        const bool in_place = jr / nr < whole_strips;
        in_place_tile_avx2({1, 0, 0, kc, x.a + ir * x.rsa + pc * x.csa, x.rsa, x.csa,
                            in_place ? b_block + jr : packed_b + jr * kc, in_place ? x.rsb : nr, x.c + ir * x.rsc + jr,
                            x.rsc, std::min(mr, m - ir), std::min(nr, n - jr), pc > 0, 0, 0, 0});
      }
    }
  }
}
#endif

// C = A @ B (a block of rows or columns of the whole product) on the calling thread. Every path gives
// every element the same arithmetic, so which one runs never changes a result.
template <typename T>
void gemm_serial(std::int64_t m, std::int64_t n, std::int64_t k, const Operands<T>& x, const GemmPlan<T>& plan) {
  if (m == 0 || n == 0) return;
#if defined(__x86_64__)
  if constexpr (std::is_same_v<T, float>) {
    if (plan.narrow_in_place && n <= plan.nr && m >= plan.mr && x.csb == 1 && x.csc == 1) {
      return gemm_narrow(m, n, k, x, plan);
    }
    if (plan.narrow_a_in_place && n <= kNarrowStripsAvx2 * plan.nr && x.csc == 1) {
      return gemm_narrow_avx2(m, n, k, x, plan);
    }
  }
#endif
  if (m <= kSkinnyMaxRows && x.csb == 1) return gemm_skinny(m, n, k, x, plan);
  gemm_packed(m, n, k, x, plan);
}

// A small C from a long k (a convolution's weight gradient: channels x taps of C, batch x pixels of k):
// splitting C's rows or columns would leave threads idle, so k is cut into chunks, each chunk's product
// goes to a partial C of its own, and the partials are added in chunk order. The chunks depend on k
// alone, never on the thread count, so neither does the result.
template <typename T>
void gemm_split_k(std::int64_t m, std::int64_t n, std::int64_t k, const Operands<T>& x, const GemmPlan<T>& plan,
                  bool parallel) {
  const std::int64_t kc = plan.block.kc;
  const std::int64_t min_chunk = (kSplitKMinChunk + kc - 1) / kc * kc;  // whole KC blocks
  const std::int64_t chunk = std::max(min_chunk, ((k + kSplitKMaxChunks - 1) / kSplitKMaxChunks + kc - 1) / kc * kc);
  const std::int64_t chunks = (k + chunk - 1) / chunk;
  std::vector<T> partials(static_cast<std::size_t>(chunks * m * n));
  parallel_for(0, chunks, parallel ? 1 : chunks, [&](std::int64_t q0, std::int64_t q1) {
    for (std::int64_t q = q0; q < q1; ++q) {
      const std::int64_t p0 = q * chunk;
      Operands<T> part = x;
      part.a += p0 * x.csa;
      part.b += p0 * x.rsb;
      part.c = partials.data() + q * m * n;
      part.rsc = n;
      part.csc = 1;
      gemm_serial(m, n, std::min(chunk, k - p0), part, plan);
    }
  });
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      T sum = partials[static_cast<std::size_t>(i * n + j)];
      for (std::int64_t q = 1; q < chunks; ++q) sum += partials[static_cast<std::size_t>((q * m + i) * n + j)];
      x.c[i * x.rsc + j * x.csc] = sum;
    }
  }
}

}  // namespace

template <typename T>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t rsa, std::int64_t csa, const T* b,
          std::int64_t rsb, std::int64_t csb, T* c, std::int64_t rsc, std::int64_t csc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) c[i * rsc + j * csc] = T(0);
    }
    return;
  }
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const bool parallel = get_num_threads() > 1 && !in_parallel_region() && work >= kParallelMinWork;
  // A single output column (matrix @ vector) or row (vector @ matrix, read as Bᵀ @ vector) with
  // contiguous dot products: no packing at all.
  if ((n == 1 && csa == 1) || (m == 1 && rsb == 1)) {
    const bool column = n == 1 && csa == 1;
    const std::int64_t rows = column ? m : n;
    const T* matrix = column ? a : b;
    const std::int64_t matrix_rs = column ? rsa : csb;
    const T* vector = column ? b : a;
    const std::int64_t vector_stride = column ? rsb : csa;
    const std::int64_t out_stride = column ? rsc : csc;
    parallel_for(0, rows, parallel ? 1 : rows, [&](std::int64_t i0, std::int64_t i1) {
      gemv_rows(i1 - i0, k, matrix + i0 * matrix_rs, matrix_rs, vector, vector_stride, c + i0 * out_stride, out_stride);
    });
    return;
  }
  // One row times a B with contiguous rows: B streamed once, column blocks split over the threads.
  if (m == 1 && csb == 1) {
    const RowKernel<T> row = choose_row_kernel<T>();
    // Each column's sum is the same whatever the blocks, so they may shrink to give every thread a share.
    const std::int64_t threads = parallel ? get_num_threads() : 1;
    const std::int64_t width = std::min(kRowBlockCols, ((n + threads - 1) / threads + 15) / 16 * 16);
    parallel_for(0, (n + width - 1) / width, 1, [&](std::int64_t q0, std::int64_t q1) {
      for (std::int64_t q = q0; q < q1; ++q) {
        const std::int64_t j0 = q * width;
        row(k, a, csa, b + j0, rsb, c + j0 * csc, csc, std::min(width, n - j0));
      }
    });
    return;
  }
  const Operands<T> x{a, rsa, csa, b, rsb, csb, c, rsc, csc};
  // Few rows times a B with contiguous columns (A @ Wᵀ, a linear layer's input gradient): packing B
  // would cost as much as the product. Chosen for the whole product, so the thread split never changes
  // which arithmetic an element gets.
  if (m <= kSkinnyMaxRows && csa == 1 && rsb == 1 && csb != 1) {
    const DotKernel<T> dot = choose_dot_kernel<T>();
    parallel_for(0, (n + kDotCols - 1) / kDotCols, parallel ? 1 : n, [&](std::int64_t q0, std::int64_t q1) {
      const std::int64_t j0 = q0 * kDotCols;
      Operands<T> part = x;
      part.b += j0 * csb;
      part.c += j0 * csc;
      gemm_dot(m, std::min(n, q1 * kDotCols) - j0, k, part, dot);
    });
    return;
  }
  const GemmPlan<T> plan = choose_plan<T>();
  if (m * n <= kSplitKMaxOutput && k >= 2 * kSplitKMinChunk) return gemm_split_k(m, n, k, x, plan, parallel);
  if (!parallel) return gemm_serial(m, n, k, x, plan);
  // Split the larger side of C: each thread then repacks all of the other operand, which costs least
  // when that operand is the smaller one. Chunks are whole register panels.
  const std::int64_t mr = plan.mr;
  const std::int64_t nr = plan.nr;
  if (m >= n) {
    parallel_for(0, (m + mr - 1) / mr, 1, [&](std::int64_t q0, std::int64_t q1) {
      const std::int64_t i0 = q0 * mr;
      const std::int64_t i1 = std::min(m, q1 * mr);
      Operands<T> part = x;
      part.a += i0 * rsa;
      part.c += i0 * rsc;
      gemm_serial(i1 - i0, n, k, part, plan);
    });
  } else {
    parallel_for(0, (n + nr - 1) / nr, 1, [&](std::int64_t q0, std::int64_t q1) {
      const std::int64_t j0 = q0 * nr;
      const std::int64_t j1 = std::min(n, q1 * nr);
      Operands<T> part = x;
      part.b += j0 * csb;
      part.c += j0 * csc;
      gemm_serial(m, j1 - j0, k, part, plan);
    });
  }
}

template void gemm<float>(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, std::int64_t,
                          const float*, std::int64_t, std::int64_t, float*, std::int64_t, std::int64_t);
template void gemm<double>(std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t, std::int64_t,
                           const double*, std::int64_t, std::int64_t, double*, std::int64_t, std::int64_t);

void set_gemm_kernel(GemmKernel kernel) { g_kernel_choice.store(kernel, std::memory_order_relaxed); }

bool gemm_supports(GemmKernel kernel) {
  switch (kernel) {
    case GemmKernel::Avx512:
      return cpu_has_avx512();
    case GemmKernel::Avx2:
      return cpu_has_avx2();
    case GemmKernel::Auto:
    case GemmKernel::Portable:
      return true;
  }
  return false;
}

bool gemm_has_avx2() { return cpu_has_avx2(); }

bool gemm_uses_avx512() { return resolve_kernel() == GemmKernel::Avx512; }

void set_gemm_blocking(std::int64_t mc, std::int64_t kc, std::int64_t nc) {
  g_mc.store(std::max<std::int64_t>(mc, 0), std::memory_order_relaxed);
  g_kc.store(std::max<std::int64_t>(kc, 0), std::memory_order_relaxed);
  g_nc.store(std::max<std::int64_t>(nc, 0), std::memory_order_relaxed);
}

}  // namespace needle::cpu
