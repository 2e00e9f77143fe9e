// The cpu backend's GEMM against the `ref` matmul: sizes around the register blocks (AVX2 and portable
// 6 x 16 float / 6 x 8 double, AVX-512 14 x 32 / 14 x 16) and across the cache blocks (shrunk so small
// matrices cross MC, KC and NC many times, and at their real sizes), every operand layout (transposed,
// stepped, flipped, broadcast batches), k = 0 and empty dimensions, float32 and float64, every micro-kernel
// the CPU can run (AVX-512, AVX2, portable; the others are skipped with the reason), one and two threads.
// Sums are reordered by blocking and FMA, so results are compared within a bound that grows with k; for a
// fixed kernel and layout they must not depend on the thread count at all.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../../src/backend/cpu/gemm.h"
#include "backend_test_util.h"
#include "needle/backend/backend.h"
#include "needle/core/error.h"
#include "needle/core/threads.h"

namespace needle {
namespace {

using testing::HostArray;
using testing::values_of;
using testing::zeros;

Backend& ref() { return backend_for(ref_device()); }
Backend& cpu() { return backend_for(cpu_device()); }

// Sets the GEMM's kernel, cache blocks and the thread count for a scope, and restores the defaults.
class GemmSettings {
 public:
  GemmSettings(cpu::GemmKernel kernel, int threads, std::array<std::int64_t, 3> blocking = {0, 0, 0})
      : previous_threads_(get_num_threads()) {
    cpu::set_gemm_kernel(kernel);
    cpu::set_gemm_blocking(blocking[0], blocking[1], blocking[2]);
    set_num_threads(threads);
  }
  ~GemmSettings() {
    cpu::set_gemm_kernel(cpu::GemmKernel::Auto);
    cpu::set_gemm_blocking(0, 0, 0);
    set_num_threads(previous_threads_);
  }
  GemmSettings(const GemmSettings&) = delete;
  GemmSettings& operator=(const GemmSettings&) = delete;

 private:
  int previous_threads_;
};

enum class Layout { RowMajor, ColumnMajor, Stepped, Flipped, BatchBroadcast };
const std::vector<Layout> kLayouts = {Layout::RowMajor, Layout::ColumnMajor, Layout::Stepped, Layout::Flipped,
                                      Layout::BatchBroadcast};

// A batch + (rows, cols) operand with random values in [-1, 1), laid out as `layout` says.
HostArray operand(std::mt19937_64& rng, DType dtype, const Shape& batch, std::int64_t rows, std::int64_t cols,
                  Layout layout) {
  Shape shape = batch;
  shape.push_back(rows);
  shape.push_back(cols);
  const std::size_t ndim = shape.size();
  Shape base = shape;
  if (layout == Layout::ColumnMajor) std::swap(base[ndim - 1], base[ndim - 2]);
  if (layout == Layout::Stepped) {
    base[ndim - 1] *= 3;
    base[ndim - 2] *= 2;
  }
  if (layout == Layout::BatchBroadcast) {
    for (std::size_t d = 0; d + 2 < ndim; ++d) base[d] = 1;
  }
  HostArray a = zeros(dtype, base);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  const std::int64_t count = numel(base);
  for (std::int64_t i = 0; i < count; ++i) {
    if (dtype == DType::Float32) {
      a.view.ptr<float>()[i] = static_cast<float>(uniform(rng));
    } else {
      a.view.ptr<double>()[i] = uniform(rng);
    }
  }
  switch (layout) {
    case Layout::RowMajor:
      return a;
    case Layout::ColumnMajor: {
      std::vector<std::size_t> perm(ndim);
      for (std::size_t d = 0; d < ndim; ++d) perm[d] = d;
      std::swap(perm[ndim - 1], perm[ndim - 2]);
      return testing::permuted(a, perm);
    }
    case Layout::Stepped:
      return testing::stepped(testing::stepped(a, ndim - 1, 3), ndim - 2, 2);
    case Layout::Flipped:
      return testing::flipped(testing::flipped(a, ndim - 1), ndim - 2);
    case Layout::BatchBroadcast:
      return testing::broadcast_to(a, shape);
  }
  return a;
}

// An output filled with NaN, so that an element the kernel forgets to write is caught.
HostArray output(DType dtype, const Shape& batch, std::int64_t rows, std::int64_t cols, bool column_major) {
  Shape shape = batch;
  shape.push_back(rows);
  shape.push_back(cols);
  const std::size_t ndim = shape.size();
  Shape base = shape;
  if (column_major) std::swap(base[ndim - 1], base[ndim - 2]);
  HostArray out = zeros(dtype, base);
  for (std::int64_t i = 0; i < numel(base); ++i) {
    if (dtype == DType::Float32) {
      out.view.ptr<float>()[i] = std::numeric_limits<float>::quiet_NaN();
    } else {
      out.view.ptr<double>()[i] = std::numeric_limits<double>::quiet_NaN();
    }
  }
  if (!column_major) return out;
  std::vector<std::size_t> perm(ndim);
  for (std::size_t d = 0; d < ndim; ++d) perm[d] = d;
  std::swap(perm[ndim - 1], perm[ndim - 2]);
  return testing::permuted(out, perm);
}

// A copy of `a` with every value replaced by its absolute value (same layout).
HostArray absolute(const HostArray& a) {
  HostArray copy = a;
  copy.buffer = std::make_shared<std::vector<std::int64_t>>(*a.buffer);
  const auto shift = static_cast<char*>(a.view.data) - reinterpret_cast<char*>(a.buffer->data());
  copy.view.data = reinterpret_cast<char*>(copy.buffer->data()) + shift;
  const auto cells = static_cast<std::int64_t>(copy.buffer->size() * sizeof(std::int64_t) / itemsize(a.view.dtype));
  for (std::int64_t i = 0; i < cells; ++i) {
    if (a.view.dtype == DType::Float32) {
      float& x = reinterpret_cast<float*>(copy.buffer->data())[i];
      x = std::abs(x);
    } else {
      double& x = reinterpret_cast<double*>(copy.buffer->data())[i];
      x = std::abs(x);
    }
  }
  return copy;
}

// |cpu - ref| <= k * eps * 4 * (|A| @ |B|), the classic bound for a reordered sum of k products.
void expect_close(const HostArray& a, const HostArray& b, const StridedView& expected, const StridedView& actual,
                  std::int64_t k) {
  const DType dtype = expected.dtype;
  HostArray magnitude = zeros(dtype, expected.shape);
  ref().matmul(magnitude.view, absolute(a).view, absolute(b).view);
  const double eps =
      dtype == DType::Float32 ? std::numeric_limits<float>::epsilon() : std::numeric_limits<double>::epsilon();
  const double scale = 4.0 * static_cast<double>(k + 1) * eps;
  const auto compare = [&](const auto& e, const auto& got, const auto& mag) {
    for (std::size_t i = 0; i < e.size(); ++i) {
      const double bound = scale * static_cast<double>(mag[i]) + std::numeric_limits<double>::min();
      if (!(std::abs(static_cast<double>(e[i]) - static_cast<double>(got[i])) <= bound)) {
        ADD_FAILURE() << "element " << i << " of " << e.size() << ": ref " << e[i] << ", cpu " << got[i]
                      << ", allowed error " << bound;
        return;
      }
    }
  };
  if (dtype == DType::Float32) {
    compare(values_of<float>(expected), values_of<float>(actual), values_of<float>(magnitude.view));
  } else {
    compare(values_of<double>(expected), values_of<double>(actual), values_of<double>(magnitude.view));
  }
}

// Runs one product on both backends and compares; returns the cpu result's values (row-major).
std::vector<double> check_product(std::mt19937_64& rng, DType dtype, const Shape& batch, std::int64_t m, std::int64_t k,
                                  std::int64_t n, Layout layout_a, Layout layout_b, bool out_column_major) {
  SCOPED_TRACE(str(dtype_name(dtype), " batch ", shape_str(batch), " m ", m, " k ", k, " n ", n, " layouts ",
                   static_cast<int>(layout_a), static_cast<int>(layout_b), out_column_major ? " C col-major" : ""));
  const HostArray a = operand(rng, dtype, batch, m, k, layout_a);
  const HostArray b = operand(rng, dtype, batch, k, n, layout_b);
  HostArray expected = output(dtype, batch, m, n, false);
  HostArray actual = output(dtype, batch, m, n, out_column_major);
  ref().matmul(expected.view, a.view, b.view);
  cpu().matmul(actual.view, a.view, b.view);
  expect_close(a, b, expected.view, actual.view, k);
  std::vector<double> result;
  if (dtype == DType::Float32) {
    for (float x : values_of<float>(actual.view)) result.push_back(x);
  } else {
    result = values_of<double>(actual.view);
  }
  return result;
}

const char* kernel_name(cpu::GemmKernel kernel) {
  switch (kernel) {
    case cpu::GemmKernel::Auto:
      return "Auto";
    case cpu::GemmKernel::Avx512:
      return "Avx512";
    case cpu::GemmKernel::Avx2:
      return "Avx2";
    case cpu::GemmKernel::Portable:
      return "Portable";
  }
  return "?";
}

// Small cache blocks: two A panels per MC, KC = 16, and three float (six double) B panels per NC, for the
// register block of each kernel.
std::array<std::int64_t, 3> tiny_blocks(cpu::GemmKernel kernel) {
  const bool avx512 = kernel == cpu::GemmKernel::Avx512 ||
                      (kernel == cpu::GemmKernel::Auto && cpu::gemm_supports(cpu::GemmKernel::Avx512));
  if (avx512) return {28, 16, 96};
  return {12, 16, 48};
}

// The tests below run once per micro-kernel; a kernel the CPU cannot run is skipped with the reason.
class CpuGemmKernel : public ::testing::TestWithParam<cpu::GemmKernel> {
 protected:
  void SetUp() override {
    if (!cpu::gemm_supports(GetParam())) {
      GTEST_SKIP() << "this CPU cannot run the " << kernel_name(GetParam()) << " GEMM kernel";
    }
  }
  cpu::GemmKernel kernel() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Kernels, CpuGemmKernel,
                         ::testing::Values(cpu::GemmKernel::Avx512, cpu::GemmKernel::Avx2, cpu::GemmKernel::Portable),
                         [](const ::testing::TestParamInfo<cpu::GemmKernel>& info) {
                           return std::string(kernel_name(info.param));
                         });

TEST_P(CpuGemmKernel, EdgesOfEveryBlock) {
  // Random (m, k, n) from sizes around both register blocks and the tiny cache blocks, so products cross
  // MC, KC (accumulating into C) and NC in every combination of full and partial panels.
  const std::vector<std::int64_t> sizes = {1,  7,  8,  9,  11, 12, 13, 14, 15, 16, 17,
                                           27, 28, 29, 31, 32, 33, 63, 64, 65, 97, 257};
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<std::size_t> pick(0, sizes.size() - 1);
  for (int threads : {1, 2}) {
    const GemmSettings settings(kernel(), threads, tiny_blocks(kernel()));
    SCOPED_TRACE(str(threads, " threads"));
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (int trial = 0; trial < 60; ++trial) {
        const std::int64_t m = sizes[pick(rng)];
        const std::int64_t k = sizes[pick(rng)];
        const std::int64_t n = sizes[pick(rng)];
        const Layout la = kLayouts[static_cast<std::size_t>(trial) % 4];
        const Layout lb = kLayouts[static_cast<std::size_t>(trial / 4) % 4];
        check_product(rng, dtype, {}, m, k, n, la, lb, trial % 3 == 0);
      }
    }
  }
}

TEST_P(CpuGemmKernel, EverySizePairAroundTheRegisterBlock) {
  // Every (m, n) combination near MR and NR of every kernel, with k crossing the tiny KC; both the packed
  // path (column-major B) and the skinny one (row-major B read in place), and a column-major C.
  const std::vector<std::int64_t> sizes = {1, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 25, 28, 29, 31, 32, 33};
  std::mt19937_64 rng(12);
  const GemmSettings settings(kernel(), 1, tiny_blocks(kernel()));
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (std::int64_t m : sizes) {
      for (std::int64_t n : sizes) {
        check_product(rng, dtype, {}, m, 33, n, Layout::RowMajor,
                      (m + n) % 2 == 0 ? Layout::RowMajor : Layout::ColumnMajor, (m * n) % 3 == 0);
      }
    }
  }
}

TEST_P(CpuGemmKernel, FullTilesAtTheDefaultBlocks) {
  // Whole multiples of both register blocks at the default cache blocks: the full-tile stores, with and
  // without accumulation (k within and past KC), on row-major and column-major C.
  std::mt19937_64 rng(20);
  for (int threads : {1, 2}) {
    const GemmSettings settings(kernel(), threads);
    SCOPED_TRACE(str(threads, " threads"));
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (std::int64_t k : {1, 64, 256, 300}) {
        check_product(rng, dtype, {}, 42, k, 96, Layout::RowMajor, Layout::RowMajor, false);
        check_product(rng, dtype, {}, 84, k, 64, Layout::ColumnMajor, Layout::RowMajor, false);
        check_product(rng, dtype, {}, 42, k, 96, Layout::RowMajor, Layout::ColumnMajor, true);
      }
    }
  }
}

TEST_P(CpuGemmKernel, RealBlockSizes) {
  // Straddles the default MC (AVX-512: 168 float / 84 double; AVX2: 144 / 72), KC (AVX-512: 512; AVX2:
  // 256) and NC (3072 float / 2048 double).
  struct Case {
    std::int64_t m, k, n;
  };
  const std::vector<Case> cases = {{145, 257, 40},  {73, 257, 33},  {169, 257, 40}, {85, 513, 33}, {257, 257, 100},
                                   {20, 300, 70},   {30, 5, 3073},  {30, 3, 2049},  {1, 513, 65},  {65, 513, 1},
                                   {13, 257, 3105}, {43, 1025, 97}, {29, 512, 64}};
  std::mt19937_64 rng(13);
  for (int threads : {1, 2}) {
    const GemmSettings settings(kernel(), threads);
    SCOPED_TRACE(str(threads, " threads"));
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (std::size_t i = 0; i < cases.size(); ++i) {
        const Layout la = kLayouts[i % 4];
        const Layout lb = kLayouts[(i + 1) % 4];
        check_product(rng, dtype, {}, cases[i].m, cases[i].k, cases[i].n, la, lb, i % 2 == 1);
        check_product(rng, dtype, {}, cases[i].m, cases[i].k, cases[i].n, Layout::RowMajor, Layout::RowMajor, false);
      }
    }
  }
}

TEST_P(CpuGemmKernel, DotPathForFewRowsAndTransposedB) {
  // Few rows of a row-major A times a B with contiguous columns read both in place: tiles of 3 x 4
  // dot products, k in vector steps plus a tail.
  std::mt19937_64 rng(19);
  for (int threads : {1, 2}) {
    const GemmSettings settings(kernel(), threads);
    SCOPED_TRACE(str(threads, " threads"));
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (std::int64_t m : {2, 3, 4, 5, 7, 24}) {
        for (std::int64_t n : {2, 3, 4, 5, 9}) {
          for (std::int64_t k : {1, 3, 4, 7, 8, 9, 17}) {
            check_product(rng, dtype, {}, m, k, n, Layout::RowMajor, Layout::ColumnMajor, (m + k) % 2 == 0);
          }
        }
      }
      check_product(rng, dtype, {}, 20, 300, 700, Layout::RowMajor, Layout::ColumnMajor, false);
      check_product(rng, dtype, {3}, 24, 129, 65, Layout::RowMajor, Layout::ColumnMajor, true);
    }
  }
}

TEST_P(CpuGemmKernel, RowPathForOneRowAndRowMajorB) {
  // One row of A times a B with contiguous rows streams B four rows at a time over blocks of columns: k in
  // steps of four plus a tail, n across vector widths and across a block edge, A stepped or flipped, C
  // column-major, and the same result at every thread count.
  std::mt19937_64 rng(23);
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (std::int64_t n : {1, 7, 8, 9, 31, 64, 65, 1000, 8192 + 37}) {
      for (std::int64_t k : {1, 3, 4, 5, 8, 67}) {
        std::vector<std::vector<double>> results;
        const std::uint64_t seed = rng();
        for (int threads : {1, 2, 3}) {
          const GemmSettings settings(kernel(), threads);
          std::mt19937_64 same(seed);  // the same inputs at every thread count
          const Layout la = kLayouts[static_cast<std::size_t>(n + k) % 4 == 1 ? 0 : static_cast<std::size_t>(k) % 4];
          results.push_back(check_product(same, dtype, {}, 1, k, n, la == Layout::ColumnMajor ? Layout::Stepped : la,
                                          Layout::RowMajor, n % 2 == 1));
        }
        for (std::size_t i = 1; i < results.size(); ++i) {
          EXPECT_TRUE(results[i] == results[0]) << "n " << n << " k " << k;
        }
      }
    }
    check_product(rng, dtype, {3}, 1, 129, 300, Layout::RowMajor, Layout::RowMajor, false);
  }
}

TEST_P(CpuGemmKernel, DeterministicAcrossRunsAndThreadCounts) {
  struct Case {
    std::int64_t m, k, n;
    Layout la, lb;
  };
  const std::vector<Case> cases = {
      {200, 300, 150, Layout::RowMajor, Layout::RowMajor},      {20, 300, 400, Layout::RowMajor, Layout::RowMajor},
      {300, 100, 50, Layout::ColumnMajor, Layout::ColumnMajor}, {700, 300, 1, Layout::RowMajor, Layout::RowMajor},
      {1, 300, 700, Layout::RowMajor, Layout::ColumnMajor},     {20, 300, 700, Layout::RowMajor, Layout::ColumnMajor},
      {100, 300, 333, Layout::RowMajor, Layout::RowMajor}};
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (const Case& c : cases) {
      std::vector<std::vector<double>> results;
      for (int threads : {1, 2, 2, 3}) {
        const GemmSettings settings(kernel(), threads);
        std::mt19937_64 rng(17);  // the same inputs every time
        results.push_back(check_product(rng, dtype, {}, c.m, c.k, c.n, c.la, c.lb, false));
      }
      for (std::size_t i = 1; i < results.size(); ++i) {
        EXPECT_TRUE(results[i] == results[0]) << "m " << c.m << " k " << c.k << " n " << c.n << ", run " << i;
      }
    }
  }
}

TEST_P(CpuGemmKernel, NarrowProductsGiveThePackedPathsBits) {
  // Narrow float products with a row-major C skip packing. With the AVX-512 kernel, up to 32 columns and a
  // row-major B read both operands in place (14 or, up to 16 columns, 28 rows of C per kernel call; the rows
  // past the last whole 14 packed). With the AVX2 kernel, up to 64 columns read A in place, 6 rows of C per
  // call and the last tile partial; B's whole strips are read in place when its rows are contiguous, its last
  // partial strip and a transposed B packed. A column-major C takes the packed path instead: the two must agree
  // bit for bit, across KC blocks too.
  if (kernel() == cpu::GemmKernel::Portable) GTEST_SKIP() << "the portable kernel packs every product";
  const bool avx512 = kernel() == cpu::GemmKernel::Avx512;
  const std::vector<std::int64_t> rows = avx512 ? std::vector<std::int64_t>{14, 15, 27, 28, 29, 42, 43, 100}
                                                : std::vector<std::int64_t>{1, 5, 6, 7, 13, 64, 100};
  const std::vector<std::int64_t> columns = avx512 ? std::vector<std::int64_t>{1, 5, 16, 17, 31, 32}
                                                   : std::vector<std::int64_t>{1, 5, 16, 17, 31, 32, 48, 63, 64};
  std::mt19937_64 seeds(31);
  for (const std::array<std::int64_t, 3> blocks : {std::array<std::int64_t, 3>{0, 0, 0}, tiny_blocks(kernel())}) {
    const GemmSettings settings(kernel(), 1, blocks);
    for (const std::int64_t m : rows) {
      for (const std::int64_t n : columns) {
        for (const std::int64_t k : {1, 17, 600}) {
          for (const Layout la : {Layout::RowMajor, Layout::ColumnMajor, Layout::Stepped}) {
            for (const Layout lb : {Layout::RowMajor, Layout::ColumnMajor}) {
              const std::uint64_t seed = seeds();
              std::mt19937_64 rng(seed);
              const std::vector<double> in_place = check_product(rng, DType::Float32, {}, m, k, n, la, lb, false);
              rng.seed(seed);  // the same operands
              const std::vector<double> packed = check_product(rng, DType::Float32, {}, m, k, n, la, lb, true);
              EXPECT_TRUE(in_place == packed)
                  << "m " << m << " k " << k << " n " << n << " A layout " << static_cast<int>(la) << " B layout "
                  << static_cast<int>(lb) << " KC " << blocks[1];
            }
          }
        }
      }
    }
  }
}

TEST_P(CpuGemmKernel, LongKIntoASmallOutputIsSplitAlongKTheSameWayOnEveryThreadCount) {
  // A small C from a long k (a convolution's weight gradient) is cut into chunks of k: at the threshold
  // (k = 16384), past it with a partial last chunk, and with k long enough that the chunks grow past their
  // minimum (more than 64 of them otherwise). Narrow outputs (n <= 16) also take the AVX-512 kernel's
  // one-vector tile reading B in place.
  struct Case {
    std::int64_t m, k, n;
    Layout la, lb;
  };
  const std::vector<Case> cases = {{9, 16384, 16, Layout::ColumnMajor, Layout::RowMajor},
                                   {9, 40001, 16, Layout::ColumnMajor, Layout::RowMajor},
                                   {2, 600007, 3, Layout::RowMajor, Layout::RowMajor},
                                   {5, 20000, 9, Layout::RowMajor, Layout::ColumnMajor},
                                   {30, 17000, 33, Layout::Flipped, Layout::Stepped}};
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (const Case& c : cases) {
      std::vector<std::vector<double>> results;
      for (int threads : {1, 2}) {
        const GemmSettings settings(kernel(), threads);
        std::mt19937_64 rng(23);  // the same inputs every time
        results.push_back(check_product(rng, dtype, {}, c.m, c.k, c.n, c.la, c.lb, false));
      }
      for (std::size_t i = 1; i < results.size(); ++i) {
        EXPECT_TRUE(results[i] == results[0]) << "m " << c.m << " k " << c.k << " n " << c.n << ", run " << i;
      }
    }
  }
}

TEST_P(CpuGemmKernel, NonFiniteValuesPropagate) {
  // A NaN or infinity in A or B reaches exactly the outputs it should (padding must not leak it).
  const GemmSettings settings(kernel(), 1, tiny_blocks(kernel()));
  for (DType dtype : {DType::Float32, DType::Float64}) {
    std::mt19937_64 rng(18);
    HostArray a = operand(rng, dtype, {}, 13, 20, Layout::RowMajor);
    HostArray b = operand(rng, dtype, {}, 20, 19, Layout::RowMajor);
    if (dtype == DType::Float32) {
      a.view.ptr<float>()[5 * 20 + 3] = std::numeric_limits<float>::infinity();
      b.view.ptr<float>()[7 * 19 + 18] = std::numeric_limits<float>::quiet_NaN();
    } else {
      a.view.ptr<double>()[5 * 20 + 3] = std::numeric_limits<double>::infinity();
      b.view.ptr<double>()[7 * 19 + 18] = std::numeric_limits<double>::quiet_NaN();
    }
    HostArray expected = output(dtype, {}, 13, 19, false);
    HostArray actual = output(dtype, {}, 13, 19, false);
    ref().matmul(expected.view, a.view, b.view);
    cpu().matmul(actual.view, a.view, b.view);
    dispatch_dtype(dtype, [&]<typename T>() {
      if constexpr (std::is_floating_point_v<T>) {
        const std::vector<T> e = values_of<T>(expected.view);
        const std::vector<T> got = values_of<T>(actual.view);
        for (std::size_t i = 0; i < e.size(); ++i) {
          ASSERT_EQ(std::isnan(e[i]), std::isnan(got[i])) << i;
          ASSERT_EQ(std::isinf(e[i]), std::isinf(got[i])) << i;
        }
      }
    });
  }
}

TEST(CpuGemm, AutoPicksTheBestKernelTheCpuHas) {
  // A forced kernel the CPU lacks falls back to Auto; Auto and Portable are always available.
  EXPECT_TRUE(cpu::gemm_supports(cpu::GemmKernel::Auto));
  EXPECT_TRUE(cpu::gemm_supports(cpu::GemmKernel::Portable));
  if (cpu::gemm_supports(cpu::GemmKernel::Avx512)) {
    EXPECT_TRUE(cpu::gemm_supports(cpu::GemmKernel::Avx2));
  }
  EXPECT_EQ(cpu::gemm_has_avx2(), cpu::gemm_supports(cpu::GemmKernel::Avx2));
  std::mt19937_64 rng(21);
  for (cpu::GemmKernel kernel :
       {cpu::GemmKernel::Auto, cpu::GemmKernel::Avx512, cpu::GemmKernel::Avx2, cpu::GemmKernel::Portable}) {
    const GemmSettings settings(kernel, 1);
    SCOPED_TRACE(kernel_name(kernel));
    check_product(rng, DType::Float32, {}, 30, 40, 50, Layout::RowMajor, Layout::RowMajor, false);
  }
}

#if defined(__x86_64__)
TEST(CpuGemm, RowPanelPackersCopyEveryValueAndNothingPast) {
  // The vector packers of a row-major A (a transpose in registers, eight or sixteen steps of k at a time, then
  // a scalar tail) against the definition: dst[p * mr + i] = a[i * rs + p], for k on both sides of a whole
  // step and a row stride that is not a multiple of the vector; the values after the panel stay untouched.
  struct Packer {
    const char* name;
    cpu::GemmKernel kernel;
    std::int64_t mr;
    void (*pack)(std::int64_t, const float*, std::int64_t, float*);
  };
  const std::vector<Packer> packers = {
      {"avx2", cpu::GemmKernel::Avx2, cpu::Avx2Tile<float>::mr, &cpu::pack_a_rows_avx2},
      {"avx512", cpu::GemmKernel::Avx512, cpu::Avx512Tile<float>::mr, &cpu::pack_a_rows_avx512}};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> value(-1.0F, 1.0F);
  int tested = 0;
  for (const Packer& packer : packers) {
    if (!cpu::gemm_supports(packer.kernel)) continue;
    ++tested;
    for (const std::int64_t kc : {0, 1, 7, 8, 9, 15, 16, 17, 31, 64, 67}) {
      const std::int64_t rs = kc + 3;
      std::vector<float> a(static_cast<std::size_t>(packer.mr * rs));
      for (float& x : a) x = value(rng);
      constexpr float kGuard = 12345.0F;
      std::vector<float> dst(static_cast<std::size_t>(packer.mr * kc + 16), kGuard);
      packer.pack(kc, a.data(), rs, dst.data());
      for (std::int64_t p = 0; p < kc; ++p) {
        for (std::int64_t i = 0; i < packer.mr; ++i) {
          ASSERT_EQ(dst[static_cast<std::size_t>(p * packer.mr + i)], a[static_cast<std::size_t>(i * rs + p)])
              << packer.name << " kc " << kc << " p " << p << " row " << i;
        }
      }
      for (std::size_t e = static_cast<std::size_t>(packer.mr * kc); e < dst.size(); ++e) {
        ASSERT_EQ(dst[e], kGuard) << packer.name << " kc " << kc << ": wrote past the panel at " << e;
      }
    }
  }
  if (tested == 0) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512";
}
#endif

TEST(CpuGemm, EveryLayoutPair) {
  std::mt19937_64 rng(14);
  for (int threads : {1, 2}) {
    const GemmSettings settings(cpu::GemmKernel::Auto, threads, tiny_blocks(cpu::GemmKernel::Auto));
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (Layout la : kLayouts) {
        for (Layout lb : kLayouts) {
          for (const auto& [m, k, n] :
               std::vector<std::array<std::int64_t, 3>>{{9, 17, 33}, {30, 20, 7}, {1, 20, 9}, {9, 20, 1}}) {
            check_product(rng, dtype, {2}, m, k, n, la, lb, (m + n) % 2 == 0);
          }
        }
      }
    }
  }
}

TEST(CpuGemm, Batches) {
  // Many small matrices (spread over threads by matrix), a few large ones (each split over threads),
  // broadcast on either side, and batch axes of several dimensions.
  std::mt19937_64 rng(15);
  for (int threads : {1, 2}) {
    const GemmSettings settings(cpu::GemmKernel::Auto, threads);
    for (DType dtype : {DType::Float32, DType::Float64}) {
      check_product(rng, dtype, {37}, 5, 9, 17, Layout::RowMajor, Layout::BatchBroadcast, false);
      check_product(rng, dtype, {2, 3}, 7, 8, 9, Layout::BatchBroadcast, Layout::ColumnMajor, true);
      check_product(rng, dtype, {3}, 130, 70, 120, Layout::RowMajor, Layout::BatchBroadcast, false);
      check_product(rng, dtype, {2}, 128, 128, 128, Layout::BatchBroadcast, Layout::Flipped, false);
    }
  }
}

TEST(CpuGemm, EmptyAndZeroInner) {
  std::mt19937_64 rng(16);
  for (int threads : {1, 2}) {
    const GemmSettings settings(cpu::GemmKernel::Auto, threads);
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (const auto& [m, k, n] : std::vector<std::array<std::int64_t, 3>>{
               {0, 3, 4}, {3, 0, 4}, {3, 4, 0}, {0, 0, 0}, {65, 0, 17}, {1, 0, 1}}) {
        // k = 0 must write zeros over the NaN the output starts with.
        check_product(rng, dtype, {2}, m, k, n, Layout::RowMajor, Layout::ColumnMajor, m % 2 == 1);
      }
      check_product(rng, dtype, {0}, 4, 5, 6, Layout::RowMajor, Layout::RowMajor, false);
    }
  }
}

}  // namespace
}  // namespace needle
