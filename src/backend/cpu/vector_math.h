// Float32 exp, sigmoid, tanh, GELU and GELU's derivative over contiguous arrays, sixteen lanes at a time with
// AVX-512 or eight with AVX2 + FMA (the same results). These are the unary kernels whose time is all in the scalar libm
// call (expf, erfcf): a training step of a transformer spends a fifth of its time there. The vector versions follow the
// textbook recipes (range reduction plus a polynomial for exp; for erfc, a fitted polynomial times the
// Gaussian) and agree with the scalar element_ops.h versions to a few units in the last place;
// tests/cpp/test_backend_cpu_vs_ref.cpp holds them to that.
#pragma once

#include <cstdint>

#include "needle/backend/backend.h"

namespace needle::cpu {

// out[i] = op(in[i]) for i < n; `out` may be `in`.
using FloatArrayFn = void (*)(float* out, const float* in, std::int64_t n);

// The vector kernel for `op`, or nullptr when there is none for it or the CPU lacks AVX2 + FMA (the caller
// then runs the scalar loop).
FloatArrayFn vector_unary_f32(UnaryOp op);

// out[i] = g[i] * gelu'(x[i]) for i < n (GELU's gradient), or nullptr without AVX2 + FMA.
using FloatProductFn = void (*)(float* out, const float* g, const float* x, std::int64_t n);
FloatProductFn vector_gelu_backward_f32();

// Makes vector_unary_f32 and vector_gelu_backward_f32 hand out the AVX2 kernels even on a CPU with AVX-512 (for tests
// of both); false restores the run-time choice. Callers that keep a kernel keep the one they got.
void set_vector_math_avx2_only(bool avx2_only);

}  // namespace needle::cpu
