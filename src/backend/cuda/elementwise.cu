// Element-wise kernels: fill, copy (any dtype pair), unary, binary and where, over arbitrary strides.
// Each is one grid-stride launch; contiguous operands merge into one dimension, so their offsets cost
// one multiply.
#include "backend/cuda/cuda_common.cuh"
#include "backend/view_checks.h"

namespace needle::cuda {

namespace {

template <typename T>
struct FillFn {
  T* out;
  T value;
  __device__ void operator()(const std::int64_t (&at)[1]) const { out[at[0]] = value; }
};

template <typename To, typename From>
struct CopyFn {
  To* out;
  const From* in;
  // astype's rule (element_math.h): out-of-range floats into integers give what the host backends give.
  __device__ void operator()(const std::int64_t (&at)[2]) const { out[at[0]] = math::convert<To>(in[at[1]]); }
};

// ---- unary ----------------------------------------------------------------------------------

// The formula of one UnaryOp (element_math.h, shared with the host backends) as a kernel functor.
template <UnaryOp Op>
struct UnaryFormula {
  template <typename T>
  __device__ T operator()(T x) const {
    return math::apply_unary<Op>(x);
  }
};

template <typename T, typename Op>
struct UnaryFn {
  T* out;
  const T* in;
  Op op;
  __device__ void operator()(const std::int64_t (&at)[2]) const { out[at[0]] = op(in[at[1]]); }
};

template <typename T, typename Op>
void launch_unary(Context& ctx, std::string_view name, const StridedView& out, const StridedView& in) {
  launch_elementwise<2>(ctx, name, out.shape, {&out.strides, &in.strides},
                        UnaryFn<T, Op>{out.ptr<T>(), in.ptr<T>(), Op{}});
}

template <typename T>
void unary_typed(Context& ctx, UnaryOp op, const StridedView& out, const StridedView& in) {
  const std::string_view name = unary_op_name(op);
  switch (op) {
#define NEEDLE_UNARY(kind, ...)                                                \
  case UnaryOp::kind:                                                          \
    if constexpr (math::unary_supports<UnaryOp::kind, T>) {                    \
      return launch_unary<T, UnaryFormula<UnaryOp::kind>>(ctx, name, out, in); \
    }                                                                          \
    break;
#include "needle/core/unary_ops.def"
  }
  throw_unsupported_dtype<T>(name);
}

// ---- binary ---------------------------------------------------------------------------------

// Each op carries the context's error flag; only integer Div and Pow write it.
struct AddOp {
  template <typename T>
  __device__ T operator()(T a, T b, int* /*flag*/) const {
    return add(a, b);
  }
};
struct SubOp {
  template <typename T>
  __device__ T operator()(T a, T b, int* /*flag*/) const {
    return subtract(a, b);
  }
};
struct MulOp {
  template <typename T>
  __device__ T operator()(T a, T b, int* /*flag*/) const {
    return multiply(a, b);
  }
};
struct DivOp {
  template <typename T>
  __device__ T operator()(T a, T b, int* flag) const {
    if constexpr (kIsInteger<T>) {
      if (b == 0) {
        *flag = kIntegerDivisionByZero;
        return 0;
      }
      // The most negative value divided by -1 overflows; it wraps like negation.
      if constexpr (std::is_signed_v<T>) {
        if (b == -1) return negate(a);
      }
    }
    return a / b;
  }
};
struct PowOp {
  template <typename T>
  __device__ T operator()(T base, T exponent, int* flag) const {
    if constexpr (kIsInteger<T>) {
      if constexpr (std::is_signed_v<T>) {
        if (exponent < 0) {
          *flag = kNegativeIntegerPower;
          return 0;
        }
      }
      T result = 1;
      while (exponent > 0) {
        if ((exponent & 1) != 0) result = multiply(result, base);
        exponent /= 2;
        if (exponent > 0) base = multiply(base, base);
      }
      return result;
    } else if constexpr (std::is_same_v<T, float>) {
      return powf(base, exponent);
    } else {
      return pow(base, exponent);
    }
  }
};
struct MaximumOp {
  template <typename T>
  __device__ T operator()(T a, T b, int* /*flag*/) const {
    return maximum(a, b);
  }
};
struct MinimumOp {
  template <typename T>
  __device__ T operator()(T a, T b, int* /*flag*/) const {
    return minimum(a, b);
  }
};
#define NEEDLE_CUDA_COMPARISON(Name, expr)             \
  struct Name {                                        \
    template <typename T>                              \
    __device__ bool operator()(T a, T b, int*) const { \
      return expr;                                     \
    }                                                  \
  };
NEEDLE_CUDA_COMPARISON(EqOp, a == b)
NEEDLE_CUDA_COMPARISON(NeOp, a != b)
NEEDLE_CUDA_COMPARISON(LtOp, a < b)
NEEDLE_CUDA_COMPARISON(LeOp, a <= b)
NEEDLE_CUDA_COMPARISON(GtOp, a > b)
NEEDLE_CUDA_COMPARISON(GeOp, a >= b)
#undef NEEDLE_CUDA_COMPARISON

template <typename T, typename R, typename Op>
struct BinaryFn {
  R* out;
  const T* a;
  const T* b;
  int* flag;
  Op op;
  __device__ void operator()(const std::int64_t (&at)[3]) const { out[at[0]] = op(a[at[1]], b[at[2]], flag); }
};

template <typename T, typename R, typename Op>
void launch_binary(Context& ctx, std::string_view name, const StridedView& out, const StridedView& a,
                   const StridedView& b) {
  launch_elementwise<3>(ctx, name, out.shape, {&out.strides, &a.strides, &b.strides},
                        BinaryFn<T, R, Op>{out.ptr<R>(), a.ptr<T>(), b.ptr<T>(), ctx.error_flag, Op{}});
}

template <typename T>
void binary_typed(Context& ctx, BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) {
  const std::string_view name = binary_op_name(op);
  switch (op) {
    case BinaryOp::Eq:
      return launch_binary<T, bool, EqOp>(ctx, name, out, a, b);
    case BinaryOp::Ne:
      return launch_binary<T, bool, NeOp>(ctx, name, out, a, b);
    case BinaryOp::Lt:
      return launch_binary<T, bool, LtOp>(ctx, name, out, a, b);
    case BinaryOp::Le:
      return launch_binary<T, bool, LeOp>(ctx, name, out, a, b);
    case BinaryOp::Gt:
      return launch_binary<T, bool, GtOp>(ctx, name, out, a, b);
    case BinaryOp::Ge:
      return launch_binary<T, bool, GeOp>(ctx, name, out, a, b);
    case BinaryOp::Maximum:
      return launch_binary<T, T, MaximumOp>(ctx, name, out, a, b);
    case BinaryOp::Minimum:
      return launch_binary<T, T, MinimumOp>(ctx, name, out, a, b);
    default:
      break;
  }
  if constexpr (!std::is_same_v<T, bool>) {
    switch (op) {
      case BinaryOp::Add:
        return launch_binary<T, T, AddOp>(ctx, name, out, a, b);
      case BinaryOp::Sub:
        return launch_binary<T, T, SubOp>(ctx, name, out, a, b);
      case BinaryOp::Mul:
        return launch_binary<T, T, MulOp>(ctx, name, out, a, b);
      case BinaryOp::Div:
        launch_binary<T, T, DivOp>(ctx, name, out, a, b);
        // Only integers can fail, and only they pay for reading the flag back.
        if constexpr (kIsInteger<T>) raise_flagged_error(ctx);
        return;
      case BinaryOp::Pow:
        launch_binary<T, T, PowOp>(ctx, name, out, a, b);
        if constexpr (kIsInteger<T>) raise_flagged_error(ctx);
        return;
      default:
        break;
    }
  }
  throw_unsupported_dtype<T>(name);
}

template <typename T>
struct WhereFn {
  T* out;
  const bool* cond;
  const T* a;
  const T* b;
  __device__ void operator()(const std::int64_t (&at)[4]) const { out[at[0]] = cond[at[1]] ? a[at[2]] : b[at[3]]; }
};

}  // namespace

void fill(Context& ctx, const StridedView& out, const Scalar& value) {
  dispatch(out.dtype, [&]<typename T>() {
    launch_elementwise<1>(ctx, "fill", out.shape, {&out.strides}, FillFn<T>{out.ptr<T>(), value.to<T>()});
  });
}

void copy(Context& ctx, const StridedView& out, const StridedView& in) {
  dispatch(out.dtype, [&]<typename To>() {
    dispatch(in.dtype, [&]<typename From>() {
      launch_elementwise<2>(ctx, "copy", out.shape, {&out.strides, &in.strides},
                            CopyFn<To, From>{out.ptr<To>(), in.ptr<From>()});
    });
  });
}

void unary(Context& ctx, UnaryOp op, const StridedView& out, const StridedView& in) {
  dispatch(in.dtype, [&]<typename T>() { unary_typed<T>(ctx, op, out, in); });
}

void binary(Context& ctx, BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) {
  dispatch(a.dtype, [&]<typename T>() { binary_typed<T>(ctx, op, out, a, b); });
}

void where(Context& ctx, const StridedView& out, const StridedView& cond, const StridedView& a, const StridedView& b) {
  dispatch(out.dtype, [&]<typename T>() {
    launch_elementwise<4>(ctx, "where", out.shape, {&out.strides, &cond.strides, &a.strides, &b.strides},
                          WhereFn<T>{out.ptr<T>(), cond.ptr<bool>(), a.ptr<T>(), b.ptr<T>()});
  });
}

}  // namespace needle::cuda
