// The `cpu` optimizer updates: the shared per-element formula of element_ops.h over contiguous memory,
// split over threads for large parameters. Each element is updated alone, so the split changes nothing.
#include "backend/cpu/cpu_backend.h"
#include "backend/element_ops.h"
#include "needle/core/threads.h"

namespace needle {

namespace {
// Below this many elements an update takes a few microseconds: not worth waking a thread.
constexpr std::int64_t kOptimizerGrain = 32768;
}  // namespace

void CpuBackend::adam_update_kernel(const kernels::RowLayout& layout, const StridedView& param, const StridedView& grad,
                                    const StridedView& exp_avg, const StridedView& exp_avg_sq, const AdamStep& step) {
  dispatch_floating(layout.dtype, "adam_update", [&]<typename T>() {
    const kernels::AdamCoefficients<T> c(step);
    T* p = param.ptr<T>();
    const T* g = grad.ptr<T>();
    T* m = exp_avg.ptr<T>();
    T* v = exp_avg_sq.ptr<T>();
    parallel_for(0, layout.size(), kOptimizerGrain, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t i = first; i < last; ++i) kernels::adam_element(p[i], g[i], m[i], v[i], c);
    });
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
