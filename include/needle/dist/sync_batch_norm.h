// Cross-rank pieces of a model: an all-reduce that autograd differentiates, and SyncBatchNorm, which
// normalizes with the statistics of the whole global batch instead of each rank's share.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "needle/autograd/tensor.h"
#include "needle/dist/process_group.h"
#include "needle/nn/module.h"

namespace needle::dist {

// The sum of `x` over the ranks, recorded in the graph. Its gradient is again the sum over the ranks of
// the gradient (every rank's output depends on every rank's input).
Tensor all_reduce_sum(const Tensor& x, ProcessGroup& group);

// BatchNorm over (N, C) or (N, C, ...) whose training statistics are the whole global batch's: per
// channel, the mean and the (biased) variance over every rank's N (and spatial) entries, from two
// all-reduces. With one rank it computes what BatchNorm1d/2d compute. Parameters and buffers have
// BatchNorm's names (weight, bias, running_mean, running_var) and semantics (running_var averages the
// biased batch variance, as Needle's BatchNorm does), so a BatchNorm's state loads into it.
class SyncBatchNorm final : public nn::Module {
 public:
  explicit SyncBatchNorm(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                         Device device = default_device(), DType dtype = kDefaultFloat, ProcessGroup* group = nullptr);
  Tensor forward(const Tensor& x) override;
  [[nodiscard]] std::string name() const override { return "SyncBatchNorm"; }
  [[nodiscard]] std::int64_t num_features() const { return num_features_; }
  [[nodiscard]] double eps() const { return eps_; }
  [[nodiscard]] double momentum() const { return momentum_; }

 private:
  std::int64_t num_features_;
  double eps_;
  double momentum_;
  ProcessGroup* group_;  // null: world(), looked up at forward
};

}  // namespace needle::dist
