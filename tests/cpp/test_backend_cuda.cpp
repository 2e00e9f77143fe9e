// The `cuda` backend against the `ref` backend: every kernel on random data, every dtype, sizes around
// the thread-block and warp widths, and every layout the layer above produces (contiguous, transposed,
// flipped, stepped, broadcast). Inputs are made on `ref`, copied to the GPU, and the same views are
// taken on both sides. Integer and bool results must match exactly; float results to rounding (sums,
// products and transcendental functions may round differently on the GPU).
//
// Builds with and without NEEDLE_ENABLE_CUDA: the device is queried at run time, and every test that
// needs a GPU skips with "no CUDA device visible" when there is none. The tests of what happens without
// a device run everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "needle/autograd/tensor.h"
#include "needle/backend/backend.h"
#include "needle/backend/cuda.h"
#include "needle/core/array_ops.h"
#include "needle/core/error.h"
#include "needle/core/ndarray.h"
#include "needle/core/random.h"
#include "needle/ops/ops.h"

namespace needle {
namespace {

// ---- without a device ---------------------------------------------------------------------------

TEST(CudaDiscovery, CountIsConsistentWithEnabled) {
  const int count = cuda_device_count();
  EXPECT_GE(count, 0);
  EXPECT_EQ(cuda_available(), count > 0);
  EXPECT_EQ(cuda_device().enabled(), count > 0);
  EXPECT_FALSE(cuda_device(count).enabled());
  EXPECT_FALSE(cuda_device(-1).enabled());
  EXPECT_EQ(cuda_unavailable_reason().empty(), count > 0);
}

TEST(CudaDiscovery, MissingDeviceRaisesRuntimeErrorNamingCuda) {
  // cuda:count never exists; without any device, cuda:0 does not either.
  for (const Device device : {cuda_device(cuda_device_count()), cuda_device(0)}) {
    if (device.enabled()) continue;
    try {
      (void)NDArray::zeros({2, 3}, DType::Float32, device);
      ADD_FAILURE() << "allocating on " << device.name() << " did not throw";
    } catch (const RuntimeError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("cuda", 0), 0U) << e.what();
    }
    EXPECT_THROW((void)backend_for(device), RuntimeError);
    const NDArray host = NDArray::ones({4}, DType::Float32, cpu_device());
    EXPECT_THROW((void)host.to(device), RuntimeError);
  }
}

TEST(CudaDiscovery, StatsWithoutDeviceAreZero) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is visible";
  const CudaMemoryStats stats = cuda_memory_stats(0);
  EXPECT_EQ(stats.bytes_in_use, 0U);
  EXPECT_EQ(stats.driver_allocations, 0U);
  cuda_empty_cache(0);  // a no-op, not an error
}

// ---- against ref, on a GPU ----------------------------------------------------------------------

class CudaVsRef : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible: " << cuda_unavailable_reason();
  }
  std::mt19937_64 rng{20240607};
};

const Device kRef = ref_device();
const Device kCuda = cuda_device();

const std::vector<DType> kAllDtypes = {DType::Bool,  DType::UInt8,   DType::Int8,   DType::Int32,
                                       DType::Int64, DType::Float32, DType::Float64};
const std::vector<DType> kNumericDtypes = {DType::UInt8, DType::Int8,    DType::Int32,
                                           DType::Int64, DType::Float32, DType::Float64};
const std::vector<DType> kFloatDtypes = {DType::Float32, DType::Float64};

// Sizes around warp (32) and block (256) widths, empty and size-1 dimensions, ranks 0 to 4.
const std::vector<Shape> kShapes = {{},        {0},       {1},        {31},         {32},      {33},
                                    {255},     {257},     {3, 0},     {1, 1},       {2, 33},   {65, 3},
                                    {0, 2, 3}, {3, 1, 8}, {4, 5, 17}, {2, 3, 4, 5}, {1000, 3}, {3, 1000}};

enum class Layout { Contiguous, Transposed, Flipped, Stepped, Broadcast };
const std::vector<Layout> kLayouts = {Layout::Contiguous, Layout::Transposed, Layout::Flipped, Layout::Stepped,
                                      Layout::Broadcast};

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::Contiguous:
      return "contiguous";
    case Layout::Transposed:
      return "transposed";
    case Layout::Flipped:
      return "flipped";
    case Layout::Stepped:
      return "stepped";
    case Layout::Broadcast:
      return "broadcast";
  }
  return "?";
}

// Random values of `dtype`: floats in [-3, 3], integers in [-50, 50] (never 0 when `nonzero`).
NDArray random_values(std::mt19937_64& rng, const Shape& shape, DType dtype, bool nonzero = false) {
  const auto n = static_cast<std::size_t>(numel(shape));
  std::uniform_real_distribution<double> real(-3.0, 3.0);
  std::uniform_int_distribution<int> integer(-50, 50);
  std::vector<double> values(n);
  for (double& v : values) {
    if (dtype == DType::Bool) {
      v = static_cast<double>(integer(rng) > 0);
    } else if (is_floating(dtype)) {
      v = real(rng);
    } else {
      int x = integer(rng);
      while (nonzero && x == 0) x = integer(rng);
      v = x;
    }
  }
  return NDArray::from_vector(values, shape, kRef).astype(dtype);
}

// Integers in [0, 3]: exponents for integer powers (negative ones are an error, large ones overflow).
NDArray small_exponents(std::mt19937_64& rng, const Shape& shape, DType dtype) {
  std::uniform_int_distribution<std::int64_t> pick(0, 3);
  std::vector<std::int64_t> values(static_cast<std::size_t>(numel(shape)));
  for (std::int64_t& v : values) v = pick(rng);
  return NDArray::from_vector(values, shape, kRef).astype(dtype);
}

struct Pair {
  NDArray ref;
  NDArray cuda;
};

// The same random values in the same layout on both devices.
Pair random_pair(std::mt19937_64& rng, const Shape& shape, DType dtype, Layout layout, bool nonzero = false) {
  const auto ndim = shape.size();
  auto both = [&](const NDArray& base, auto view) {
    const NDArray on_gpu = base.to(kCuda);
    return Pair{view(base), view(on_gpu)};
  };
  switch (layout) {
    case Layout::Contiguous:
      break;
    case Layout::Transposed: {
      const Shape reversed(shape.rbegin(), shape.rend());
      std::vector<std::int64_t> axes(ndim);
      for (std::size_t d = 0; d < ndim; ++d) axes[d] = static_cast<std::int64_t>(ndim - 1 - d);
      return both(random_values(rng, reversed, dtype, nonzero), [&](const NDArray& a) { return a.permute(axes); });
    }
    case Layout::Flipped: {
      std::vector<std::int64_t> axes(ndim);
      for (std::size_t d = 0; d < ndim; ++d) axes[d] = static_cast<std::int64_t>(d);
      return both(random_values(rng, shape, dtype, nonzero), [&](const NDArray& a) { return a.flip_view(axes); });
    }
    case Layout::Stepped: {
      if (ndim == 0) break;
      Shape wide = shape;
      wide.back() *= 2;
      Index index(ndim, IndexItem::range());
      index.back() = IndexItem::range(std::nullopt, std::nullopt, 2);
      return both(random_values(rng, wide, dtype, nonzero), [&](const NDArray& a) { return a.index(index); });
    }
    case Layout::Broadcast: {
      Shape narrow = shape;
      for (std::size_t d = 0; d < ndim; d += 2) narrow[d] = 1;
      return both(random_values(rng, narrow, dtype, nonzero), [&](const NDArray& a) { return a.broadcast_to(shape); });
    }
  }
  const NDArray base = random_values(rng, shape, dtype, nonzero);
  return {base, base.to(kCuda)};
}

// Element-wise equality: exact for bool and integers; for floats within tolerance * max(1, |expected|),
// with NaN equal to NaN and infinities equal to themselves.
void expect_match(const NDArray& expected, const NDArray& actual, double tolerance, const std::string& what) {
  ASSERT_EQ(actual.device(), kCuda) << what;
  ASSERT_EQ(expected.shape(), actual.shape()) << what;
  ASSERT_EQ(expected.dtype(), actual.dtype()) << what;
  const NDArray back = actual.to(kRef);
  dispatch_dtype(expected.dtype(), [&]<typename T>() {
    const std::vector<T> e = expected.to_vector<T>();
    const std::vector<T> a = back.to_vector<T>();
    for (std::size_t i = 0; i < e.size(); ++i) {
      if constexpr (std::is_floating_point_v<T>) {
        if ((std::isnan(e[i]) && std::isnan(a[i])) || e[i] == a[i]) continue;  // NaN == NaN, inf == inf
        const double scale = std::max(1.0, std::abs(static_cast<double>(e[i])));
        ASSERT_NEAR(static_cast<double>(a[i]), static_cast<double>(e[i]), tolerance * scale)
            << what << " at element " << i;
      } else {
        ASSERT_EQ(a[i], e[i]) << what << " at element " << i;
      }
    }
  });
}

double tolerance_for(DType dtype) { return dtype == DType::Float32 ? 1e-5 : 1e-12; }

std::string describe(const std::string& op, const Shape& shape, DType dtype, Layout layout) {
  return str(op, " ", shape_str(shape), " ", dtype_name(dtype), " ", layout_name(layout));
}

TEST_F(CudaVsRef, RoundTripThroughHost) {
  for (const DType dtype : kAllDtypes) {
    for (const Shape& shape : kShapes) {
      const NDArray host = random_values(rng, shape, dtype);
      const NDArray gpu = host.to(kCuda);
      EXPECT_EQ(gpu.device(), kCuda);
      expect_match(host, gpu, 0.0, describe("to", shape, dtype, Layout::Contiguous));
    }
  }
  const NDArray one = NDArray::full({1}, Scalar(2.5), DType::Float64, kCuda);
  EXPECT_EQ(one.item().to<double>(), 2.5);
  EXPECT_EQ(one.to_vector<double>(), std::vector<double>{2.5});
}

TEST_F(CudaVsRef, FillAndAssign) {
  for (const DType dtype : kAllDtypes) {
    for (const Shape& shape : kShapes) {
      const NDArray expected = NDArray::full(shape, Scalar(1.0), dtype, kRef);
      expect_match(expected, NDArray::full(shape, Scalar(1.0), dtype, kCuda), 0.0,
                   describe("full", shape, dtype, Layout::Contiguous));
      if (shape.empty()) continue;
      // A strided write: every other element of the last axis.
      Index every_other(shape.size(), IndexItem::range());
      every_other.back() = IndexItem::range(std::nullopt, std::nullopt, 2);
      NDArray r = NDArray::zeros(shape, dtype, kRef);
      NDArray c = NDArray::zeros(shape, dtype, kCuda);
      r.assign(every_other, Scalar(1.0));
      c.assign(every_other, Scalar(1.0));
      expect_match(r, c, 0.0, describe("fill strided", shape, dtype, Layout::Stepped));
    }
  }
}

TEST_F(CudaVsRef, CopyEveryDtypePairAndLayout) {
  for (const DType from : kAllDtypes) {
    for (const DType to : kAllDtypes) {
      for (const Shape& shape : kShapes) {
        for (const Layout layout : kLayouts) {
          const Pair p = random_pair(rng, shape, from, layout);
          expect_match(p.ref.astype(to).compact(), p.cuda.astype(to).compact(), 0.0,
                       describe(str("astype ", dtype_name(to)), shape, from, layout));
        }
      }
    }
  }
}

TEST_F(CudaVsRef, CopyIntoStridedOutput) {
  for (const DType dtype : kAllDtypes) {
    for (const Shape& shape : kShapes) {
      for (const Layout layout : kLayouts) {
        if (layout == Layout::Broadcast) continue;  // outputs never alias themselves
        // Write a contiguous source into a transposed/flipped/stepped view of a zero array.
        const Pair target = random_pair(rng, shape, dtype, layout);
        const NDArray source = random_values(rng, shape, dtype);
        NDArray r = target.ref;
        NDArray c = target.cuda;
        r.assign(source);
        c.assign(source.to(kCuda));
        expect_match(r.compact(), c.compact(), 0.0, describe("assign", shape, dtype, layout));
      }
    }
  }
}

TEST_F(CudaVsRef, Unary) {
  const std::vector<UnaryOp> any_numeric = {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Relu};
  const std::vector<UnaryOp> floating = {UnaryOp::Exp,  UnaryOp::Log,     UnaryOp::Sqrt,
                                         UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Erf};
  for (const DType dtype : kNumericDtypes) {
    for (const Shape& shape : kShapes) {
      for (const Layout layout : kLayouts) {
        const Pair p = random_pair(rng, shape, dtype, layout);
        for (const UnaryOp op : any_numeric) {
          expect_match(unary(op, p.ref), unary(op, p.cuda), tolerance_for(dtype),
                       describe(std::string(unary_op_name(op)), shape, dtype, layout));
        }
        if (!is_floating(dtype)) continue;
        // log and sqrt of negative inputs give NaN on both sides (compared as equal).
        for (const UnaryOp op : floating) {
          expect_match(unary(op, p.ref), unary(op, p.cuda), tolerance_for(dtype) * 4,
                       describe(std::string(unary_op_name(op)), shape, dtype, layout));
        }
      }
    }
  }
  const NDArray flags = NDArray::ones({3}, DType::Bool, kCuda);
  EXPECT_THROW((void)needle::negate(flags), TypeError);
}

TEST_F(CudaVsRef, BinaryEveryOpDtypeAndLayout) {
  const std::vector<BinaryOp> ops = {BinaryOp::Add,     BinaryOp::Sub,     BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow,
                                     BinaryOp::Maximum, BinaryOp::Minimum, BinaryOp::Eq,  BinaryOp::Ne,  BinaryOp::Lt,
                                     BinaryOp::Le,      BinaryOp::Gt,      BinaryOp::Ge};
  for (const DType dtype : kAllDtypes) {
    for (const Shape& shape : kShapes) {
      for (const Layout layout : kLayouts) {
        const Pair a = random_pair(rng, shape, dtype, layout);
        const Pair b = random_pair(rng, shape, dtype, Layout::Contiguous, /*nonzero=*/true);
        for (const BinaryOp op : ops) {
          const bool arithmetic = !is_comparison(op) && op != BinaryOp::Maximum && op != BinaryOp::Minimum;
          if (dtype == DType::Bool && arithmetic) continue;
          NDArray ra = a.ref;
          NDArray ca = a.cuda;
          NDArray rb = b.ref;
          NDArray cb = b.cuda;
          if (op == BinaryOp::Pow && !is_floating(dtype)) {
            // Integer powers need non-negative exponents; small ones keep the check meaningful.
            rb = small_exponents(rng, shape, dtype);
            cb = rb.to(kCuda);
          }
          if (op == BinaryOp::Pow && is_floating(dtype)) {
            ra = needle::abs(ra);
            ca = ra.to(kCuda);
          }
          expect_match(binary(op, ra, rb), binary(op, ca, cb), tolerance_for(dtype) * 4,
                       describe(std::string(binary_op_name(op)), shape, dtype, layout));
        }
      }
    }
  }
}

TEST_F(CudaVsRef, BinaryBroadcastsAndWrapsLikeRef) {
  // Integers at their limits wrap the same way.
  const std::vector<std::int32_t> big = {std::numeric_limits<std::int32_t>::max(),
                                         std::numeric_limits<std::int32_t>::min(), -7, 7};
  const NDArray r = NDArray::from_vector(big, {4}, kRef);
  const NDArray c = r.to(kCuda);
  expect_match(r + r, c + c, 0.0, "int32 add wraps");
  expect_match(r * r, c * c, 0.0, "int32 mul wraps");
  // Row + column broadcast.
  const NDArray row = random_values(rng, {1, 7}, DType::Float32);
  const NDArray col = random_values(rng, {5, 1}, DType::Float32);
  expect_match(row + col, row.to(kCuda) + col.to(kCuda), 1e-6, "broadcast add");
}

// The binary kernel called directly: the array layer turns integer division into float division, so
// integer Div reaches a kernel only this way.
NDArray kernel_binary(BinaryOp op, const NDArray& a, const NDArray& b) {
  const DType out_dtype = is_comparison(op) ? DType::Bool : a.dtype();
  NDArray out = NDArray::empty(a.shape(), out_dtype, a.device());
  backend_for(a.device()).binary(op, out.view(), a.view(), b.view());
  return out;
}

TEST_F(CudaVsRef, IntegerDivisionKernelTruncatesAndWrapsLikeRef) {
  for (const DType dtype : {DType::Int32, DType::Int64}) {
    for (const Layout layout : kLayouts) {
      const Pair a = random_pair(rng, {9, 33}, dtype, layout);
      const Pair b = random_pair(rng, {9, 33}, dtype, Layout::Transposed, /*nonzero=*/true);
      expect_match(kernel_binary(BinaryOp::Div, a.ref, b.ref), kernel_binary(BinaryOp::Div, a.cuda, b.cuda), 0.0,
                   describe("integer div kernel", {9, 33}, dtype, layout));
    }
  }
  const std::vector<std::int64_t> extremes = {std::numeric_limits<std::int64_t>::min(), 7, -7, 0};
  const NDArray r = NDArray::from_vector(extremes, {4}, kRef);
  const NDArray minus = NDArray::full({4}, Scalar(-1.0), DType::Int64, kRef);
  expect_match(kernel_binary(BinaryOp::Div, r, minus), kernel_binary(BinaryOp::Div, r.to(kCuda), minus.to(kCuda)), 0.0,
               "int64 min / -1 wraps");
}

TEST_F(CudaVsRef, IntegerDivisionByZeroRaisesValueErrorAndRecovers) {
  for (const DType dtype : {DType::Int32, DType::Int64}) {
    const NDArray a = NDArray::arange(6, dtype, kCuda);
    const NDArray zero = NDArray::zeros({6}, dtype, kCuda);
    try {
      (void)kernel_binary(BinaryOp::Div, a, zero);
      ADD_FAILURE() << "no error for " << dtype_name(dtype) << " division by zero";
    } catch (const ValueError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("div", 0), 0U) << e.what();
    }
    // The same error as ref's, for the same call.
    EXPECT_THROW((void)kernel_binary(BinaryOp::Div, a.to(kRef), zero.to(kRef)), ValueError);
    const NDArray minus = NDArray::full({6}, Scalar(-1.0), dtype, kCuda);
    EXPECT_THROW((void)needle::pow(a, minus), ValueError);
    // The flag was cleared: a valid division afterwards succeeds.
    const NDArray ones = NDArray::ones({6}, dtype, kCuda);
    expect_match(NDArray::arange(6, dtype, kRef), kernel_binary(BinaryOp::Div, a, ones), 0.0,
                 "division after an error");
  }
}

TEST_F(CudaVsRef, Where) {
  for (const DType dtype : kAllDtypes) {
    for (const Shape& shape : kShapes) {
      for (const Layout layout : kLayouts) {
        const Pair cond = random_pair(rng, shape, DType::Bool, layout);
        const Pair a = random_pair(rng, shape, dtype, Layout::Transposed);
        const Pair b = random_pair(rng, shape, dtype, Layout::Broadcast);
        expect_match(where(cond.ref, a.ref, b.ref), where(cond.cuda, a.cuda, b.cuda), 0.0,
                     describe("where", shape, dtype, layout));
      }
    }
  }
}

// Every subset of axes (as a bit mask) of a shape.
std::vector<Axes> axis_subsets(std::size_t ndim) {
  std::vector<Axes> subsets;
  for (std::uint32_t mask = 0; mask < (1U << ndim); ++mask) {
    Axes axes;
    for (std::size_t d = 0; d < ndim; ++d) {
      if ((mask & (1U << d)) != 0) axes.push_back(static_cast<std::int64_t>(d));
    }
    subsets.push_back(axes);
  }
  return subsets;
}

TEST_F(CudaVsRef, ReduceEveryAxisSubset) {
  std::vector<Shape> shapes = kShapes;
  // Large blocks take the thread-block-per-output path; many small ones the thread-per-output path.
  shapes.push_back({5000});
  shapes.push_back({3, 4099});
  shapes.push_back({4099, 3});
  shapes.push_back({70, 300});
  for (const DType dtype : kAllDtypes) {
    for (const Shape& shape : shapes) {
      for (const Layout layout : kLayouts) {
        const Pair p = random_pair(rng, shape, dtype, layout);
        for (const Axes& axes : axis_subsets(shape.size())) {
          const std::string what = describe(str("reduce over ", axes.size(), " axes"), shape, dtype, layout);
          if (dtype != DType::Bool) {
            // Sums of float32 over thousands of elements round differently in another order.
            expect_match(needle::sum(p.ref, axes, true), needle::sum(p.cuda, axes, true),
                         dtype == DType::Float32 ? 1e-3 : 1e-10, what + " sum");
          }
          if (numel(shape) == 0) continue;  // max/min of an empty set is rejected above the kernel
          expect_match(needle::max(p.ref, axes, true), needle::max(p.cuda, axes, true), 0.0, what + " max");
          expect_match(needle::min(p.ref, axes, true), needle::min(p.cuda, axes, true), 0.0, what + " min");
        }
      }
    }
  }
}

TEST_F(CudaVsRef, ReducePropagatesNaN) {
  std::vector<double> values(600, 1.0);
  values[377] = std::nan("");
  const NDArray r = NDArray::from_vector(values, {2, 300}, kRef);
  const NDArray c = r.to(kCuda);
  expect_match(needle::max(r, {1}, true), needle::max(c, {1}, true), 0.0, "max with NaN");
  expect_match(needle::min(r, {0}, true), needle::min(c, {0}, true), 0.0, "min with NaN");
  expect_match(needle::sum(r, {1}, true), needle::sum(c, {1}, true), 0.0, "sum with NaN");
}

TEST_F(CudaVsRef, ArgReduce) {
  for (const DType dtype : kAllDtypes) {
    for (const Shape& shape : kShapes) {
      if (numel(shape) == 0) continue;
      for (const Layout layout : kLayouts) {
        const Pair p = random_pair(rng, shape, dtype, layout);
        for (std::int64_t axis = 0; axis < static_cast<std::int64_t>(shape.size()); ++axis) {
          const std::string what = describe(str("arg_reduce axis ", axis), shape, dtype, layout);
          expect_match(needle::argmax(p.ref, axis, true), needle::argmax(p.cuda, axis, true), 0.0, what);
          expect_match(needle::argmin(p.ref, axis, true), needle::argmin(p.cuda, axis, true), 0.0, what);
        }
      }
    }
  }
  std::vector<float> with_nan = {1.0F, 5.0F, std::nanf(""), 7.0F, std::nanf("")};
  const NDArray r = NDArray::from_vector(with_nan, {5}, kRef);
  expect_match(needle::argmax(r, 0, true), needle::argmax(r.to(kCuda), 0, true), 0.0, "argmax NaN");
  expect_match(needle::argmin(r, 0, true), needle::argmin(r.to(kCuda), 0, true), 0.0, "argmin NaN");
}

struct MatmulCase {
  Shape a;
  Shape b;
};

TEST_F(CudaVsRef, MatmulShapesLayoutsAndDtypes) {
  const std::vector<MatmulCase> cases = {
      {{1, 1}, {1, 1}},
      {{2, 3}, {3, 4}},
      {{33, 17}, {17, 65}},
      {{64, 64}, {64, 64}},
      {{5, 0}, {0, 3}},
      {{0, 4}, {4, 2}},
      {{3, 4}, {4, 0}},
      {{1, 7}, {7, 1}},
      {{4, 2, 3}, {4, 3, 5}},
      {{4, 2, 3}, {1, 3, 5}},
      {{1, 2, 3}, {6, 3, 5}},
      {{2, 3, 4, 5}, {2, 3, 5, 2}},
      {{2, 1, 4, 5}, {1, 3, 5, 2}},
      {{129, 257}, {257, 3}},
  };
  for (const DType dtype : kNumericDtypes) {
    for (const MatmulCase& c : cases) {
      for (const Layout la : {Layout::Contiguous, Layout::Transposed, Layout::Stepped, Layout::Flipped}) {
        for (const Layout lb : {Layout::Contiguous, Layout::Transposed, Layout::Broadcast}) {
          // Transposed here means the last two axes swapped (a column-major matrix).
          auto make = [&](const Shape& shape, Layout layout) {
            if (layout != Layout::Transposed) return random_pair(rng, shape, dtype, layout);
            Shape swapped = shape;
            std::swap(swapped[swapped.size() - 1], swapped[swapped.size() - 2]);
            const Pair p = random_pair(rng, swapped, dtype, Layout::Contiguous);
            const auto n = static_cast<std::int64_t>(shape.size());
            return Pair{p.ref.swapaxes(n - 1, n - 2), p.cuda.swapaxes(n - 1, n - 2)};
          };
          const Pair a = make(c.a, la);
          const Pair b = make(c.b, lb);
          const double tol = dtype == DType::Float32 ? 1e-4 : 1e-11;
          expect_match(needle::matmul(a.ref, b.ref), needle::matmul(a.cuda, b.cuda), tol,
                       str("matmul ", shape_str(c.a), " @ ", shape_str(c.b), " ", dtype_name(dtype), " ",
                           layout_name(la), " x ", layout_name(lb)));
        }
      }
    }
  }
  EXPECT_THROW(
      (void)needle::matmul(NDArray::ones({2, 2}, DType::Bool, kCuda), NDArray::ones({2, 2}, DType::Bool, kCuda)),
      TypeError);
}

TEST_F(CudaVsRef, MatmulIntoTransposedOutput) {
  // The array layer always allocates contiguous outputs; the kernel contract allows any strides.
  for (const DType dtype : kFloatDtypes) {
    const NDArray a = random_values(rng, {2, 5, 7}, dtype);
    const NDArray b = random_values(rng, {2, 7, 3}, dtype);
    const NDArray expected = needle::matmul(a, b);
    const NDArray out_t = NDArray::zeros({2, 3, 5}, dtype, kCuda);
    const NDArray out = out_t.swapaxes(1, 2);
    backend_for(kCuda).matmul(out.view(), a.to(kCuda).view(), b.to(kCuda).view());
    expect_match(expected, out.compact(), dtype == DType::Float32 ? 1e-5 : 1e-12, "matmul transposed out");
  }
}

TEST_F(CudaVsRef, GatherAndScatterAdd) {
  const std::vector<Shape> shapes = {{1}, {7}, {300}, {4, 5}, {3, 33, 2}, {2, 0, 3}};
  for (const DType dtype : kNumericDtypes) {
    for (const Shape& shape : shapes) {
      for (std::int64_t axis = 0; axis < static_cast<std::int64_t>(shape.size()); ++axis) {
        const auto ax = static_cast<std::size_t>(axis);
        if (shape[ax] == 0) continue;
        Shape index_shape = shape;
        index_shape[ax] = shape[ax] * 2 + 1;  // more indices than positions: collisions in scatter_add
        std::uniform_int_distribution<std::int64_t> pick(0, shape[ax] - 1);
        std::vector<std::int64_t> idx(static_cast<std::size_t>(numel(index_shape)));
        for (std::int64_t& i : idx) i = pick(rng);
        const NDArray index = NDArray::from_vector(idx, index_shape, kRef);
        const Pair in = random_pair(rng, shape, dtype, Layout::Flipped);
        const std::string what = describe(str("gather axis ", axis), shape, dtype, Layout::Flipped);
        expect_match(needle::gather(in.ref, axis, index), needle::gather(in.cuda, axis, index.to(kCuda)), 0.0, what);
        const Pair src = random_pair(rng, index_shape, dtype, Layout::Transposed);
        // Float atomics add colliding values in another order than ref's row-major walk.
        expect_match(needle::scatter_add(in.ref, axis, index, src.ref),
                     needle::scatter_add(in.cuda, axis, index.to(kCuda), src.cuda),
                     dtype == DType::Float32 ? 1e-5 : 1e-12, "scatter_add: " + what);
      }
    }
  }
}

TEST_F(CudaVsRef, RandomMatchesRefForTheSameGeneratorState) {
  const std::vector<Shape> shapes = {{0}, {1}, {1000}, {33, 65}};
  for (const DType dtype : kFloatDtypes) {
    for (const Shape& shape : shapes) {
      Generator gr(1234);
      Generator gc(1234);
      // Uniform samples are bit-identical (explicitly rounded arithmetic on the GPU).
      expect_match(needle::rand(shape, -2.0, 3.0, dtype, kRef, &gr), needle::rand(shape, -2.0, 3.0, dtype, kCuda, &gc),
                   0.0, str("rand ", shape_str(shape), " ", dtype_name(dtype)));
      // Normal samples go through log1p and cos, which may differ in the last bit.
      expect_match(needle::randn(shape, 1.0, 2.0, dtype, kRef, &gr), needle::randn(shape, 1.0, 2.0, dtype, kCuda, &gc),
                   dtype == DType::Float32 ? 1e-6 : 1e-13, str("randn ", shape_str(shape), " ", dtype_name(dtype)));
    }
  }
  for (const DType dtype : kAllDtypes) {
    Generator gr(99);
    Generator gc(99);
    expect_match(needle::randb({4097}, 0.3, dtype, kRef, &gr), needle::randb({4097}, 0.3, dtype, kCuda, &gc), 0.0,
                 str("randb ", dtype_name(dtype)));
  }
}

TEST_F(CudaVsRef, CachingAllocatorReachesASteadyState) {
  // A loop that allocates the same sizes every step stops calling cudaMalloc after its first step.
  auto step = [] {
    const NDArray a = NDArray::ones({256, 256}, DType::Float32, kCuda);
    const NDArray b = needle::matmul(a, a) + Scalar(1.0);
    (void)needle::sum(b).item();
  };
  step();
  const std::size_t after_first = cuda_memory_stats(0).driver_allocations;
  for (int i = 0; i < 20; ++i) step();
  EXPECT_EQ(cuda_memory_stats(0).driver_allocations, after_first);
  cuda_empty_cache(0);
  EXPECT_EQ(cuda_memory_stats(0).bytes_cached, 0U);
}

TEST_F(CudaVsRef, OutOfMemoryRaisesMemoryErrorNamingTheBytes) {
  const std::int64_t huge = std::int64_t{1} << 50;  // 8 PiB of float64
  try {
    (void)NDArray::empty({huge}, DType::Float64, kCuda);
    ADD_FAILURE() << "no error for an 8 PiB allocation";
  } catch (const MemoryError& e) {  // Python's MemoryError, as on the host
    const std::string message = e.what();
    EXPECT_NE(message.find("out of memory"), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(huge * 8)), std::string::npos) << message;
  }
  // The device is still usable afterwards.
  expect_match(NDArray::ones({3}, DType::Float32, kRef), NDArray::ones({3}, DType::Float32, kCuda), 0.0,
               "after out of memory");
}

TEST_F(CudaVsRef, MixingDevicesRaises) {
  const NDArray a = NDArray::ones({3}, DType::Float32, kCuda);
  const NDArray b = NDArray::ones({3}, DType::Float32, kRef);
  EXPECT_THROW((void)(a + b), RuntimeError);
}

TEST_F(CudaVsRef, GradientsMatchRef) {
  // loss = sum(relu(x @ w)): forward and both gradients on the GPU against ref.
  const NDArray x = random_values(rng, {8, 5}, DType::Float64);
  const NDArray w = random_values(rng, {5, 3}, DType::Float64);
  auto run = [&](Device device) {
    const Tensor tx(x.to(device), true);
    const Tensor tw(w.to(device), true);
    const Tensor loss = ops::summation(ops::relu(ops::matmul(tx, tw)));
    loss.backward();
    return std::vector<NDArray>{loss.value(), tx.grad().value(), tw.grad().value()};
  };
  const std::vector<NDArray> expected = run(kRef);
  const std::vector<NDArray> actual = run(kCuda);
  for (std::size_t i = 0; i < expected.size(); ++i) expect_match(expected[i], actual[i], 1e-12, str("gradient ", i));
}

}  // namespace
}  // namespace needle
