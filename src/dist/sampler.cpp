#include "needle/dist/sampler.h"

#include <numeric>
#include <random>

#include "needle/core/error.h"
#include "needle/dist/process_group.h"

namespace needle::dist {

DistributedSampler::DistributedSampler(std::int64_t dataset_size, int num_replicas, int rank, bool shuffle,
                                       std::uint64_t seed, bool drop_last)
    : dataset_size_(dataset_size),
      num_replicas_(num_replicas < 0 ? world().size() : num_replicas),
      rank_(rank < 0 ? world().rank() : rank),
      shuffle_(shuffle),
      seed_(seed),
      drop_last_(drop_last) {
  NEEDLE_CHECK(dataset_size >= 0, ValueError, "DistributedSampler: dataset size must be >= 0, got ", dataset_size);
  NEEDLE_CHECK(num_replicas_ >= 1, ValueError, "DistributedSampler: num_replicas must be >= 1, got ", num_replicas_);
  NEEDLE_CHECK(rank_ >= 0 && rank_ < num_replicas_, IndexError, "DistributedSampler: rank ", rank_, " is not in [0, ",
               num_replicas_, ")");
  const std::int64_t replicas = num_replicas_;
  num_samples_ = drop_last_ ? dataset_size_ / replicas : (dataset_size_ + replicas - 1) / replicas;
}

std::vector<std::int64_t> DistributedSampler::indices() const {
  std::vector<std::int64_t> order(static_cast<std::size_t>(dataset_size_));
  std::iota(order.begin(), order.end(), 0);
  if (shuffle_) {
    // Fisher-Yates with one 64-bit Mersenne Twister seeded alike on every rank.
    std::mt19937_64 engine(seed_ + static_cast<std::uint64_t>(epoch_));
    for (std::size_t i = order.size(); i > 1; --i) {
      const std::size_t j = static_cast<std::size_t>(engine() % i);
      std::swap(order[i - 1], order[j]);
    }
  }
  const auto total = static_cast<std::size_t>(num_samples_ * num_replicas_);
  if (order.size() < total) {
    // Pad by repeating the start (more than once when the dataset is smaller than the number of ranks).
    const std::size_t original = order.size();
    for (std::size_t i = 0; order.size() < total; ++i) order.push_back(order[i % original]);
  }
  order.resize(total);
  std::vector<std::int64_t> mine;
  mine.reserve(static_cast<std::size_t>(num_samples_));
  for (std::size_t i = static_cast<std::size_t>(rank_); i < total; i += static_cast<std::size_t>(num_replicas_)) {
    mine.push_back(order[i]);
  }
  return mine;
}

}  // namespace needle::dist
