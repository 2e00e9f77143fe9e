// The `cpu` optimizer updates: the shared per-element formula of element_ops.h over contiguous memory,
// split over threads for large parameters. Each element is updated alone, so the split changes nothing.
#include <atomic>

#include "backend/cpu/cpu_backend.h"
#include "backend/element_ops.h"
#include "needle/core/threads.h"

namespace needle {

namespace {
// Below this many elements an update takes a few microseconds: not worth waking a thread.
constexpr std::int64_t kOptimizerGrain = 32768;

std::atomic<bool> g_force_portable{false};

// Adam over elements [first, last): the shared per-element formula. Unswitched by hand on `decoupled`, so
// that the loop body has no branch and vectorises.
template <typename T>
[[gnu::always_inline]] inline void adam_range(T* p, const T* g, T* m, T* v, std::int64_t first, std::int64_t last,
                                              const kernels::AdamCoefficients<T>& c) {
  if (c.decoupled) {
    for (std::int64_t i = first; i < last; ++i) kernels::adam_element(p[i], g[i], m[i], v[i], c);
  } else {
    for (std::int64_t i = first; i < last; ++i) kernels::adam_element(p[i], g[i], m[i], v[i], c);
  }
}

template <typename T>
void adam_range_portable(T* p, const T* g, T* m, T* v, std::int64_t first, std::int64_t last,
                         const kernels::AdamCoefficients<T>& c) {
  adam_range(p, g, m, v, first, last, c);
}

#if defined(__x86_64__)
// The same loop in AVX2 registers. Without FMA nothing can be contracted, and IEEE division and square root
// round alike at every width, so it gives the baseline loop's bits (three divisions and a square root per
// element make the update bound by arithmetic, not memory).
template <typename T>
__attribute__((target("avx2"))) void adam_range_avx2(T* p, const T* g, T* m, T* v, std::int64_t first,
                                                     std::int64_t last, const kernels::AdamCoefficients<T>& c) {
  adam_range(p, g, m, v, first, last, c);
}

bool cpu_has_avx2() {
  static const bool supported = __builtin_cpu_supports("avx2");
  return supported;
}
#endif

template <typename T>
using AdamRangeFn = void (*)(T*, const T*, T*, T*, std::int64_t, std::int64_t, const kernels::AdamCoefficients<T>&);

template <typename T>
AdamRangeFn<T> adam_range_kernel() {
#if defined(__x86_64__)
  if (!g_force_portable.load(std::memory_order_relaxed) && cpu_has_avx2()) return &adam_range_avx2<T>;
#endif
  return &adam_range_portable<T>;
}

}  // namespace

namespace cpu {

void set_optimizer_portable(bool portable) { g_force_portable.store(portable, std::memory_order_relaxed); }

}  // namespace cpu

void CpuBackend::adam_update_kernel(const kernels::RowLayout& layout, const StridedView& param, const StridedView& grad,
                                    const StridedView& exp_avg, const StridedView& exp_avg_sq, const AdamStep& step) {
  dispatch_floating(layout.dtype, "adam_update", [&]<typename T>() {
    const kernels::AdamCoefficients<T> c(step);
    T* p = param.ptr<T>();
    const T* g = grad.ptr<T>();
    T* m = exp_avg.ptr<T>();
    T* v = exp_avg_sq.ptr<T>();
    const AdamRangeFn<T> kernel = adam_range_kernel<T>();
    parallel_for(0, layout.size(), kOptimizerGrain,
                 [&](std::int64_t first, std::int64_t last) { kernel(p, g, m, v, first, last, c); });
  });
}

void CpuBackend::sgd_update_kernel(const kernels::RowLayout& layout, const StridedView& param, const StridedView& grad,
                                   const StridedView& momentum_buffer, const SgdStep& step) {
  const std::int64_t n = layout.size();
  dispatch_floating(param.dtype, "sgd_update", [&]<typename T>() {
    const kernels::SgdCoefficients<T> c(step);
    T* p = param.ptr<T>();
    const T* g = grad.ptr<T>();
    T* u = momentum_buffer.ptr<T>();
    parallel_for(0, n, kOptimizerGrain, [&](std::int64_t first, std::int64_t last) {
      if (u == nullptr) {
        for (std::int64_t i = first; i < last; ++i) kernels::sgd_element(p[i], g[i], c);
      } else {
        for (std::int64_t i = first; i < last; ++i) kernels::sgd_momentum_element(p[i], g[i], u[i], c);
      }
    });
  });
}

}  // namespace needle
