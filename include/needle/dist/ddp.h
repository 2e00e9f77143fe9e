// Data parallelism: every rank holds the whole model, computes gradients on its own part of the batch,
// and the gradients are averaged over the ranks before the optimizer step, so the ranks' parameters stay
// identical.
//
// GradientReducer does the averaging, overlapped with backward: parameters are grouped into buckets of
// about `bucket_cap_mb` in reverse registration order (roughly the order backward produces their
// gradients; the first bucket at most `first_bucket_cap_mb`); a post-accumulate-grad hook on each parameter copies its
// gradient into its bucket, and the moment a bucket is full its all-reduce starts on the group's communication thread
// while backward goes on. At the end of backward (autograd::queue_callback) the reducer waits for the buckets and gives
// each parameter its averaged gradient, a view into its bucket. Buckets start in the same order on every rank, as MPI
// requires.
//
// DistributedDataParallel wraps a module with a reducer; Python's needle.distributed wraps Python modules
// with the same reducer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "needle/autograd/tensor.h"
#include "needle/dist/process_group.h"
#include "needle/nn/module.h"

namespace needle::dist {

struct ReducerOptions {
  double bucket_cap_mb = 25;
  // Parameters that get no gradient in a backward pass are an error (their bucket would never be full)
  // unless this is set: they then count as zero gradients.
  bool find_unused_parameters = false;
  // The first bucket (the last layers' gradients, ready first) is kept small so that communication starts
  // early in backward even for a model that fits one bucket (PyTorch does the same).
  double first_bucket_cap_mb = 1;
};

// Where the time of the last and of all backward passes went (seconds).
struct CommStats {
  std::int64_t steps = 0;        // backward passes reduced
  std::int64_t buckets = 0;      // buckets per step
  std::int64_t bytes = 0;        // gradient bytes all-reduced per step
  double last_comm_seconds = 0;  // last step: from the first bucket's start to the last one's end
  double last_wait_seconds = 0;  // last step: time backward's end waited for the buckets (not hidden)
  double total_comm_seconds = 0;
  double total_wait_seconds = 0;
  // 1 - wait / comm over all steps: the fraction of all-reduce time hidden behind backward.
  [[nodiscard]] double hidden_fraction() const;
};

class GradientReducer {
 public:
  // Hooks every parameter. Parameters must be leaves that require a gradient, on one device.
  GradientReducer(ProcessGroup& group, std::vector<std::pair<std::string, Tensor>> named_parameters,
                  ReducerOptions options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // While false (no_sync), backward only accumulates local gradients; the next synchronized backward
  // averages everything accumulated.
  void set_sync(bool sync) { sync_ = sync; }
  [[nodiscard]] bool sync() const { return sync_; }

  // The parameter names of each bucket, in launch order.
  [[nodiscard]] std::vector<std::vector<std::string>> bucket_names() const;
  [[nodiscard]] CommStats stats() const { return stats_; }
  // When each bucket's all-reduce of the last step was started, finished, and when backward's walk of
  // the graph ended (seconds on a steady clock): how tests see the overlap.
  struct StepTimeline {
    std::vector<WorkTiming> buckets;
    double backward_end = 0;
  };
  [[nodiscard]] const StepTimeline& last_timeline() const { return timeline_; }

 private:
  struct Bucket {
    std::vector<std::size_t> members;   // indices into params_
    std::vector<std::int64_t> offsets;  // element offset of each member in the flat buffer
    std::int64_t numel = 0;
    DType dtype = DType::Float32;
    Device device;
    NDArray buffer;  // this step's flat gradients
    std::size_t pending = 0;
    std::shared_ptr<Work> work;
  };

  void on_gradient_ready(std::size_t index);
  void start_step();
  void launch_ready_buckets();
  void finish_step();
  void abandon_step();

  ProcessGroup& group_;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::uint64_t> hook_ids_;
  std::vector<std::size_t> bucket_of_;  // param index -> bucket
  std::vector<std::size_t> slot_of_;    // param index -> position in its bucket
  std::vector<Bucket> buckets_;
  ReducerOptions options_;
  bool sync_ = true;
  bool in_step_ = false;
  std::vector<bool> ready_;
  std::size_t next_launch_ = 0;
  CommStats stats_;
  StepTimeline timeline_;
};

// Checks that every rank has the same (name, dtype, shape) list, then broadcasts rank 0's values into
// every rank's tensors: what wrapping a model does, so ranks start identical whatever their seeds.
// RuntimeError naming the first difference (the same on every rank) otherwise.
void broadcast_from_rank0(ProcessGroup& group, const std::vector<std::pair<std::string, Tensor>>& named_tensors,
                          const std::string& what);

class DistributedDataParallel : public nn::Module {
 public:
  // Broadcasts rank 0's parameters and buffers into `module` and hooks its parameters.
  explicit DistributedDataParallel(std::shared_ptr<nn::Module> module, ReducerOptions options = {},
                                   ProcessGroup* group = nullptr);
  Tensor forward(const Tensor& input) override { return module_->forward(input); }
  [[nodiscard]] std::string name() const override { return "DistributedDataParallel"; }
  [[nodiscard]] const std::shared_ptr<nn::Module>& module() const { return module_; }
  [[nodiscard]] GradientReducer& reducer() { return *reducer_; }
  [[nodiscard]] const GradientReducer& reducer() const { return *reducer_; }
  [[nodiscard]] ProcessGroup& group() { return group_; }

  // Gradient accumulation: backward passes inside the guard's lifetime are not synchronized.
  class NoSync {
   public:
    explicit NoSync(GradientReducer& reducer) : reducer_(reducer) { reducer_.set_sync(false); }
    ~NoSync() { reducer_.set_sync(true); }
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    GradientReducer& reducer_;
  };
  [[nodiscard]] NoSync no_sync() { return NoSync(*reducer_); }

 private:
  std::shared_ptr<nn::Module> module_;
  ProcessGroup& group_;
  std::unique_ptr<GradientReducer> reducer_;
};

}  // namespace needle::dist
