// Convolution (Needle's Conv over NCHW, computed in NHWC by ops::conv) and the pooling layers.
#include <cmath>

#include "needle/nn/init.h"
#include "needle/nn/layers.h"
#include "needle/ops/ops.h"
#include "nn/layer_util.h"

namespace needle::nn {

Conv::Conv(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size, std::int64_t stride,
           bool bias, Device device, DType dtype, std::optional<std::int64_t> padding)
    : in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      stride_(stride),
      padding_(padding.value_or(kernel_size / 2)) {
  const std::string layer = "Conv";  // name() is not yet Conv2d's while this constructor runs
  detail::expect_positive(layer, "in_channels", in_channels);
  detail::expect_positive(layer, "out_channels", out_channels);
  detail::expect_positive(layer, "kernel_size", kernel_size);
  detail::expect_positive(layer, "stride", stride);
  NEEDLE_CHECK(padding_ >= 0, ValueError, layer, ": padding must be >= 0, got ", padding_);
  const std::int64_t k2 = kernel_size * kernel_size;
  register_parameter("weight", init::kaiming_uniform(in_channels * k2, out_channels * k2,
                                                     Shape{kernel_size, kernel_size, in_channels, out_channels}, "relu",
                                                     dtype, device));
  if (bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_channels * k2));
    register_parameter("bias", init::uniform({out_channels}, -bound, bound, dtype, device));
  }
}

Tensor Conv::forward(const Tensor& x) {
  const std::string layer = name();
  detail::expect_ndim(layer, x, 4, "(N, C, H, W)");
  detail::expect_dim(layer, x, 1, in_channels_, "channels (dimension 1)");
  const Tensor weight = this->weight();
  const Tensor bias = this->bias();
  check_device(x, weight.device());
  NEEDLE_CHECK(x.shape()[2] + 2 * padding_ >= kernel_size_ && x.shape()[3] + 2 * padding_ >= kernel_size_, ValueError,
               layer, ": kernel_size ", kernel_size_, " exceeds the padded input (padding ", padding_, ", shape ",
               shape_str(x.shape()), ")");
  // ops::conv works in NHWC (Needle's layout); the layer keeps PyTorch's NCHW on both sides.
  Tensor y = ops::conv(ops::permute(x, {0, 2, 3, 1}), weight, stride_, padding_);
  if (bias.defined()) y = y + ops::reshape(bias, {1, 1, 1, out_channels_});
  return ops::permute(y, {0, 3, 1, 2});
}

MaxPool2d::MaxPool2d(std::int64_t kernel_size, std::optional<std::int64_t> stride, std::int64_t padding)
    : kernel_size_(kernel_size), stride_(stride.value_or(kernel_size)), padding_(padding) {
  detail::expect_positive("MaxPool2d", "kernel_size", kernel_size);
  detail::expect_positive("MaxPool2d", "stride", stride_);
}

Tensor MaxPool2d::forward(const Tensor& x) {
  detail::expect_ndim("MaxPool2d", x, 4, "(N, C, H, W)");
  return ops::max_pool2d(x, kernel_size_, stride_, padding_);
}

AvgPool2d::AvgPool2d(std::int64_t kernel_size, std::optional<std::int64_t> stride, std::int64_t padding)
    : kernel_size_(kernel_size), stride_(stride.value_or(kernel_size)), padding_(padding) {
  detail::expect_positive("AvgPool2d", "kernel_size", kernel_size);
  detail::expect_positive("AvgPool2d", "stride", stride_);
}

Tensor AvgPool2d::forward(const Tensor& x) {
  detail::expect_ndim("AvgPool2d", x, 4, "(N, C, H, W)");
  return ops::avg_pool2d(x, kernel_size_, stride_, padding_);
}

}  // namespace needle::nn
