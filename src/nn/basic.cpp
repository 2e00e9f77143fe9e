// Basic layers: Linear, Flatten, activations, containers, losses, Dropout and Embedding.
#include <utility>

#include "needle/core/array_ops.h"
#include "needle/nn/init.h"
#include "needle/nn/layers.h"
#include "needle/ops/ops.h"
#include "nn/layer_util.h"

namespace needle::nn {

Tensor detail::as_indices(std::string_view layer, const Tensor& indices) {
  NEEDLE_CHECK(indices.dtype() != DType::Bool, TypeError, layer, ": indices must be integers, got dtype bool (shape ",
               shape_str(indices.shape()), ")");
  if (!is_floating(indices.dtype())) return indices;
  const NDArray ints = indices.value().astype(DType::Int64);
  const auto fractional =
      needle::sum(needle::ne(ints.astype(indices.dtype()), indices.value())).item().to<std::int64_t>();
  NEEDLE_CHECK(fractional == 0, TypeError, layer, ": indices must be whole numbers, got ", fractional,
               " fractional values in a ", dtype_name(indices.dtype()), " tensor of shape ",
               shape_str(indices.shape()));
  return Tensor(ints);
}

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias, Device device, DType dtype)
    : in_features_(in_features), out_features_(out_features) {
  detail::expect_positive("Linear", "in_features", in_features);
  detail::expect_positive("Linear", "out_features", out_features);
  register_parameter("weight", init::kaiming_uniform(in_features, out_features, std::nullopt, "relu", dtype, device));
  if (bias) {
    // Needle's hw2 draws the bias as a (out, 1) kaiming_uniform (fan_in = out) and stores it as (1, out).
    register_parameter(
        "bias", init::kaiming_uniform(out_features, 1, std::nullopt, "relu", dtype, device).reshape({1, out_features}));
  }
}

Tensor Linear::forward(const Tensor& x) {
  NEEDLE_CHECK(x.ndim() >= 1 && x.shape().back() == in_features_, ValueError,
               "Linear: expected input with last dimension ", in_features_, ", got shape ", shape_str(x.shape()));
  const Tensor weight = this->weight();
  const Tensor bias = this->bias();
  check_device(x, weight.device());
  // Leading dimensions are folded into one batch so a single 2-d matmul computes every row.
  const Tensor rows = x.ndim() == 2 ? x : ops::reshape(x, {x.size() / in_features_, in_features_});
  Tensor y = ops::linear(rows, weight, bias);  // bias (1, out) broadcasts over the rows
  if (x.ndim() == 2) return y;
  Shape out_shape = x.shape();
  out_shape.back() = out_features_;
  return ops::reshape(y, out_shape);
}

Tensor Flatten::forward(const Tensor& x) {
  NEEDLE_CHECK(x.ndim() >= 1, ValueError, "Flatten: expected input with a batch dimension, got shape ",
               shape_str(x.shape()));
  const std::int64_t n = x.shape()[0];
  std::int64_t rest = 1;
  for (std::size_t d = 1; d < x.shape().size(); ++d) rest *= x.shape()[d];
  return ops::reshape(x, {n, rest});
}

Tensor ReLU::forward(const Tensor& x) { return ops::relu(x); }
Tensor Tanh::forward(const Tensor& x) { return ops::tanh(x); }
Tensor Sigmoid::forward(const Tensor& x) { return ops::sigmoid(x); }
Tensor GELU::forward(const Tensor& x) { return ops::gelu(x); }

ModuleList::ModuleList(const std::vector<std::shared_ptr<Module>>& modules) {
  for (const auto& m : modules) append(m);
}

void ModuleList::append(std::shared_ptr<Module> module) { register_module(std::to_string(size()), std::move(module)); }

std::shared_ptr<Module> ModuleList::at(std::int64_t index) const {
  const auto n = static_cast<std::int64_t>(size());
  NEEDLE_CHECK(index >= -n && index < n, IndexError, name(), ": index ", index, " is out of range for ", n, " modules");
  return named_children()[static_cast<std::size_t>(index < 0 ? index + n : index)].second;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& entry : named_children()) y = entry.second->forward(y);
  return y;
}

Residual::Residual(std::shared_ptr<Module> fn) : fn_(register_module("fn", std::move(fn))) {}

Tensor Residual::forward(const Tensor& x) {
  const Tensor y = fn_->forward(x);
  NEEDLE_CHECK(y.shape() == x.shape(), ValueError, "Residual: fn (", fn_->name(), ") maps shape ", shape_str(x.shape()),
               " to ", shape_str(y.shape()), "; fn(x) + x needs the shapes to match");
  return y + x;
}

Tensor SoftmaxLoss::forward(const Tensor& logits, const Tensor& labels) {
  NEEDLE_CHECK(logits.ndim() == 2 && labels.ndim() == 1 && labels.shape()[0] == logits.shape()[0], ValueError,
               "SoftmaxLoss: expected logits (N, C) and labels (N,), got shapes ", shape_str(logits.shape()), " and ",
               shape_str(labels.shape()));
  NEEDLE_CHECK(logits.device() == labels.device(), RuntimeError, "SoftmaxLoss: logits are on device ", logits.device(),
               " but labels are on device ", labels.device());
  return ops::cross_entropy(logits, detail::as_indices("SoftmaxLoss", labels));
}

Tensor MSELoss::forward(const Tensor& prediction, const Tensor& target) {
  NEEDLE_CHECK(prediction.shape() == target.shape(), ValueError,
               "MSELoss: expected prediction and target of the same shape, got ", shape_str(prediction.shape()),
               " and ", shape_str(target.shape()));
  NEEDLE_CHECK(prediction.device() == target.device(), RuntimeError, "MSELoss: prediction is on device ",
               prediction.device(), " but target is on device ", target.device());
  return ops::mse_loss(prediction, target);
}

Dropout::Dropout(double p) { set_p(p); }

void Dropout::set_p(double p) {
  NEEDLE_CHECK(p >= 0.0 && p < 1.0, ValueError, "Dropout: p must lie in [0, 1), got ", p);
  p_ = p;
}

Tensor Dropout::forward(const Tensor& x) { return ops::dropout(x, p_, training()); }

Embedding::Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, Device device, DType dtype)
    : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {
  detail::expect_positive("Embedding", "num_embeddings", num_embeddings);
  detail::expect_positive("Embedding", "embedding_dim", embedding_dim);
  register_parameter("weight", init::normal({num_embeddings, embedding_dim}, 0.0, 1.0, dtype, device));
}

Tensor Embedding::forward(const Tensor& indices) {
  const Tensor weight = this->weight();
  check_device(indices, weight.device());
  return ops::embedding(detail::as_indices("Embedding", indices), weight);
}

}  // namespace needle::nn
