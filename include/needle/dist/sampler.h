// DistributedSampler: which examples of a dataset each rank reads in an epoch. The ranks' shards are
// disjoint and together cover the dataset; as in PyTorch, without drop_last the index list is padded by
// repeating its start so every rank gets the same number of examples (and so the same number of steps),
// with drop_last it is cut to a multiple of the number of ranks. With shuffle, every rank draws the same
// permutation from seed + epoch, so set_epoch() before each epoch gives a new order that the ranks agree on.
#pragma once

#include <cstdint>
#include <vector>

namespace needle::dist {

class DistributedSampler {
 public:
  // num_replicas and rank default (negative) to the world group's.
  explicit DistributedSampler(std::int64_t dataset_size, int num_replicas = -1, int rank = -1, bool shuffle = true,
                              std::uint64_t seed = 0, bool drop_last = false);
  void set_epoch(std::int64_t epoch) { epoch_ = epoch; }
  [[nodiscard]] std::int64_t epoch() const { return epoch_; }
  // This rank's indices for the current epoch.
  [[nodiscard]] std::vector<std::int64_t> indices() const;
  // How many indices each rank gets per epoch.
  [[nodiscard]] std::int64_t size() const { return num_samples_; }
  [[nodiscard]] int num_replicas() const { return num_replicas_; }
  [[nodiscard]] int rank() const { return rank_; }

 private:
  std::int64_t dataset_size_;
  int num_replicas_;
  int rank_;
  bool shuffle_;
  std::uint64_t seed_;
  bool drop_last_;
  std::int64_t epoch_ = 0;
  std::int64_t num_samples_ = 0;
};

}  // namespace needle::dist
