// The `ref` optimizer updates: one plain loop over the elements, each updated by the shared per-element
// formula of element_ops.h.
#include "backend/element_ops.h"
#include "backend/ref/ref_kernels.h"

namespace needle::ref {

void adam_update(const kernels::RowLayout& layout, const StridedView& param, const StridedView& grad,
                 const StridedView& exp_avg, const StridedView& exp_avg_sq, const AdamStep& step) {
  dispatch_floating(layout.dtype, "adam_update", [&]<typename T>() {
    const kernels::AdamCoefficients<T> c(step);
    T* p = param.ptr<T>();
    const T* g = grad.ptr<T>();
    T* m = exp_avg.ptr<T>();
    T* v = exp_avg_sq.ptr<T>();
    for (std::int64_t i = 0; i < layout.size(); ++i) kernels::adam_element(p[i], g[i], m[i], v[i], c);
  });
}

void sgd_update(const kernels::RowLayout& layout, const StridedView& param, const StridedView& grad,
                const StridedView& momentum_buffer, const SgdStep& step) {
  const std::int64_t n = layout.size();
  dispatch_floating(param.dtype, "sgd_update", [&]<typename T>() {
    const kernels::SgdCoefficients<T> c(step);
    T* p = param.ptr<T>();
    const T* g = grad.ptr<T>();
    T* u = momentum_buffer.ptr<T>();
    if (u == nullptr) {
      for (std::int64_t i = 0; i < n; ++i) kernels::sgd_element(p[i], g[i], c);
    } else {
      for (std::int64_t i = 0; i < n; ++i) kernels::sgd_momentum_element(p[i], g[i], u[i], c);
    }
  });
}

}  // namespace needle::ref
