// The cpu backend's fused LSTM cell and its backward pass: per row of the batch, the four gate blocks are
// summed and activated in a row buffer (4H values that stay in cache), then the state update runs as one
// loop over the H units. Float32 activations use the AVX2 array kernels of vector_math.h where the CPU has
// them, everything else the scalar functions of element_ops.h, which the unary kernels use too. Rows are
// split over the thread pool once a batch is big enough; every row is computed by one thread in a fixed
// order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/vector_math.h"
#include "backend/element_ops.h"
#include "needle/core/threads.h"

namespace needle {

namespace {

// Rows per parallel chunk are chosen so each chunk has at least this many gate pre-activations: a
// language-model batch (20 x 800) stays on one thread, where waking others would cost more than it saves.
constexpr std::int64_t kParallelGrain = 32768;

// x[j] = sigmoid(x[j]) or tanh(x[j]) for j < n, in place.
template <typename T>
void apply(UnaryOp op, T* x, std::int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (const cpu::FloatArrayFn vector_fn = cpu::vector_unary_f32(op)) {
      vector_fn(x, x, n);
      return;
    }
  }
  if (op == UnaryOp::Sigmoid) {
    for (std::int64_t j = 0; j < n; ++j) x[j] = kernels::sigmoid(x[j]);
  } else {
    for (std::int64_t j = 0; j < n; ++j) x[j] = std::tanh(x[j]);
  }
}

// act[0, 4H) = the activated gates i, f, g, o of row b of z = gates (+ gates2).
template <typename T>
void activate_row(T* act, const StridedView& gates, const StridedView& gates2, std::int64_t b, std::int64_t hidden) {
  const T* z = kernels::row_ptr<T>(gates, b);
  if (kernels::present(gates2)) {
    const T* z2 = kernels::row_ptr<T>(gates2, b);
    for (std::int64_t j = 0; j < 4 * hidden; ++j) act[j] = z[j] + z2[j];
  } else {
    std::copy(z, z + 4 * hidden, act);
  }
  apply(UnaryOp::Sigmoid, act, 2 * hidden);  // i and f, adjacent
  apply(UnaryOp::Tanh, act + 2 * hidden, hidden);
  apply(UnaryOp::Sigmoid, act + 3 * hidden, hidden);
}

// fn(first, last, buffer) over the rows, with a per-chunk buffer of `buffer_size` values of T.
template <typename T, typename Fn>
void parallel_rows(const kernels::LstmLayout& layout, std::int64_t buffer_size, Fn&& fn) {
  if (layout.batch == 0 || layout.hidden == 0) return;
  const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / (4 * layout.hidden));
  parallel_for(0, layout.batch, grain, [&](std::int64_t first, std::int64_t last) {
    std::vector<T> buffer(static_cast<std::size_t>(buffer_size));
    fn(first, last, buffer.data());
  });
}

}  // namespace

void CpuBackend::lstm_cell_kernel(const kernels::LstmLayout& layout, const StridedView& h, const StridedView& c,
                                  const StridedView& gates, const StridedView& gates2, const StridedView& c_prev) {
  const std::int64_t hidden = layout.hidden;
  dispatch_floating(layout.dtype, "lstm_cell", [&]<typename T>() {
    parallel_rows<T>(layout, 5 * hidden, [&](std::int64_t first, std::int64_t last, T* buffer) {
      T* act = buffer;
      T* tc = buffer + 4 * hidden;
      for (std::int64_t b = first; b < last; ++b) {
        activate_row(act, gates, gates2, b, hidden);
        const T* i = act;
        const T* f = act + hidden;
        const T* g = act + 2 * hidden;
        const T* o = act + 3 * hidden;
        T* cr = kernels::row_ptr<T>(c, b);
        T* hr = kernels::row_ptr<T>(h, b);
        if (kernels::present(c_prev)) {
          const T* cp = kernels::row_ptr<T>(c_prev, b);
          for (std::int64_t j = 0; j < hidden; ++j) cr[j] = f[j] * cp[j] + i[j] * g[j];
        } else {
          for (std::int64_t j = 0; j < hidden; ++j) cr[j] = i[j] * g[j];
        }
        std::copy(cr, cr + hidden, tc);
        apply(UnaryOp::Tanh, tc, hidden);
        for (std::int64_t j = 0; j < hidden; ++j) hr[j] = o[j] * tc[j];
      }
    });
  });
}

void CpuBackend::lstm_cell_backward_kernel(const kernels::LstmLayout& layout, const StridedView& dgates,
                                           const StridedView& dc_prev, const StridedView& dh, const StridedView& dc,
                                           const StridedView& gates, const StridedView& gates2,
                                           const StridedView& c_prev) {
  const std::int64_t hidden = layout.hidden;
  dispatch_floating(layout.dtype, "lstm_cell_backward", [&]<typename T>() {
    parallel_rows<T>(layout, 6 * hidden, [&](std::int64_t first, std::int64_t last, T* buffer) {
      T* act = buffer;
      T* tc = buffer + 4 * hidden;
      for (std::int64_t b = first; b < last; ++b) {
        activate_row(act, gates, gates2, b, hidden);
        const T* i = act;
        const T* f = act + hidden;
        const T* g = act + 2 * hidden;
        const T* o = act + 3 * hidden;
        const T* cp = kernels::present(c_prev) ? kernels::row_ptr<T>(c_prev, b) : nullptr;
        for (std::int64_t j = 0; j < hidden; ++j) tc[j] = cp != nullptr ? f[j] * cp[j] + i[j] * g[j] : i[j] * g[j];
        apply(UnaryOp::Tanh, tc, hidden);
        const T* dhr = kernels::row_ptr<T>(dh, b);
        const T* dcr = kernels::row_ptr<T>(dc, b);
        T* dz = kernels::row_ptr<T>(dgates, b);
        T* dct = buffer + 5 * hidden;
        for (std::int64_t j = 0; j < hidden; ++j) {
          // The gradient reaching c: directly, and through h = o * tanh(c).
          dct[j] = dcr[j] + dhr[j] * o[j] * (T(1) - tc[j] * tc[j]);
          dz[j] = dct[j] * g[j] * i[j] * (T(1) - i[j]);
          dz[2 * hidden + j] = dct[j] * i[j] * (T(1) - g[j] * g[j]);
          dz[3 * hidden + j] = dhr[j] * tc[j] * o[j] * (T(1) - o[j]);
        }
        if (cp != nullptr) {
          T* dcp = kernels::row_ptr<T>(dc_prev, b);
          for (std::int64_t j = 0; j < hidden; ++j) {
            dz[hidden + j] = dct[j] * cp[j] * f[j] * (T(1) - f[j]);
            dcp[j] = dct[j] * f[j];
          }
        } else {
          std::fill(dz + hidden, dz + 2 * hidden, T(0));  // f had no effect on a zero state
        }
      }
    });
  });
}

}  // namespace needle
