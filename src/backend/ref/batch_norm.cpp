// Batch normalization as plain loops over each channel's N runs of S values, every sum and statistic
// accumulated in double: the reading of the formulas in kernels.def that the faster backends are tested
// against.
#include <cmath>
#include <cstdint>

#include "backend/ref/ref_kernels.h"

namespace needle::ref {

namespace {

// Runs fn.template operator()<T>(c) for every channel c, T the operands' element type.
template <typename Fn>
void for_each_channel(const kernels::ChannelLayout& layout, Fn&& fn) {
  dispatch_floating(layout.dtype, "batch_norm", [&]<typename T>() {
    for (std::int64_t c = 0; c < layout.channels; ++c) fn.template operator()<T>(c);
  });
}

}  // namespace

void batch_norm(const kernels::ChannelLayout& layout, const StridedView& y, const StridedView& mean,
                const StridedView& var, const StridedView& x, const StridedView& weight, const StridedView& bias,
                double eps) {
  const std::int64_t channels = layout.channels;
  const std::int64_t spatial = layout.spatial;
  const auto count = static_cast<double>(layout.per_channel());
  for_each_channel(layout, [&]<typename T>(std::int64_t c) {
    // Element (n, c, s) sits at (n * C + c) * S + s.
    const auto at = [&](std::int64_t n, std::int64_t s) { return (n * channels + c) * spatial + s; };
    const T* in = x.ptr<T>();
    double sum = 0.0;
    for (std::int64_t n = 0; n < layout.batch; ++n) {
      for (std::int64_t s = 0; s < spatial; ++s) sum += in[at(n, s)];
    }
    const double m = sum / count;
    double squares = 0.0;
    for (std::int64_t n = 0; n < layout.batch; ++n) {
      for (std::int64_t s = 0; s < spatial; ++s) {
        const double centered = static_cast<double>(in[at(n, s)]) - m;
        squares += centered * centered;
      }
    }
    const double v = squares / count;
    mean.ptr<T>()[c] = static_cast<T>(m);
    var.ptr<T>()[c] = static_cast<T>(v);
    const double invstd = 1.0 / std::sqrt(v + eps);
    const double w = weight.ptr<T>()[c];
    const double b = bias.ptr<T>()[c];
    for (std::int64_t n = 0; n < layout.batch; ++n) {
      for (std::int64_t s = 0; s < spatial; ++s) {
        y.ptr<T>()[at(n, s)] = static_cast<T>((static_cast<double>(in[at(n, s)]) - m) * invstd * w + b);
      }
    }
  });
}

void batch_norm_backward(const kernels::ChannelLayout& layout, const StridedView& dx, const StridedView& dweight,
                         const StridedView& dbias, const StridedView& g, const StridedView& x, const StridedView& mean,
                         const StridedView& var, const StridedView& weight, double eps) {
  const std::int64_t channels = layout.channels;
  const std::int64_t spatial = layout.spatial;
  const auto count = static_cast<double>(layout.per_channel());
  for_each_channel(layout, [&]<typename T>(std::int64_t c) {
    const auto at = [&](std::int64_t n, std::int64_t s) { return (n * channels + c) * spatial + s; };
    const T* gr = g.ptr<T>();
    const T* xr = x.ptr<T>();
    const double m = mean.ptr<T>()[c];
    const double invstd = 1.0 / std::sqrt(static_cast<double>(var.ptr<T>()[c]) + eps);
    double sum_g = 0.0;
    double sum_g_xhat = 0.0;
    for (std::int64_t n = 0; n < layout.batch; ++n) {
      for (std::int64_t s = 0; s < spatial; ++s) {
        const double xhat = (static_cast<double>(xr[at(n, s)]) - m) * invstd;
        sum_g += gr[at(n, s)];
        sum_g_xhat += static_cast<double>(gr[at(n, s)]) * xhat;
      }
    }
    dbias.ptr<T>()[c] = static_cast<T>(sum_g);
    dweight.ptr<T>()[c] = static_cast<T>(sum_g_xhat);
    const double scale = static_cast<double>(weight.ptr<T>()[c]) * invstd;
    for (std::int64_t n = 0; n < layout.batch; ++n) {
      for (std::int64_t s = 0; s < spatial; ++s) {
        const double xhat = (static_cast<double>(xr[at(n, s)]) - m) * invstd;
        dx.ptr<T>()[at(n, s)] =
            static_cast<T>(scale * (static_cast<double>(gr[at(n, s)]) - sum_g / count - xhat * (sum_g_xhat / count)));
      }
    }
  });
}

}  // namespace needle::ref
