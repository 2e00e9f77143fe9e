#include "ops/op_helpers.h"

namespace needle::ops::detail {

void check_same_device(std::string_view op, const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) {
    NEEDLE_CHECK(t.device() == tensors.front().device(), RuntimeError, op,
                 ": expected all tensors on the same device, got ", tensors.front().device(), " and ", t.device());
  }
}

void check_floating(std::string_view op, const Tensor& t) {
  NEEDLE_CHECK(is_floating(t.dtype()), TypeError, op, ": expected a floating-point tensor, got dtype ",
               dtype_name(t.dtype()), " (shape ", shape_str(t.shape()), ")");
}

}  // namespace needle::ops::detail
