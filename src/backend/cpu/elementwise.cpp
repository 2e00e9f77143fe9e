// Element-wise `cpu` kernels: flat loops when every operand is contiguous (or a broadcast scalar),
// which the compiler can vectorize, split over threads from kParallelGrain elements on; any other
// layout goes to the strided `ref` walk. Each element is computed alone, so the split changes nothing.
#include <algorithm>
#include <cstring>
#include <utility>

#include "backend/cpu/cpu_backend.h"
#include "backend/element_ops.h"
#include "backend/view_checks.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

// How an operand of an element-wise kernel can be read as a flat array of out.size() elements.
enum class FlatLayout {
  Contiguous,  // element i is at data[i]
  Broadcast,   // every element is data[0] (all strides 0: a scalar operand)
  Strided,     // neither: needs the general walk
};

FlatLayout flat_layout(const StridedView& view) {
  if (view.is_contiguous()) return FlatLayout::Contiguous;
  if (std::all_of(view.strides.begin(), view.strides.end(), [](std::int64_t s) { return s == 0; })) {
    return FlatLayout::Broadcast;
  }
  return FlatLayout::Strided;
}

// The steps are template arguments so each combination compiles to its own tight loop.
template <std::int64_t StepA, std::int64_t StepB, typename R, typename T, typename F>
void binary_flat(R* out, const T* a, const T* b, std::int64_t n, F f) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = f(a[i * StepA], b[i * StepB]);
}

// Below this many elements a flat loop takes a few microseconds: not worth waking a thread.
constexpr std::int64_t kParallelGrain = 32768;

// fn(begin, end) over [0, n), split over threads in chunks of at least kParallelGrain elements.
template <typename Fn>
void flat_for(std::int64_t n, Fn&& fn) {
  parallel_for(0, n, kParallelGrain, std::forward<Fn>(fn));
}

}  // namespace

void CpuBackend::fill(const StridedView& out, const Scalar& value) {
  if (!out.is_contiguous()) return ref::fill(out, value);
  dispatch_dtype(out.dtype, [&]<typename T>() { std::fill_n(out.ptr<T>(), out.size(), value.to<T>()); });
}

void CpuBackend::copy(const StridedView& out, const StridedView& in) {
  kernels::expect_shape("copy", "input", in, out.shape);
  if (!out.is_contiguous() || !in.is_contiguous()) return ref::copy(out, in);
  const std::int64_t n = out.size();
  if (n == 0) return;
  if (out.dtype == in.dtype) {
    // memmove, not memcpy: copying an array onto itself is legal.
    std::memmove(out.data, in.data, static_cast<std::size_t>(n) * itemsize(out.dtype));
    return;
  }
  dispatch_dtype(out.dtype, [&]<typename To>() {
    dispatch_dtype(in.dtype, [&]<typename From>() {
      To* o = out.ptr<To>();
      const From* i = in.ptr<From>();
      flat_for(n, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t k = first; k < last; ++k) o[k] = static_cast<To>(i[k]);
      });
    });
  });
}

void CpuBackend::unary(UnaryOp op, const StridedView& out, const StridedView& in) {
  kernels::expect_shape(unary_op_name(op), "input", in, out.shape);
  kernels::expect_dtype(unary_op_name(op), "output", out, in.dtype);
  if (!out.is_contiguous() || !in.is_contiguous()) return ref::unary(op, out, in);
  const std::int64_t n = out.size();
  dispatch_dtype(in.dtype, [&]<typename T>() {
    kernels::with_unary_op<T>(op, [&](auto f) {
      T* o = out.ptr<T>();
      const T* i = in.ptr<T>();
      flat_for(n, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t k = first; k < last; ++k) o[k] = f(i[k]);
      });
    });
  });
}

void CpuBackend::binary(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) {
  const std::string_view name = binary_op_name(op);
  kernels::expect_shape(name, "first operand", a, out.shape);
  kernels::expect_shape(name, "second operand", b, out.shape);
  const FlatLayout layout_a = flat_layout(a);
  const FlatLayout layout_b = flat_layout(b);
  const bool both_broadcast = layout_a == FlatLayout::Broadcast && layout_b == FlatLayout::Broadcast;
  if (!out.is_contiguous() || layout_a == FlatLayout::Strided || layout_b == FlatLayout::Strided || both_broadcast) {
    return ref::binary(op, out, a, b);
  }
  kernels::expect_dtype(name, "second operand", b, a.dtype);
  const std::int64_t n = out.size();
  dispatch_dtype(a.dtype, [&]<typename T>() {
    kernels::with_binary_op<T>(op, [&](auto f) {
      using R = decltype(f(T{}, T{}));
      kernels::expect_dtype(name, "output", out, dtype_of<R>());
      R* o = out.ptr<R>();
      const T* pa = a.ptr<T>();
      const T* pb = b.ptr<T>();
      flat_for(n, [&](std::int64_t first, std::int64_t last) {
        const std::int64_t count = last - first;
        if (layout_a == FlatLayout::Broadcast) {
          binary_flat<0, 1>(o + first, pa, pb + first, count, f);
        } else if (layout_b == FlatLayout::Broadcast) {
          binary_flat<1, 0>(o + first, pa + first, pb, count, f);
        } else {
          binary_flat<1, 1>(o + first, pa + first, pb + first, count, f);
        }
      });
    });
  });
}

}  // namespace needle
