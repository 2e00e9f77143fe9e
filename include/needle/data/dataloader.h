// DataLoader: batches of a Dataset, optionally shuffled, optionally prepared on background threads.
//
// Each batch is one array per sample field, the samples' arrays stacked along a new first axis
// (Needle's DataLoader stacks the same way). Every sample appears exactly once per epoch; with
// `shuffle` the order of each epoch is a fresh permutation drawn from the loader's seed, so a loader
// built with the same seed repeats the same sequence of epochs.
//
// With num_workers > 0, worker threads build batches ahead of the consumer (at most 2 * num_workers
// batches in flight) and the consumer receives them in order, so the batches are identical to those of
// num_workers = 0. An exception thrown while building a batch is re-thrown by next() when that batch's
// turn comes, and ends the epoch. Destroying an epoch early stops and joins its workers. The workers only
// build NDArrays; they never touch autograd.
#pragma once

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include "needle/core/ndarray.h"
#include "needle/data/dataset.h"

namespace needle::data {

using Batch = std::vector<NDArray>;

struct EpochState;

// One pass over the data; obtained from DataLoader::epoch().
class Epoch {
 public:
  explicit Epoch(std::unique_ptr<EpochState> state);
  ~Epoch();
  Epoch(Epoch&&) noexcept;
  Epoch& operator=(Epoch&&) noexcept;
  Epoch(const Epoch&) = delete;
  Epoch& operator=(const Epoch&) = delete;

  // The next batch, or nothing when the epoch is over.
  std::optional<Batch> next();
  // The sample indices of this epoch, in the order they are batched.
  [[nodiscard]] const std::vector<std::int64_t>& order() const;

 private:
  std::unique_ptr<EpochState> state_;
};

class DataLoader {
 public:
  // `seed` fixes the shuffles; without one it is drawn from the default generator (manual_seed makes it
  // repeatable). ValueError unless batch_size >= 1 and num_workers >= 0.
  explicit DataLoader(std::shared_ptr<const Dataset> dataset, std::int64_t batch_size = 1, bool shuffle = false,
                      bool drop_last = false, std::int64_t num_workers = 0,
                      std::optional<std::uint64_t> seed = std::nullopt);

  // Starts the next epoch (a new permutation when shuffling).
  [[nodiscard]] Epoch epoch();
  // Starts an epoch over the samples `order` names, in that order (batches of batch_size, the last one
  // shorter or dropped by drop_last), whatever `shuffle` says: how a caller that draws its own
  // permutation (Python's NumPy-seeded shuffling) keeps the batches on the worker threads. IndexError
  // for an index outside the dataset.
  [[nodiscard]] Epoch epoch(std::vector<std::int64_t> order);
  // Batches per epoch.
  [[nodiscard]] std::int64_t size() const;
  [[nodiscard]] const std::shared_ptr<const Dataset>& dataset() const { return dataset_; }
  [[nodiscard]] std::int64_t batch_size() const { return batch_size_; }
  [[nodiscard]] std::int64_t num_workers() const { return num_workers_; }

  // Range-for support: `for (const Batch& batch : loader)` runs one epoch.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = const Batch*;
    using reference = const Batch&;

    Iterator() = default;  // the end
    explicit Iterator(std::shared_ptr<Epoch> epoch);
    reference operator*() const { return *current_; }
    pointer operator->() const { return &*current_; }
    Iterator& operator++();
    void operator++(int) { ++*this; }
    friend bool operator==(const Iterator& a, const Iterator& b) { return a.done() == b.done(); }

   private:
    [[nodiscard]] bool done() const { return !current_.has_value(); }
    std::shared_ptr<Epoch> epoch_;
    std::optional<Batch> current_;
  };
  [[nodiscard]] Iterator begin();
  [[nodiscard]] static Iterator end() { return {}; }

 private:
  std::shared_ptr<const Dataset> dataset_;
  std::int64_t batch_size_;
  bool shuffle_;
  bool drop_last_;
  std::int64_t num_workers_;
  std::uint64_t seed_;
  std::uint64_t epochs_started_ = 0;
  [[nodiscard]] std::int64_t batches_for(std::int64_t samples) const;
  [[nodiscard]] Epoch start(std::vector<std::int64_t> order) const;
};

}  // namespace needle::data
