// The `cpu` backend against the `ref` backend on random data: every kernel, every dtype, sizes around
// the vector widths (0, 1, 7, 8, 9, 63, 64, 65) and every layout the layer above produces (contiguous,
// transposed, flipped, stepped, broadcast, scalar). Results must match exactly, except float sums and
// products whose accumulation order a backend may choose; errors must be of the same kind.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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

const std::vector<DType> kAllDtypes = {DType::Bool,  DType::UInt8,   DType::Int8,   DType::Int32,
                                       DType::Int64, DType::Float32, DType::Float64};
const std::vector<DType> kNumericDtypes = {DType::UInt8, DType::Int8,    DType::Int32,
                                           DType::Int64, DType::Float32, DType::Float64};

const std::vector<Shape> kShapes = {{},     {0},    {1},    {7},    {8},    {9},     {63},      {64},      {65},
                                    {3, 0}, {1, 1}, {2, 9}, {8, 8}, {9, 7}, {65, 2}, {0, 2, 3}, {3, 1, 8}, {2, 3, 9}};

// How an operand's elements sit in its buffer.
enum class Layout { Contiguous, Transposed, Flipped, Stepped, Broadcast, Scalar };
const std::vector<Layout> kInputLayouts = {Layout::Contiguous, Layout::Transposed, Layout::Flipped,
                                           Layout::Stepped,    Layout::Broadcast,  Layout::Scalar};
// Outputs are written, so they never alias themselves (no broadcast layouts).
const std::vector<Layout> kOutputLayouts = {Layout::Contiguous, Layout::Transposed, Layout::Flipped, Layout::Stepped};

std::string layout_name(Layout layout) {
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
    case Layout::Scalar:
      return "scalar";
  }
  return "?";
}

// The values random inputs are drawn from.
struct ValueRange {
  double lo = -100.0;
  double hi = 100.0;
  bool nan = false;      // floats: sprinkle NaNs in
  bool nonzero = false;  // never 0 (integer divisors)
};

// Integers over (nearly) their whole range, so that wrapping arithmetic is exercised.
ValueRange full_range(DType dtype) {
  if (dtype == DType::Int32) return {-2147483648.0, 2147483647.0};
  if (dtype == DType::Int64) return {-9.0e18, 9.0e18};
  return {-100.0, 100.0, true};
}

class Random {
 public:
  explicit Random(std::uint64_t seed) : engine_(seed) {}

  // Fills `count` contiguous elements at `data`.
  void fill(void* data, DType dtype, std::int64_t count, const ValueRange& range) {
    dispatch_dtype(dtype, [&]<typename T>() {
      T* p = static_cast<T*>(data);
      for (std::int64_t i = 0; i < count; ++i) p[i] = draw<T>(range);
    });
  }

  std::int64_t integer(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(engine_);
  }

 private:
  template <typename T>
  T draw(const ValueRange& range) {
    if constexpr (std::is_same_v<T, bool>) {
      return integer(0, 1) == 1;
    } else if constexpr (std::is_integral_v<T>) {
      T v = static_cast<T>(std::uniform_int_distribution<std::int64_t>(static_cast<std::int64_t>(range.lo),
                                                                       static_cast<std::int64_t>(range.hi))(engine_));
      return (range.nonzero && v == 0) ? T(1) : v;
    } else {
      if (range.nan && integer(0, 15) == 0) return std::numeric_limits<T>::quiet_NaN();
      return static_cast<T>(std::uniform_real_distribution<double>(range.lo, range.hi)(engine_));
    }
  }

  std::mt19937_64 engine_;
};

// A zeroed array of `shape` laid out as `layout`; `fill_buffer` (if given) may write the underlying
// contiguous buffer first.
HostArray laid_out(DType dtype, const Shape& shape, Layout layout,
                   const std::function<void(const StridedView&)>& fill_buffer = {}) {
  const std::size_t ndim = shape.size();
  if (ndim == 0 && layout != Layout::Scalar) layout = Layout::Contiguous;
  Shape base = shape;
  switch (layout) {
    case Layout::Transposed:
      base.assign(shape.rbegin(), shape.rend());
      break;
    case Layout::Stepped:
      base[ndim - 1] *= 2;
      break;
    case Layout::Broadcast:
      for (std::size_t d = 0; d < ndim; d += 2) base[d] = 1;
      break;
    case Layout::Scalar:
      base = {};
      break;
    default:
      break;
  }
  HostArray a = zeros(dtype, base);
  if (fill_buffer) fill_buffer(a.view);
  switch (layout) {
    case Layout::Contiguous:
      return a;
    case Layout::Transposed:
      return testing::transposed(a);
    case Layout::Flipped:
      for (std::size_t d = 0; d < ndim; ++d) a = testing::flipped(a, d);
      return a;
    case Layout::Stepped:
      return testing::stepped(a, ndim - 1, 2);
    case Layout::Broadcast:
      return testing::broadcast_to(a, shape);
    case Layout::Scalar:
      a.view.shape = shape;
      a.view.strides.assign(ndim, 0);
      return a;
  }
  return a;
}

HostArray random_array(Random& rng, DType dtype, const Shape& shape, Layout layout, const ValueRange& range) {
  return laid_out(dtype, shape, layout,
                  [&](const StridedView& buffer) { rng.fill(buffer.data, dtype, numel(buffer.shape), range); });
}

// Outputs start zeroed.
HostArray output_array(DType dtype, const Shape& shape, Layout layout) { return laid_out(dtype, shape, layout); }

// Runs `kernel` on both backends. Both must succeed or both raise the same kind of error; returns
// whether they succeeded (so the outputs are worth comparing).
bool run_both(const std::function<void(Backend&)>& kernel) {
  std::optional<ErrorKind> ref_error;
  std::optional<ErrorKind> cpu_error;
  std::string ref_message;
  try {
    kernel(ref());
  } catch (const Error& e) {
    ref_error = e.kind();
    ref_message = e.what();
  }
  try {
    kernel(cpu());
  } catch (const Error& e) {
    cpu_error = e.kind();
  }
  EXPECT_EQ(ref_error.has_value(), cpu_error.has_value()) << "ref error: " << ref_message;
  if (ref_error && cpu_error) {
    EXPECT_EQ(*ref_error, *cpu_error) << "ref error: " << ref_message;
  }
  return !ref_error && !cpu_error;
}

// Element-by-element comparison; NaN matches NaN and zeros must agree in sign. With rtol > 0 floats may differ by
// rtol * (1 + |expected|) (accumulation order).
void expect_same(const StridedView& expected, const StridedView& actual, double rtol = 0.0) {
  ASSERT_EQ(expected.dtype, actual.dtype);
  ASSERT_EQ(expected.shape, actual.shape);
  dispatch_dtype(expected.dtype, [&]<typename T>() {
    const std::vector<T> e = values_of<T>(expected);
    const std::vector<T> a = values_of<T>(actual);
    for (std::size_t i = 0; i < e.size(); ++i) {
      bool same = e[i] == a[i];
      if constexpr (std::is_floating_point_v<T>) {
        same = (same && std::signbit(e[i]) == std::signbit(a[i])) || (std::isnan(e[i]) && std::isnan(a[i])) ||
               (rtol > 0.0 && std::abs(double(e[i]) - double(a[i])) <= rtol * (1.0 + std::abs(double(e[i]))));
      }
      if (!same) {
        ADD_FAILURE() << "element " << i << " of " << e.size() << ": ref " << e[i] << ", cpu " << a[i];
        return;
      }
    }
  });
}

std::string describe(const Shape& shape, DType dtype) {
  return str("shape ", shape_str(shape), " ", dtype_name(dtype));
}

// ---- element-wise ---------------------------------------------------------------------------------

// An output whose buffer holds nonzero values first, so that a fill of zeros that writes nothing is caught.
HostArray dirty_output_array(DType dtype, const Shape& shape, Layout layout) {
  return laid_out(dtype, shape, layout, [](const StridedView& buffer) {
    dispatch_dtype(buffer.dtype, [&]<typename T>() { std::fill_n(buffer.ptr<T>(), numel(buffer.shape), T(1)); });
  });
}

TEST(BackendCpuVsRef, Fill) {
  // Zeros of either sign and of every dtype: the cpu backend writes all-zero bytes with memset.
  const std::vector<Scalar> values = {Scalar(2.5),  Scalar(std::int64_t{-7}), Scalar(true), Scalar(0.0),
                                      Scalar(-0.0), Scalar(std::int64_t{0}),  Scalar(false)};
  for (DType dtype : kAllDtypes) {
    for (const Shape& shape : kShapes) {
      for (Layout layout : kOutputLayouts) {
        for (const Scalar& value : values) {
          SCOPED_TRACE(str(describe(shape, dtype), " out ", layout_name(layout), " value ", value));
          HostArray out_ref = dirty_output_array(dtype, shape, layout);
          HostArray out_cpu = dirty_output_array(dtype, shape, layout);
          ref().fill(out_ref.view, value);
          cpu().fill(out_cpu.view, value);
          expect_same(out_ref.view, out_cpu.view);
        }
      }
    }
  }
}

TEST(BackendCpuVsRef, LargeFillAndCopySplitOverThreads) {
  // Large enough that each thread writes its own part (and an odd size, so that the parts differ in length).
  const int saved = get_num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (DType dtype : {DType::Float32, DType::Float64, DType::Int8}) {
      for (const Scalar& value : {Scalar(0.0), Scalar(-0.0), Scalar(3.0)}) {
        SCOPED_TRACE(str(threads, " threads, ", dtype_name(dtype), " value ", value));
        HostArray out_ref = dirty_output_array(dtype, {3, 100'003}, Layout::Contiguous);
        HostArray out_cpu = dirty_output_array(dtype, {3, 100'003}, Layout::Contiguous);
        ref().fill(out_ref.view, value);
        cpu().fill(out_cpu.view, value);
        expect_same(out_ref.view, out_cpu.view);
      }
      // A copy of the same size, and a copy of an array onto itself (legal, and left as it was).
      Random rng(7);
      HostArray in = random_array(rng, dtype, {3, 100'003}, Layout::Contiguous, ValueRange{-100.0, 100.0});
      HostArray out_ref = dirty_output_array(dtype, {3, 100'003}, Layout::Contiguous);
      HostArray out_cpu = dirty_output_array(dtype, {3, 100'003}, Layout::Contiguous);
      ref().copy(out_ref.view, in.view);
      cpu().copy(out_cpu.view, in.view);
      expect_same(out_ref.view, out_cpu.view);
      cpu().copy(out_cpu.view, out_cpu.view);
      expect_same(out_ref.view, out_cpu.view);
    }
  }
  set_num_threads(saved);
}

TEST(BackendCpuVsRef, CopyBetweenEveryDtypePair) {
  Random rng(1);
  for (DType from : kAllDtypes) {
    for (DType to : kAllDtypes) {
      // Converting NaN or an out-of-range float to an integer is undefined; stay within range.
      ValueRange range = is_integral(to) ? ValueRange{-1000.0, 1000.0} : full_range(from);
      for (const Shape& shape : kShapes) {
        for (Layout in_layout : kInputLayouts) {
          for (Layout out_layout : {Layout::Contiguous, Layout::Stepped}) {
            SCOPED_TRACE(str(describe(shape, from), " -> ", dtype_name(to), " in ", layout_name(in_layout), " out ",
                             layout_name(out_layout)));
            HostArray in = random_array(rng, from, shape, in_layout, range);
            HostArray out_ref = output_array(to, shape, out_layout);
            HostArray out_cpu = output_array(to, shape, out_layout);
            ref().copy(out_ref.view, in.view);
            cpu().copy(out_cpu.view, in.view);
            expect_same(out_ref.view, out_cpu.view);
          }
        }
      }
    }
  }
}

// Permuted views made contiguous, the cpu backend's tiled transposing copy: every permutation of 3-d and
// 4-d buffers with odd sizes, size-1 dimensions and planes smaller and larger than a 16 x 16 tile, and a
// buffer read with a step (unit stride only along the permuted dimension).
TEST(BackendCpuVsRef, CopyOfPermutedViews) {
  Random rng(11);
  const std::vector<Shape> buffers = {{5, 7, 16}, {3, 17, 33}, {2, 1, 9, 21}, {2, 28, 28, 16}, {4, 3, 40, 5}};
  for (const DType dtype : {DType::Float32, DType::Float64, DType::Int8, DType::Bool}) {
    for (const Shape& buffer_shape : buffers) {
      std::vector<std::size_t> perm(buffer_shape.size());
      for (std::size_t d = 0; d < perm.size(); ++d) perm[d] = d;
      do {
        for (const bool stepped : {false, true}) {
          Shape base = buffer_shape;
          if (stepped) base[0] *= 2;
          HostArray in = random_array(rng, dtype, base, Layout::Contiguous, full_range(dtype));
          if (stepped) in = testing::stepped(in, 0, 2);
          Shape shape;
          Strides strides;
          for (const std::size_t d : perm) {
            shape.push_back(in.view.shape[d]);
            strides.push_back(in.view.strides[d]);
          }
          in.view.shape = shape;
          in.view.strides = strides;
          SCOPED_TRACE(str(describe(shape, dtype), " strides ", shape_str(strides)));
          HostArray out_ref = output_array(dtype, shape, Layout::Contiguous);
          HostArray out_cpu = output_array(dtype, shape, Layout::Contiguous);
          ref().copy(out_ref.view, in.view);
          cpu().copy(out_cpu.view, in.view);
          expect_same(out_ref.view, out_cpu.view);
        }
      } while (std::next_permutation(perm.begin(), perm.end()));
    }
  }
}

TEST(BackendCpuVsRef, Unary) {
  Random rng(2);
  const std::vector<UnaryOp> ops = {
#define NEEDLE_UNARY(kind, ...) UnaryOp::kind,
#include "needle/core/unary_ops.def"
  };
  for (UnaryOp op : ops) {
    for (DType dtype : kAllDtypes) {
      // float32 exp, sigmoid, tanh and GELU run vectorised on the cpu device (backend/cpu/vector_math.h): a few units
      // in the last place from libm; everything else is computed by the same scalar code in both backends.
      const bool vectorised =
          dtype == DType::Float32 && (op == UnaryOp::Exp || op == UnaryOp::Sigmoid || op == UnaryOp::Tanh ||
                                      op == UnaryOp::Gelu || op == UnaryOp::GeluGrad);
      const double rtol = vectorised ? 1e-6 : 0.0;
      const ValueRange range = is_floating(dtype) ? ValueRange{-30.0, 30.0, true} : full_range(dtype);
      for (const Shape& shape : kShapes) {
        for (Layout in_layout : kInputLayouts) {
          for (Layout out_layout : {Layout::Contiguous, Layout::Flipped}) {
            SCOPED_TRACE(str(unary_op_name(op), " ", describe(shape, dtype), " in ", layout_name(in_layout), " out ",
                             layout_name(out_layout)));
            HostArray in = random_array(rng, dtype, shape, in_layout, range);
            HostArray out_ref = output_array(dtype, shape, out_layout);
            HostArray out_cpu = output_array(dtype, shape, out_layout);
            if (run_both([&](Backend& backend) {
                  backend.unary(op, (&backend == &ref() ? out_ref : out_cpu).view, in.view);
                })) {
              expect_same(out_ref.view, out_cpu.view, rtol);
            }
          }
        }
      }
    }
  }
}

// Input ranges that keep each op meaningful: nonzero integer divisors, small non-negative exponents.
std::pair<ValueRange, ValueRange> binary_ranges(BinaryOp op, DType dtype) {
  if (!is_integral(dtype)) {
    if (op == BinaryOp::Pow) return {{0.0, 4.0, true}, {-3.0, 3.0, true}};
    return {full_range(dtype), full_range(dtype)};
  }
  if (op == BinaryOp::Div) return {full_range(dtype), {-9.0, 9.0, false, true}};
  if (op == BinaryOp::Pow) return {{-5.0, 5.0}, {0.0, 40.0}};
  if (is_comparison(op) || op == BinaryOp::Maximum || op == BinaryOp::Minimum) return {{-3.0, 3.0}, {-3.0, 3.0}};
  return {full_range(dtype), full_range(dtype)};
}

TEST(BackendCpuVsRef, Binary) {
  Random rng(3);
  const std::vector<BinaryOp> ops = {BinaryOp::Add,     BinaryOp::Sub,     BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow,
                                     BinaryOp::Maximum, BinaryOp::Minimum, BinaryOp::Eq,  BinaryOp::Ne,  BinaryOp::Lt,
                                     BinaryOp::Le,      BinaryOp::Gt,      BinaryOp::Ge};
  int case_number = 0;
  for (BinaryOp op : ops) {
    for (DType dtype : kAllDtypes) {
      const auto [range_a, range_b] = binary_ranges(op, dtype);
      const DType out_dtype = is_comparison(op) ? DType::Bool : dtype;
      for (const Shape& shape : kShapes) {
        for (Layout layout_a : kInputLayouts) {
          for (Layout layout_b : kInputLayouts) {
            const Layout out_layout = kOutputLayouts[static_cast<std::size_t>(case_number++) % kOutputLayouts.size()];
            SCOPED_TRACE(str(binary_op_name(op), " ", describe(shape, dtype), " a ", layout_name(layout_a), " b ",
                             layout_name(layout_b), " out ", layout_name(out_layout)));
            HostArray a = random_array(rng, dtype, shape, layout_a, range_a);
            HostArray b = random_array(rng, dtype, shape, layout_b, range_b);
            HostArray out_ref = output_array(out_dtype, shape, out_layout);
            HostArray out_cpu = output_array(out_dtype, shape, out_layout);
            if (run_both([&](Backend& backend) {
                  backend.binary(op, (&backend == &ref() ? out_ref : out_cpu).view, a.view, b.view);
                })) {
              expect_same(out_ref.view, out_cpu.view);
            }
          }
        }
      }
    }
  }
}

TEST(BackendCpuVsRef, BinaryErrorsMatch) {
  // Integer division by zero and negative integer powers raise ValueError on both backends, whatever
  // the layout; bool arithmetic raises TypeError.
  const auto divisor_like = [](std::vector<std::int32_t> values, Layout layout) {
    HostArray b = testing::array_of<std::int32_t>({4}, values);
    if (layout == Layout::Flipped) b = testing::flipped(b, 0);
    if (layout == Layout::Scalar) b.view.strides = {0};  // every element is values[0]
    return b;
  };
  HostArray a = testing::array_of<std::int32_t>({4}, {1, 2, 3, 4});
  HostArray out = zeros(DType::Int32, {4});
  for (Layout layout : {Layout::Contiguous, Layout::Flipped, Layout::Scalar}) {
    SCOPED_TRACE(layout_name(layout));
    EXPECT_THROW(cpu().binary(BinaryOp::Div, out.view, a.view, divisor_like({0, 0, 1, 2}, layout).view), ValueError);
    EXPECT_THROW(cpu().binary(BinaryOp::Pow, out.view, a.view, divisor_like({-1, -1, 1, 2}, layout).view), ValueError);
  }
  HostArray flags = testing::array_of<bool>({3}, {true, false, true});
  HostArray flags_out = zeros(DType::Bool, {3});
  EXPECT_THROW(cpu().binary(BinaryOp::Add, flags_out.view, flags.view, flags.view), TypeError);
  EXPECT_THROW(cpu().unary(UnaryOp::Abs, flags_out.view, flags.view), TypeError);
}

TEST(BackendCpuVsRef, Where) {
  Random rng(4);
  const std::vector<std::array<Layout, 3>> layouts = {
      {Layout::Contiguous, Layout::Contiguous, Layout::Contiguous},
      {Layout::Contiguous, Layout::Contiguous, Layout::Scalar},
      {Layout::Contiguous, Layout::Scalar, Layout::Contiguous},
      {Layout::Broadcast, Layout::Transposed, Layout::Flipped},
      {Layout::Scalar, Layout::Stepped, Layout::Scalar},
      {Layout::Flipped, Layout::Scalar, Layout::Broadcast},
  };
  for (DType dtype : kAllDtypes) {
    for (const Shape& shape : kShapes) {
      for (const auto& [layout_c, layout_a, layout_b] : layouts) {
        SCOPED_TRACE(str(describe(shape, dtype), " cond ", layout_name(layout_c), " a ", layout_name(layout_a), " b ",
                         layout_name(layout_b)));
        HostArray cond = random_array(rng, DType::Bool, shape, layout_c, {});
        HostArray a = random_array(rng, dtype, shape, layout_a, full_range(dtype));
        HostArray b = random_array(rng, dtype, shape, layout_b, full_range(dtype));
        HostArray out_ref = output_array(dtype, shape, Layout::Contiguous);
        HostArray out_cpu = output_array(dtype, shape, Layout::Contiguous);
        ref().where(out_ref.view, cond.view, a.view, b.view);
        cpu().where(out_cpu.view, cond.view, a.view, b.view);
        expect_same(out_ref.view, out_cpu.view);
      }
    }
  }
}

// ---- reductions -----------------------------------------------------------------------------------

TEST(BackendCpuVsRef, Reduce) {
  Random rng(5);
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
    for (DType dtype : kAllDtypes) {
      const ValueRange range = is_floating(dtype) ? ValueRange{-10.0, 10.0, true} : full_range(dtype);
      const double rtol = is_floating(dtype) && op == ReduceOp::Sum ? 1e-4 : 0.0;
      for (const Shape& shape : kShapes) {
        // Every subset of the axes, as a bit mask.
        for (unsigned mask = 0; mask < (1U << shape.size()); ++mask) {
          Shape out_shape = shape;
          for (std::size_t d = 0; d < shape.size(); ++d) {
            if ((mask >> d) & 1U) out_shape[d] = 1;
          }
          for (Layout layout : kInputLayouts) {
            SCOPED_TRACE(str(static_cast<int>(op), " ", describe(shape, dtype), " to ", shape_str(out_shape), " in ",
                             layout_name(layout)));
            HostArray in = random_array(rng, dtype, shape, layout, range);
            HostArray out_ref = output_array(dtype, out_shape, Layout::Contiguous);
            HostArray out_cpu = output_array(dtype, out_shape, Layout::Contiguous);
            if (run_both([&](Backend& backend) {
                  backend.reduce(op, (&backend == &ref() ? out_ref : out_cpu).view, in.view);
                })) {
              expect_same(out_ref.view, out_cpu.view, rtol);
            }
          }
        }
      }
    }
  }
}

TEST(BackendCpuVsRef, ArgReduce) {
  Random rng(6);
  for (ArgReduceOp op : {ArgReduceOp::Argmax, ArgReduceOp::Argmin}) {
    for (DType dtype : kAllDtypes) {
      // A narrow range makes ties, which must resolve to the first index.
      const ValueRange range = is_floating(dtype) ? ValueRange{-3.0, 3.0, true} : ValueRange{-3.0, 3.0};
      for (const Shape& shape : kShapes) {
        for (std::size_t axis = 0; axis < shape.size(); ++axis) {
          Shape out_shape = shape;
          out_shape[axis] = 1;
          for (Layout layout : kInputLayouts) {
            SCOPED_TRACE(
                str(static_cast<int>(op), " ", describe(shape, dtype), " axis ", axis, " in ", layout_name(layout)));
            HostArray in = random_array(rng, dtype, shape, layout, range);
            HostArray out_ref = output_array(DType::Int64, out_shape, Layout::Contiguous);
            HostArray out_cpu = output_array(DType::Int64, out_shape, Layout::Contiguous);
            if (run_both([&](Backend& backend) {
                  backend.arg_reduce(op, (&backend == &ref() ? out_ref : out_cpu).view, in.view,
                                     static_cast<std::int64_t>(axis));
                })) {
              expect_same(out_ref.view, out_cpu.view);
            }
          }
        }
      }
    }
  }
}

// ---- matmul ---------------------------------------------------------------------------------------

// How a matmul operand of shape batch + (rows, cols) is laid out.
enum class MatrixLayout { RowMajor, ColumnMajor, Stepped, BatchBroadcast };

HostArray matrix_operand(Random& rng, DType dtype, const Shape& batch, std::int64_t rows, std::int64_t cols,
                         MatrixLayout layout, const ValueRange& range) {
  Shape shape = batch;
  shape.push_back(rows);
  shape.push_back(cols);
  const std::size_t ndim = shape.size();
  Shape base = shape;
  if (layout == MatrixLayout::ColumnMajor) std::swap(base[ndim - 1], base[ndim - 2]);
  if (layout == MatrixLayout::Stepped) base[ndim - 1] *= 2;
  if (layout == MatrixLayout::BatchBroadcast) {
    for (std::size_t d = 0; d + 2 < ndim; ++d) base[d] = 1;
  }
  HostArray a = zeros(dtype, base);
  rng.fill(a.view.data, dtype, numel(base), range);
  switch (layout) {
    case MatrixLayout::RowMajor:
      return a;
    case MatrixLayout::ColumnMajor: {
      std::vector<std::size_t> perm(ndim);
      for (std::size_t d = 0; d < ndim; ++d) perm[d] = d;
      std::swap(perm[ndim - 1], perm[ndim - 2]);
      return testing::permuted(a, perm);
    }
    case MatrixLayout::Stepped:
      return testing::stepped(a, ndim - 1, 2);
    case MatrixLayout::BatchBroadcast:
      return testing::broadcast_to(a, shape);
  }
  return a;
}

TEST(BackendCpuVsRef, Matmul) {
  Random rng(7);
  const std::vector<std::array<std::int64_t, 3>> sizes = {{0, 3, 4},   {3, 0, 4},   {3, 4, 0},   {1, 1, 1},
                                                          {7, 8, 9},   {9, 7, 8},   {8, 9, 7},   {1, 65, 1},
                                                          {65, 1, 64}, {2, 64, 63}, {17, 33, 65}};
  const std::vector<Shape> batches = {{}, {3}, {2, 1}};
  const std::vector<MatrixLayout> layouts = {MatrixLayout::RowMajor, MatrixLayout::ColumnMajor, MatrixLayout::Stepped,
                                             MatrixLayout::BatchBroadcast};
  int case_number = 0;
  for (DType dtype : kNumericDtypes) {
    const ValueRange range = is_floating(dtype) ? ValueRange{-1.0, 1.0} : full_range(dtype);
    for (const auto& [rows, inner, cols] : sizes) {
      const double rtol = is_floating(dtype) ? 1e-5 * static_cast<double>(inner + 1) : 0.0;
      for (const Shape& batch : batches) {
        for (MatrixLayout layout_a : layouts) {
          for (MatrixLayout layout_b : layouts) {
            // Alternate row-major and column-major outputs (the latter has non-contiguous rows).
            const MatrixLayout out_layout =
                (case_number++ % 2 == 0) ? MatrixLayout::RowMajor : MatrixLayout::ColumnMajor;
            SCOPED_TRACE(str(dtype_name(dtype), " batch ", shape_str(batch), " ", rows, "x", inner, "x", cols,
                             " layouts ", static_cast<int>(layout_a), static_cast<int>(layout_b),
                             static_cast<int>(out_layout)));
            HostArray a = matrix_operand(rng, dtype, batch, rows, inner, layout_a, range);
            HostArray b = matrix_operand(rng, dtype, batch, inner, cols, layout_b, range);
            HostArray out_ref = matrix_operand(rng, dtype, batch, rows, cols, out_layout, range);
            HostArray out_cpu = matrix_operand(rng, dtype, batch, rows, cols, out_layout, range);
            ref().matmul(out_ref.view, a.view, b.view);
            cpu().matmul(out_cpu.view, a.view, b.view);
            expect_same(out_ref.view, out_cpu.view, rtol);
          }
        }
      }
    }
  }
}

// ---- indexing -------------------------------------------------------------------------------------

TEST(BackendCpuVsRef, GatherAndScatterAdd) {
  Random rng(8);
  for (DType dtype : kAllDtypes) {
    for (const Shape& shape : kShapes) {
      for (std::size_t axis = 0; axis < shape.size(); ++axis) {
        for (Layout layout : {Layout::Contiguous, Layout::Transposed, Layout::Flipped}) {
          SCOPED_TRACE(str(describe(shape, dtype), " axis ", axis, " ", layout_name(layout)));
          Shape source_shape = shape;
          source_shape[axis] += 2;
          const double top = static_cast<double>(source_shape[axis] - 1);
          HostArray index = random_array(rng, DType::Int64, shape, layout, {0.0, top});
          HostArray source = random_array(rng, dtype, source_shape, layout, full_range(dtype));
          HostArray out_ref = output_array(dtype, shape, Layout::Contiguous);
          HostArray out_cpu = output_array(dtype, shape, Layout::Contiguous);
          ref().gather(out_ref.view, source.view, index.view, static_cast<std::int64_t>(axis));
          cpu().gather(out_cpu.view, source.view, index.view, static_cast<std::int64_t>(axis));
          expect_same(out_ref.view, out_cpu.view);

          HostArray src = random_array(rng, dtype, shape, layout, full_range(dtype));
          HostArray acc_ref = output_array(dtype, source_shape, Layout::Contiguous);
          HostArray acc_cpu = output_array(dtype, source_shape, Layout::Contiguous);
          if (run_both([&](Backend& backend) {
                backend.scatter_add((&backend == &ref() ? acc_ref : acc_cpu).view, index.view, src.view,
                                    static_cast<std::int64_t>(axis));
              })) {
            expect_same(acc_ref.view, acc_cpu.view, is_floating(dtype) ? 1e-6 : 0.0);
          }
        }
      }
    }
  }
}

// ---- random ---------------------------------------------------------------------------------------

TEST(BackendCpuVsRef, RandomDrawsTheSameNumbers) {
  for (RandomDistribution dist :
       {RandomDistribution::Uniform, RandomDistribution::Normal, RandomDistribution::Bernoulli}) {
    for (DType dtype : kAllDtypes) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(str(static_cast<int>(dist), " ", describe(shape, dtype)));
        HostArray out_ref = output_array(dtype, shape, Layout::Contiguous);
        HostArray out_cpu = output_array(dtype, shape, Layout::Contiguous);
        const double p0 = dist == RandomDistribution::Bernoulli ? 0.3 : -1.0;
        ref().random(dist, out_ref.view, p0, 2.0, 42, 1000);
        cpu().random(dist, out_cpu.view, p0, 2.0, 42, 1000);
        expect_same(out_ref.view, out_cpu.view);
      }
    }
  }
}

TEST(BackendCpuVsRef, RandomSampleStatistics) {
  constexpr std::int64_t kCount = 100000;
  for (Backend* backend : {&ref(), &cpu()}) {
    SCOPED_TRACE(backend->name());
    HostArray normal = zeros(DType::Float64, {kCount});
    backend->random(RandomDistribution::Normal, normal.view, 0.0, 1.0, 7, 0);
    double sum = 0.0;
    double sum_sq = 0.0;
    for (double v : values_of<double>(normal.view)) {
      sum += v;
      sum_sq += v * v;
    }
    const double mean = sum / kCount;
    const double std = std::sqrt(sum_sq / kCount - mean * mean);
    // The standard error of the mean is 1/sqrt(1e5) ~ 0.003; of the std ~ 0.0022.
    EXPECT_NEAR(mean, 0.0, 0.015);
    EXPECT_NEAR(std, 1.0, 0.015);

    HostArray uniform = zeros(DType::Float32, {kCount});
    backend->random(RandomDistribution::Uniform, uniform.view, 2.0, 4.0, 7, 0);
    double uniform_sum = 0.0;
    for (float v : values_of<float>(uniform.view)) {
      EXPECT_GE(v, 2.0F);
      EXPECT_LE(v, 4.0F);
      uniform_sum += v;
    }
    EXPECT_NEAR(uniform_sum / kCount, 3.0, 0.01);

    HostArray coin = zeros(DType::Bool, {kCount});
    backend->random(RandomDistribution::Bernoulli, coin.view, 0.25, 0.0, 7, 0);
    std::int64_t heads = 0;
    for (bool v : values_of<bool>(coin.view)) heads += v ? 1 : 0;
    EXPECT_NEAR(static_cast<double>(heads) / kCount, 0.25, 0.01);
  }
}

}  // namespace
}  // namespace needle
