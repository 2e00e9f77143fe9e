// The fused neural-network kernels as plain loops over each row, every sum and statistic accumulated in
// double: the reading of the formulas in kernels.def that the faster backends are tested against.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend/ref/ref_kernels.h"

namespace needle::ref {

namespace {

// Runs fn.template operator()<T>(row) for every row index, T the operands' element type.
template <typename Fn>
void for_each_row(const kernels::RowLayout& layout, Fn&& fn) {
  dispatch_floating(layout.dtype, "fused kernel", [&]<typename T>() {
    for (std::int64_t row = 0; row < layout.rows; ++row) fn.template operator()<T>(row);
  });
}

}  // namespace

void softmax(const kernels::RowLayout& layout, const StridedView& out, const StridedView& in, bool log) {
  const std::int64_t cols = layout.cols;
  for_each_row(layout, [&]<typename T>(std::int64_t row) {
    const T* x = in.ptr<T>() + row * cols;
    T* y = out.ptr<T>() + row * cols;
    // Shifting by the row's largest entry keeps every exp() in (0, 1].
    double largest = x[0];
    for (std::int64_t j = 1; j < cols; ++j) largest = std::fmax(largest, static_cast<double>(x[j]));
    double sum = 0.0;
    for (std::int64_t j = 0; j < cols; ++j) sum += std::exp(static_cast<double>(x[j]) - largest);
    for (std::int64_t j = 0; j < cols; ++j) {
      const double shifted = static_cast<double>(x[j]) - largest;
      y[j] = static_cast<T>(log ? shifted - std::log(sum) : std::exp(shifted) / sum);
    }
  });
}

void logsumexp(const kernels::RowLayout& layout, const StridedView& out, const StridedView& in) {
  const std::int64_t cols = layout.cols;
  dispatch_floating(layout.dtype, "logsumexp", [&]<typename T>() {
    for (std::int64_t row = 0; row < layout.rows; ++row) {
      const T* x = in.ptr<T>() + row * cols;
      // The row's largest entry, in double; an infinite one (or none) shifts by 0, see kernels.def.
      double largest = -std::numeric_limits<double>::infinity();
      for (std::int64_t j = 0; j < cols; ++j) largest = std::fmax(largest, static_cast<double>(x[j]));
      const double shift = std::isfinite(largest) ? largest : 0.0;
      double sum = 0.0;
      for (std::int64_t j = 0; j < cols; ++j) sum += std::exp(static_cast<double>(x[j]) - shift);
      out.ptr<T>()[row] = static_cast<T>(std::log(sum) + shift);
    }
  });
}

void softmax_backward(const kernels::RowLayout& layout, const StridedView& dx, const StridedView& g,
                      const StridedView& y, bool log) {
  const std::int64_t cols = layout.cols;
  for_each_row(layout, [&]<typename T>(std::int64_t row) {
    const T* gr = g.ptr<T>() + row * cols;
    const T* yr = y.ptr<T>() + row * cols;
    T* out = dx.ptr<T>() + row * cols;
    double sum = 0.0;  // sum(g) for log-softmax, sum(g * y) for softmax
    for (std::int64_t j = 0; j < cols; ++j) {
      sum += log ? static_cast<double>(gr[j]) : static_cast<double>(gr[j]) * static_cast<double>(yr[j]);
    }
    for (std::int64_t j = 0; j < cols; ++j) {
      const double gj = gr[j];
      const double yj = yr[j];
      out[j] = static_cast<T>(log ? gj - std::exp(yj) * sum : yj * (gj - sum));
    }
  });
}

namespace {

// The mean and 1 / sqrt(biased variance + eps) of one row, from two passes in double.
template <typename T>
void row_statistics(const T* x, std::int64_t cols, double eps, double& mean, double& rstd) {
  double sum = 0.0;
  for (std::int64_t j = 0; j < cols; ++j) sum += x[j];
  mean = sum / static_cast<double>(cols);
  double squares = 0.0;
  for (std::int64_t j = 0; j < cols; ++j) {
    const double centered = static_cast<double>(x[j]) - mean;
    squares += centered * centered;
  }
  rstd = 1.0 / std::sqrt(squares / static_cast<double>(cols) + eps);
}

// dx of one row of the layer norm for the gradient gn(j) that reaches the normalized row (g for the plain
// layer norm, g * weight for the affine one); also hands back the row's mean and rstd.
template <typename T, typename Gradient>
void layer_norm_backward_row(const T* xr, T* out, std::int64_t cols, double eps, Gradient gn, double& mean,
                             double& rstd) {
  const auto n = static_cast<double>(cols);
  row_statistics(xr, cols, eps, mean, rstd);
  double sum = 0.0;
  double sum_xhat = 0.0;
  for (std::int64_t j = 0; j < cols; ++j) {
    const double xhat = (static_cast<double>(xr[j]) - mean) * rstd;
    sum += gn(j);
    sum_xhat += gn(j) * xhat;
  }
  for (std::int64_t j = 0; j < cols; ++j) {
    const double xhat = (static_cast<double>(xr[j]) - mean) * rstd;
    out[j] = static_cast<T>(rstd * (gn(j) - sum / n - xhat * (sum_xhat / n)));
  }
}

}  // namespace

void layer_norm(const kernels::RowLayout& layout, const StridedView& out, const StridedView& x, double eps) {
  const std::int64_t cols = layout.cols;
  for_each_row(layout, [&]<typename T>(std::int64_t row) {
    const T* xr = x.ptr<T>() + row * cols;
    T* y = out.ptr<T>() + row * cols;
    double mean = 0.0;
    double rstd = 0.0;
    row_statistics(xr, cols, eps, mean, rstd);
    for (std::int64_t j = 0; j < cols; ++j) y[j] = static_cast<T>((static_cast<double>(xr[j]) - mean) * rstd);
  });
}

void layer_norm_backward(const kernels::RowLayout& layout, const StridedView& dx, const StridedView& g,
                         const StridedView& x, double eps) {
  const std::int64_t cols = layout.cols;
  for_each_row(layout, [&]<typename T>(std::int64_t row) {
    const T* gr = g.ptr<T>() + row * cols;
    double mean = 0.0;
    double rstd = 0.0;
    layer_norm_backward_row(
        x.ptr<T>() + row * cols, dx.ptr<T>() + row * cols, cols, eps,
        [&](std::int64_t j) { return static_cast<double>(gr[j]); }, mean, rstd);
  });
}

void layer_norm_affine_backward(const kernels::RowLayout& layout, const StridedView& dx, const StridedView& dweight,
                                const StridedView& dbias, const StridedView& g, const StridedView& x,
                                const StridedView& weight, double eps) {
  const std::int64_t cols = layout.cols;
  std::vector<double> sum_g_xhat_columns(static_cast<std::size_t>(cols), 0.0);
  std::vector<double> sum_g_columns(static_cast<std::size_t>(cols), 0.0);
  for_each_row(layout, [&]<typename T>(std::int64_t row) {
    const T* gr = g.ptr<T>() + row * cols;
    const T* xr = x.ptr<T>() + row * cols;
    const T* w = weight.ptr<T>();
    double mean = 0.0;
    double rstd = 0.0;
    // The gradient reaching the normalized rows is g * weight.
    layer_norm_backward_row(
        xr, dx.ptr<T>() + row * cols, cols, eps,
        [&](std::int64_t j) { return static_cast<double>(gr[j]) * static_cast<double>(w[j]); }, mean, rstd);
    for (std::int64_t j = 0; j < cols; ++j) {
      const auto column = static_cast<std::size_t>(j);
      sum_g_xhat_columns[column] += static_cast<double>(gr[j]) * ((static_cast<double>(xr[j]) - mean) * rstd);
      sum_g_columns[column] += gr[j];
    }
  });
  dispatch_floating(layout.dtype, "layer_norm_affine_backward", [&]<typename T>() {
    for (std::int64_t j = 0; j < cols; ++j) {
      dweight.ptr<T>()[j] = static_cast<T>(sum_g_xhat_columns[j]);
      dbias.ptr<T>()[j] = static_cast<T>(sum_g_columns[j]);
    }
  });
}

}  // namespace needle::ref
