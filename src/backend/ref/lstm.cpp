// The fused LSTM cell and its backward pass as plain loops over (row, unit), every value computed in
// double: the reading of the formulas in kernels.def that the faster backends are tested against.
#include <cmath>
#include <cstdint>

#include "backend/ref/ref_kernels.h"

namespace needle::ref {

namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The pre-activation of unit j of gate block k (0..3 = i, f, g, o) in row b: gates (+ gates2).
template <typename T>
double pre_activation(const StridedView& gates, const StridedView& gates2, std::int64_t b, std::int64_t hidden,
                      std::int64_t k, std::int64_t j) {
  const std::int64_t col = k * hidden + j;
  double z = kernels::row_ptr<T>(gates, b)[col];
  if (kernels::present(gates2)) z += kernels::row_ptr<T>(gates2, b)[col];
  return z;
}

}  // namespace

void lstm_cell(const kernels::LstmLayout& layout, const StridedView& h, const StridedView& c, const StridedView& gates,
               const StridedView& gates2, const StridedView& c_prev) {
  dispatch_floating(layout.dtype, "lstm_cell", [&]<typename T>() {
    for (std::int64_t b = 0; b < layout.batch; ++b) {
      for (std::int64_t j = 0; j < layout.hidden; ++j) {
        const auto z = [&](std::int64_t k) { return pre_activation<T>(gates, gates2, b, layout.hidden, k, j); };
        const double i = sigmoid(z(0));
        const double f = sigmoid(z(1));
        const double g = std::tanh(z(2));
        const double o = sigmoid(z(3));
        const double cp = kernels::present(c_prev) ? static_cast<double>(kernels::row_ptr<T>(c_prev, b)[j]) : 0.0;
        const double cn = f * cp + i * g;
        kernels::row_ptr<T>(c, b)[j] = static_cast<T>(cn);
        kernels::row_ptr<T>(h, b)[j] = static_cast<T>(o * std::tanh(cn));
      }
    }
  });
}

void lstm_cell_backward(const kernels::LstmLayout& layout, const StridedView& dgates, const StridedView& dc_prev,
                        const StridedView& dh, const StridedView& dc, const StridedView& gates,
                        const StridedView& gates2, const StridedView& c_prev) {
  const std::int64_t hidden = layout.hidden;
  dispatch_floating(layout.dtype, "lstm_cell_backward", [&]<typename T>() {
    for (std::int64_t b = 0; b < layout.batch; ++b) {
      T* dz = kernels::row_ptr<T>(dgates, b);
      for (std::int64_t j = 0; j < hidden; ++j) {
        const auto z = [&](std::int64_t k) { return pre_activation<T>(gates, gates2, b, hidden, k, j); };
        const double i = sigmoid(z(0));
        const double f = sigmoid(z(1));
        const double g = std::tanh(z(2));
        const double o = sigmoid(z(3));
        const double cp = kernels::present(c_prev) ? static_cast<double>(kernels::row_ptr<T>(c_prev, b)[j]) : 0.0;
        const double tc = std::tanh(f * cp + i * g);
        const double dhj = kernels::row_ptr<T>(dh, b)[j];
        // The gradient reaching c: directly, and through h = o * tanh(c).
        const double dct = static_cast<double>(kernels::row_ptr<T>(dc, b)[j]) + dhj * o * (1.0 - tc * tc);
        dz[j] = static_cast<T>(dct * g * i * (1.0 - i));
        dz[hidden + j] = static_cast<T>(dct * cp * f * (1.0 - f));
        dz[2 * hidden + j] = static_cast<T>(dct * i * (1.0 - g * g));
        dz[3 * hidden + j] = static_cast<T>(dhj * tc * o * (1.0 - o));
        if (kernels::present(dc_prev)) kernels::row_ptr<T>(dc_prev, b)[j] = static_cast<T>(dct * f);
      }
    }
  });
}

}  // namespace needle::ref
