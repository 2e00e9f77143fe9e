// Element-wise `cpu` kernels: flat loops when every operand is contiguous (or a broadcast scalar),
// which the compiler can vectorize, split over threads from kParallelGrain elements on; row by row when the
// last axis is contiguous or broadcast; a permuted view copied into contiguous memory in tiles; any other
// layout goes to the strided `ref` walk. Each element is computed alone, so the split changes nothing.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/vector_math.h"
#include "backend/element_math.h"
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

// The offsets (in elements) of consecutive rows of three views of one shape whose last axis is walked
// separately: the first row's index is unravelled once, and each next row advances it like an odometer (one
// add per view), instead of a division per dimension per view for every row.
class RowOffsets {
 public:
  RowOffsets(std::int64_t row, const Shape& shape, const std::array<const Strides*, 3>& strides)
      : shape_(shape.begin(), shape.end() - 1), strides_(strides), index_(shape_.size(), 0) {
    for (std::size_t d = shape_.size(); d-- > 0;) {
      index_[d] = row % shape_[d];
      row /= shape_[d];
      for (std::size_t k = 0; k < 3; ++k) offsets_[k] += index_[d] * (*strides_[k])[d];
    }
  }
  std::int64_t operator[](std::size_t k) const { return offsets_[k]; }
  void next() {
    for (std::size_t d = shape_.size(); d-- > 0;) {
      if (++index_[d] < shape_[d]) {
        for (std::size_t k = 0; k < 3; ++k) offsets_[k] += (*strides_[k])[d];
        return;
      }
      index_[d] = 0;
      for (std::size_t k = 0; k < 3; ++k) offsets_[k] -= (shape_[d] - 1) * (*strides_[k])[d];
    }
  }

 private:
  Shape shape_;
  std::array<const Strides*, 3> strides_;
  std::vector<std::int64_t> index_;
  std::array<std::int64_t, 3> offsets_{};
};

// Rows shorter than this are walked by `ref`: the per-row bookkeeping would cost more than it saves.
constexpr std::int64_t kMinRowLength = 8;

// True when a binary kernel can run row by row: a contiguous last axis in `out`, and each operand's last
// axis either contiguous or broadcast (stride 0). This is how bias adds, per-row scales and most
// broadcast gradients look: (rows, n) op (n,) or (rows, n) op (rows, 1).
bool rows_layout(const StridedView& out, const StridedView& a, const StridedView& b) {
  if (out.ndim() < 2 || out.shape.back() < kMinRowLength || out.strides.back() != 1) return false;
  const auto unit_or_zero = [](std::int64_t s) { return s == 0 || s == 1; };
  return unit_or_zero(a.strides.back()) && unit_or_zero(b.strides.back());
}

// The dimension along which `in` is read with unit stride when that is not its last one: a permuted view
// being made contiguous (BatchNorm's channels-last result handed on in (N, C, H, W) order, and its gradient
// back). -1 when there is none, or when the plane it spans with the last dimension is too small to tile.
std::int64_t transposed_unit_dim(const StridedView& out, const StridedView& in) {
  const std::size_t ndim = out.shape.size();
  if (ndim < 2 || out.dtype != in.dtype || !out.is_contiguous() || in.strides.back() == 1) return -1;
  const std::int64_t last = out.shape.back();
  for (std::size_t d = 0; d + 1 < ndim; ++d) {
    if (in.strides[d] == 1 && out.shape[d] > 1) return out.shape[d] * last >= 64 && last >= 4 ? std::int64_t(d) : -1;
  }
  return -1;
}

// The copy of transposed_unit_dim's case in 16 x 16 tiles of the (unit, last) plane: walking out's order
// alone reads `in` a whole stride apart for every element, while within a tile the 16 cache lines read
// along the unit dimension are all used before they leave L1.
template <typename T>
void copy_transposed(const StridedView& out, const StridedView& in, std::size_t unit) {
  constexpr std::int64_t kTile = 16;
  const std::size_t last = out.shape.size() - 1;
  const std::int64_t rows = out.shape[unit];
  const std::int64_t cols = out.shape[last];
  const std::int64_t out_row_stride = out.strides[unit];
  const std::int64_t in_col_stride = in.strides[last];
  // The other dimensions, walked one (unit, last) plane at a time.
  Shape outer_shape;
  Strides outer_out;
  Strides outer_in;
  for (std::size_t d = 0; d < last; ++d) {
    if (d == unit) continue;
    outer_shape.push_back(out.shape[d]);
    outer_out.push_back(out.strides[d]);
    outer_in.push_back(in.strides[d]);
  }
  const std::int64_t planes = numel(outer_shape);
  T* o = out.ptr<T>();
  const T* src = in.ptr<T>();
  const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / (rows * cols));
  parallel_for(0, planes, grain, [&](std::int64_t first, std::int64_t end) {
    for (std::int64_t plane = first; plane < end; ++plane) {
      std::int64_t out_base = 0;
      std::int64_t in_base = 0;
      for (std::int64_t rest = plane, d = std::int64_t(outer_shape.size()) - 1; d >= 0; --d) {
        const std::int64_t index = rest % outer_shape[static_cast<std::size_t>(d)];
        rest /= outer_shape[static_cast<std::size_t>(d)];
        out_base += index * outer_out[static_cast<std::size_t>(d)];
        in_base += index * outer_in[static_cast<std::size_t>(d)];
      }
      for (std::int64_t i0 = 0; i0 < rows; i0 += kTile) {
        const std::int64_t i1 = std::min(i0 + kTile, rows);
        for (std::int64_t j0 = 0; j0 < cols; j0 += kTile) {
          const std::int64_t j1 = std::min(j0 + kTile, cols);
          for (std::int64_t i = i0; i < i1; ++i) {
            T* to = o + out_base + i * out_row_stride;
            const T* from = src + in_base + i;
            for (std::int64_t j = j0; j < j1; ++j) to[j] = from[j * in_col_stride];
          }
        }
      }
    }
  });
}

}  // namespace

void CpuBackend::fill_kernel(const StridedView& out, const Scalar& value) {
  if (!out.is_contiguous()) return ref::fill(out, value);
  dispatch_dtype(out.dtype, [&]<typename T>() {
    const T v = value.to<T>();
    T* o = out.ptr<T>();
    // A large fill (the zeros a gradient scatters into) is bound by memory, so each thread writes its own
    // part. All-zero bytes (0, not -0.0) go to memset, which the C library writes with streaming stores
    // when the block is larger than the cache: no read of the old contents first.
    bool zero_bytes = v == T{};
    if constexpr (std::is_floating_point_v<T>) zero_bytes = zero_bytes && !std::signbit(v);
    flat_for(out.size(), [&](std::int64_t first, std::int64_t last) {
      if (zero_bytes) {
        std::memset(o + first, 0, static_cast<std::size_t>(last - first) * sizeof(T));
      } else {
        std::fill(o + first, o + last, v);
      }
    });
  });
}

void CpuBackend::copy_kernel(const StridedView& out, const StridedView& in) {
  if (const std::int64_t unit = transposed_unit_dim(out, in); unit >= 0) {
    dispatch_dtype(out.dtype, [&]<typename T>() { copy_transposed<T>(out, in, static_cast<std::size_t>(unit)); });
    return;
  }
  if (!out.is_contiguous() || !in.is_contiguous()) return ref::copy(out, in);
  const std::int64_t n = out.size();
  if (n == 0) return;
  if (out.dtype == in.dtype) {
    const std::size_t item = itemsize(out.dtype);
    auto* dst = static_cast<std::byte*>(out.data);
    const auto* src = static_cast<const std::byte*>(in.data);
    const std::size_t nbytes = static_cast<std::size_t>(n) * item;
    if (dst < src + nbytes && src < dst + nbytes) {
      // Copying an array onto itself is legal: memmove, in one piece, so that no part reads what another
      // thread's part has already overwritten.
      std::memmove(dst, src, nbytes);
      return;
    }
    // A large copy is bound by memory: each thread copies its own part.
    flat_for(n, [&](std::int64_t first, std::int64_t last) {
      const auto offset = static_cast<std::size_t>(first) * item;
      std::memcpy(dst + offset, src + offset, static_cast<std::size_t>(last - first) * item);
    });
    return;
  }
  dispatch_dtype(out.dtype, [&]<typename To>() {
    dispatch_dtype(in.dtype, [&]<typename From>() {
      To* o = out.ptr<To>();
      const From* i = in.ptr<From>();
      flat_for(n, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t k = first; k < last; ++k) o[k] = math::convert<To>(i[k]);
      });
    });
  });
}

void CpuBackend::unary_kernel(UnaryOp op, const StridedView& out, const StridedView& in) {
  if (!out.is_contiguous() || !in.is_contiguous()) return ref::unary(op, out, in);
  const std::int64_t n = out.size();
  if (in.dtype == DType::Float32) {
    // exp, sigmoid, tanh and GELU: eight lanes at a time instead of one libm call per element (vector_math.h).
    if (const cpu::FloatArrayFn vector_fn = cpu::vector_unary_f32(op)) {
      float* o = out.ptr<float>();
      const float* i = in.ptr<float>();
      flat_for(n, [&](std::int64_t first, std::int64_t last) { vector_fn(o + first, i + first, last - first); });
      return;
    }
  }
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

void CpuBackend::relu_backward_kernel(const kernels::RowLayout& layout, const StridedView& out, const StridedView& g,
                                      const StridedView& x) {
  dispatch_floating(layout.dtype, "relu_backward", [&]<typename T>() {
    T* o = out.ptr<T>();
    const T* grad = g.ptr<T>();
    const T* in = x.ptr<T>();
    flat_for(out.size(), [&](std::int64_t first, std::int64_t last) {
      // Both loaded unconditionally: a select, which vectorises, instead of a branch on random signs.
      for (std::int64_t k = first; k < last; ++k) {
        const T gk = grad[k];
        o[k] = in[k] > T(0) ? gk : T(0);
      }
    });
  });
}

void CpuBackend::gelu_backward_kernel(const kernels::RowLayout& layout, const StridedView& out, const StridedView& g,
                                      const StridedView& x) {
  dispatch_floating(layout.dtype, "gelu_backward", [&]<typename T>() {
    T* o = out.ptr<T>();
    const T* grad = g.ptr<T>();
    const T* in = x.ptr<T>();
    if constexpr (std::is_same_v<T, float>) {
      if (const cpu::FloatProductFn vector_fn = cpu::vector_gelu_backward_f32()) {
        flat_for(out.size(), [&](std::int64_t first, std::int64_t last) {
          vector_fn(o + first, grad + first, in + first, last - first);
        });
        return;
      }
    }
    // gelu_grad's scalar formula, as the unary kernel computes it, then the product.
    flat_for(out.size(), [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t k = first; k < last; ++k) o[k] = grad[k] * math::gelu_grad(in[k]);
    });
  });
}

void CpuBackend::binary_kernel(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) {
  const FlatLayout layout_a = flat_layout(a);
  const FlatLayout layout_b = flat_layout(b);
  const bool both_broadcast = layout_a == FlatLayout::Broadcast && layout_b == FlatLayout::Broadcast;
  const bool flat =
      out.is_contiguous() && layout_a != FlatLayout::Strided && layout_b != FlatLayout::Strided && !both_broadcast;
  if (!flat) {
    if (out.size() > 0 && rows_layout(out, a, b)) return binary_rows(op, out, a, b);
    return ref::binary(op, out, a, b);
  }
  const std::int64_t n = out.size();
  dispatch_dtype(a.dtype, [&]<typename T>() {
    kernels::with_binary_op<T>(op, [&](auto f) {
      using R = decltype(f(T{}, T{}));
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

// The contiguous layouts (a and b each contiguous or a scalar, as a ReLU gradient's where(x > 0, g, 0) is):
// one flat loop split over threads; anything else walks strides as ref does.
void CpuBackend::where_kernel(const StridedView& out, const StridedView& cond, const StridedView& a,
                              const StridedView& b) {
  const FlatLayout layout_a = flat_layout(a);
  const FlatLayout layout_b = flat_layout(b);
  if (!out.is_contiguous() || !cond.is_contiguous() || layout_a == FlatLayout::Strided ||
      layout_b == FlatLayout::Strided) {
    return ref::where(out, cond, a, b);
  }
  const std::int64_t step_a = layout_a == FlatLayout::Contiguous ? 1 : 0;
  const std::int64_t step_b = layout_b == FlatLayout::Contiguous ? 1 : 0;
  dispatch_dtype(out.dtype, [&]<typename T>() {
    T* o = out.ptr<T>();
    const bool* c = cond.ptr<bool>();
    const T* pa = a.ptr<T>();
    const T* pb = b.ptr<T>();
    flat_for(out.size(), [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t i = first; i < last; ++i) o[i] = math::select(c[i], pa[i * step_a], pb[i * step_b]);
    });
  });
}

}  // namespace needle

namespace needle {

// Broadcast and strided layouts whose last axis is contiguous or broadcast: one flat loop per row, rows
// split over threads. Each element is still computed alone, so the result equals ref's.
void CpuBackend::binary_rows(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) {
  const std::int64_t length = out.shape.back();
  const std::int64_t rows = out.size() / length;
  const std::int64_t step_a = a.strides.back();
  const std::int64_t step_b = b.strides.back();
  dispatch_dtype(a.dtype, [&]<typename T>() {
    kernels::with_binary_op<T>(op, [&](auto f) {
      using R = decltype(f(T{}, T{}));
      const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / length);
      parallel_for(0, rows, grain, [&](std::int64_t first, std::int64_t last) {
        RowOffsets at(first, out.shape, {&out.strides, &a.strides, &b.strides});
        for (std::int64_t r = first; r < last; ++r, at.next()) {
          R* o = out.ptr<R>() + at[0];
          const T* pa = a.ptr<T>() + at[1];
          const T* pb = b.ptr<T>() + at[2];
          if (step_a == 1 && step_b == 1) {
            binary_flat<1, 1>(o, pa, pb, length, f);
          } else if (step_a == 1) {
            binary_flat<1, 0>(o, pa, pb, length, f);
          } else if (step_b == 1) {
            binary_flat<0, 1>(o, pa, pb, length, f);
          } else {
            std::fill_n(o, length, f(pa[0], pb[0]));
          }
        }
      });
    });
  });
}

}  // namespace needle
