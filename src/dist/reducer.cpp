// GradientReducer: buckets, the gradient-ready hooks that fill and start them, and the end of backward
// that waits for them (see needle/dist/ddp.h).
#include <algorithm>
#include <sstream>
#include <utility>

#include "dist/comm_thread.h"
#include "needle/autograd/engine.h"
#include "needle/core/error.h"
#include "needle/dist/ddp.h"

namespace needle::dist {

double CommStats::hidden_fraction() const {
  if (total_comm_seconds <= 0) return 0;
  return std::clamp(1.0 - total_wait_seconds / total_comm_seconds, 0.0, 1.0);
}

GradientReducer::GradientReducer(ProcessGroup& group, std::vector<std::pair<std::string, Tensor>> named_parameters,
                                 ReducerOptions options)
    : group_(group), params_(std::move(named_parameters)), options_(options) {
  NEEDLE_CHECK(options_.bucket_cap_mb > 0, ValueError, "DistributedDataParallel: bucket_cap_mb must be positive, got ",
               options_.bucket_cap_mb);
  for (const auto& [name, tensor] : params_) {
    NEEDLE_CHECK(tensor.defined() && tensor.is_leaf() && tensor.requires_grad(), ValueError,
                 "DistributedDataParallel: parameter '", name, "' must be a leaf tensor that requires a gradient");
  }
  // Buckets in reverse registration order, a new one when the cap is reached or the dtype or device
  // changes (a bucket is one flat array).
  NEEDLE_CHECK(options_.first_bucket_cap_mb > 0, ValueError,
               "DistributedDataParallel: first_bucket_cap_mb must be positive, got ", options_.first_bucket_cap_mb);
  const auto mib = [](double mb) { return static_cast<std::int64_t>(mb * 1024 * 1024); };
  bucket_of_.resize(params_.size());
  slot_of_.resize(params_.size());
  for (std::size_t k = params_.size(); k-- > 0;) {
    const Tensor& tensor = params_[k].second;
    const auto bytes = tensor.size() * static_cast<std::int64_t>(itemsize(tensor.dtype()));
    // The bucket being filled is the first one: the smaller cap.
    const std::int64_t cap_bytes = mib(
        buckets_.size() == 1 ? std::min(options_.first_bucket_cap_mb, options_.bucket_cap_mb) : options_.bucket_cap_mb);
    const bool fits = !buckets_.empty() && buckets_.back().dtype == tensor.dtype() &&
                      buckets_.back().device == tensor.device() &&
                      buckets_.back().numel * static_cast<std::int64_t>(itemsize(tensor.dtype())) + bytes <= cap_bytes;
    if (!fits) {
      Bucket bucket;
      bucket.dtype = tensor.dtype();
      bucket.device = tensor.device();
      buckets_.push_back(std::move(bucket));
    }
    Bucket& bucket = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = bucket.members.size();
    bucket.members.push_back(k);
    bucket.offsets.push_back(bucket.numel);
    bucket.numel += tensor.size();
  }
  for (const Bucket& bucket : buckets_) {
    stats_.bytes += bucket.numel * static_cast<std::int64_t>(itemsize(bucket.dtype));
  }
  stats_.buckets = static_cast<std::int64_t>(buckets_.size());
  ready_.assign(params_.size(), false);
  for (std::size_t k = 0; k < params_.size(); ++k) {
    hook_ids_.push_back(
        params_[k].second.register_post_accumulate_grad_hook([this, k](const Tensor&) { on_gradient_ready(k); }));
  }
}

GradientReducer::~GradientReducer() {
  for (std::size_t k = 0; k < params_.size(); ++k) params_[k].second.remove_post_accumulate_grad_hook(hook_ids_[k]);
  if (in_step_) {
    try {
      abandon_step();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw; the step is dropped anyway
    }
  }
}

std::vector<std::vector<std::string>> GradientReducer::bucket_names() const {
  std::vector<std::vector<std::string>> names;
  for (const Bucket& bucket : buckets_) {
    auto& list = names.emplace_back();
    for (const std::size_t k : bucket.members) list.push_back(params_[k].first);
  }
  return names;
}

void GradientReducer::start_step() {
  // A backward that failed half-way left buckets in flight: let them finish (every rank started the
  // same ones), then begin anew.
  if (in_step_) abandon_step();
  in_step_ = true;
  std::fill(ready_.begin(), ready_.end(), false);
  next_launch_ = 0;
  for (Bucket& bucket : buckets_) {
    bucket.buffer = NDArray::empty({bucket.numel}, bucket.dtype, bucket.device);
    bucket.pending = bucket.members.size();
    bucket.work.reset();
  }
  timeline_ = {};
  autograd::queue_callback([this] { finish_step(); });
}

void GradientReducer::on_gradient_ready(std::size_t index) {
  if (!sync_) return;
  if (!in_step_) start_step();
  if (ready_[index]) return;
  ready_[index] = true;
  Bucket& bucket = buckets_[bucket_of_[index]];
  const Tensor& param = params_[index].second;
  const std::int64_t offset = bucket.offsets[slot_of_[index]];
  NDArray slot = bucket.buffer.index({IndexItem::range(offset, offset + param.size())});
  slot.assign(param.grad().value().reshape({param.size()}));
  if (--bucket.pending == 0) launch_ready_buckets();
}

void GradientReducer::launch_ready_buckets() {
  // In bucket order only, so that every rank starts the same all-reduces in the same order even if its
  // hooks fired in another order.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    Bucket& bucket = buckets_[next_launch_++];
    bucket.work = group_.all_reduce_async(bucket.buffer, ReduceOp::Average);
  }
}

void GradientReducer::finish_step() {
  timeline_.backward_end = detail::now_seconds();
  std::vector<std::string> unused;
  for (std::size_t k = 0; k < params_.size(); ++k) {
    if (ready_[k]) continue;
    if (!options_.find_unused_parameters) {
      unused.push_back(params_[k].first);
      continue;
    }
    // An unused parameter contributes a zero gradient to its bucket.
    Bucket& bucket = buckets_[bucket_of_[k]];
    const std::int64_t offset = bucket.offsets[slot_of_[k]];
    bucket.buffer.index({IndexItem::range(offset, offset + params_[k].second.size())}).fill(0);
    ready_[k] = true;
    --bucket.pending;
  }
  if (!unused.empty()) {
    abandon_step();
    std::ostringstream names;
    for (std::size_t i = 0; i < unused.size() && i < 10; ++i) names << (i > 0 ? ", " : "") << "'" << unused[i] << "'";
    if (unused.size() > 10) names << ", ... (" << unused.size() << " in all)";
    throw RuntimeError(str("DistributedDataParallel: parameters got no gradient in this backward pass: ", names.str(),
                           ". Every rank must give every parameter a gradient before the ranks can average them; "
                           "if some parameters are unused in some steps, wrap with find_unused_parameters=True"));
  }
  launch_ready_buckets();
  const double wait_start = detail::now_seconds();
  for (Bucket& bucket : buckets_) bucket.work->wait();
  const double wait_end = detail::now_seconds();
  double first_start = wait_end;
  double last_end = 0;
  for (Bucket& bucket : buckets_) {
    const WorkTiming timing = bucket.work->timing();
    timeline_.buckets.push_back(timing);
    first_start = std::min(first_start, timing.started_at);
    last_end = std::max(last_end, timing.finished_at);
    bucket.work.reset();
  }
  // Each parameter's gradient becomes its averaged slot of the bucket (a view: no copy).
  for (std::size_t k = 0; k < params_.size(); ++k) {
    const Bucket& bucket = buckets_[bucket_of_[k]];
    Tensor param = params_[k].second;  // a handle: sets the parameter's gradient
    const std::int64_t offset = bucket.offsets[slot_of_[k]];
    param.set_grad(
        Tensor(bucket.buffer.index({IndexItem::range(offset, offset + param.size())}).reshape(param.shape())));
  }
  for (Bucket& bucket : buckets_) bucket.buffer = NDArray();
  in_step_ = false;
  stats_.steps += 1;
  stats_.last_comm_seconds = std::max(0.0, last_end - first_start);
  stats_.last_wait_seconds = wait_end - wait_start;
  stats_.total_comm_seconds += stats_.last_comm_seconds;
  stats_.total_wait_seconds += stats_.last_wait_seconds;
}

void GradientReducer::abandon_step() {
  in_step_ = false;
  for (Bucket& bucket : buckets_) {
    if (bucket.work != nullptr) bucket.work->wait();
    bucket.work.reset();
    bucket.buffer = NDArray();
  }
}

}  // namespace needle::dist
