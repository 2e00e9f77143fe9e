// The DataLoader's epochs: the batch order, and the worker threads that prefetch batches in order.
#include "needle/data/dataloader.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>
#include <utility>

#include "needle/core/array_ops.h"
#include "needle/core/random.h"

namespace needle::data {

struct EpochState {
  std::shared_ptr<const Dataset> dataset;
  std::vector<std::int64_t> order;
  std::int64_t batch_size = 1;
  std::int64_t num_batches = 0;
  std::int64_t capacity = 0;  // batches claimed but not yet delivered, at most

  // The consumer's own state (next() runs on one thread at a time).
  std::int64_t next_to_deliver = 0;
  bool finished = false;  // set once an error was re-thrown: the epoch ends there

  // Shared with the workers, under `mutex`.
  std::mutex mutex;
  std::condition_variable work_available;  // workers wait for room in the window or for stop
  std::condition_variable batch_ready;     // the consumer waits for its next batch
  std::int64_t next_to_claim = 0;
  std::int64_t delivered = 0;
  bool stop = false;
  struct Result {
    Batch batch;
    std::exception_ptr error;
  };
  std::map<std::int64_t, Result> ready;
  std::vector<std::thread> workers;

  // Builds batch `b`: the samples' arrays stacked field by field.
  [[nodiscard]] Batch build(std::int64_t b) const {
    const std::int64_t begin = b * batch_size;
    const std::int64_t end = std::min<std::int64_t>(begin + batch_size, static_cast<std::int64_t>(order.size()));
    std::vector<std::vector<NDArray>> fields;
    for (std::int64_t k = begin; k < end; ++k) {
      std::vector<NDArray> sample = dataset->get(order[static_cast<std::size_t>(k)]);
      if (fields.empty()) fields.resize(sample.size());
      NEEDLE_CHECK(sample.size() == fields.size(), ValueError, "DataLoader: sample ",
                   order[static_cast<std::size_t>(k)], " has ", sample.size(), " arrays but sample ",
                   order[static_cast<std::size_t>(begin)], " has ", fields.size());
      for (std::size_t f = 0; f < sample.size(); ++f) fields[f].push_back(std::move(sample[f]));
    }
    Batch batch;
    batch.reserve(fields.size());
    for (const std::vector<NDArray>& field : fields) batch.push_back(needle::stack(field, 0));
    return batch;
  }

  void work() {
    while (true) {
      std::int64_t b = 0;
      {
        std::unique_lock<std::mutex> lock(mutex);
        // Claim only within the prefetch window, so a slow consumer bounds the memory in flight.
        work_available.wait(
            lock, [&] { return stop || next_to_claim >= num_batches || next_to_claim < delivered + capacity; });
        if (stop || next_to_claim >= num_batches) return;
        b = next_to_claim++;
      }
      Result result;
      try {
        result.batch = build(b);
      } catch (...) {
        result.error = std::current_exception();
      }
      {
        const std::lock_guard<std::mutex> lock(mutex);
        ready.emplace(b, std::move(result));
      }
      batch_ready.notify_all();
    }
  }

  void start(std::int64_t num_workers) {
    try {
      for (std::int64_t w = 0; w < num_workers; ++w) workers.emplace_back([this] { work(); });
    } catch (...) {
      shutdown();  // thread creation failed: join those already running before reporting it
      throw;
    }
  }

  void shutdown() {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    work_available.notify_all();
    for (std::thread& t : workers) {
      if (t.joinable()) t.join();
    }
    workers.clear();
  }

  std::optional<Batch> next() {
    if (finished || next_to_deliver >= num_batches) return std::nullopt;
    const std::int64_t b = next_to_deliver++;
    if (workers.empty()) {
      try {
        return build(b);
      } catch (...) {
        finished = true;
        throw;
      }
    }
    Result result;
    {
      std::unique_lock<std::mutex> lock(mutex);
      batch_ready.wait(lock, [&] { return ready.count(b) != 0; });
      auto found = ready.find(b);
      result = std::move(found->second);
      ready.erase(found);
      delivered = b + 1;
    }
    work_available.notify_all();
    if (result.error) {
      finished = true;
      shutdown();
      std::rethrow_exception(result.error);
    }
    return std::move(result.batch);
  }

  EpochState() = default;
  EpochState(const EpochState&) = delete;
  EpochState& operator=(const EpochState&) = delete;
  EpochState(EpochState&&) = delete;
  EpochState& operator=(EpochState&&) = delete;
  ~EpochState() { shutdown(); }
};

Epoch::Epoch(std::unique_ptr<EpochState> state) : state_(std::move(state)) {}
Epoch::~Epoch() = default;
Epoch::Epoch(Epoch&&) noexcept = default;
Epoch& Epoch::operator=(Epoch&&) noexcept = default;

std::optional<Batch> Epoch::next() { return state_ ? state_->next() : std::nullopt; }

const std::vector<std::int64_t>& Epoch::order() const {
  NEEDLE_CHECK(state_ != nullptr, RuntimeError, "Epoch: used after being moved from");
  return state_->order;
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, std::int64_t batch_size, bool shuffle, bool drop_last,
                       std::int64_t num_workers, std::optional<std::uint64_t> seed)
    : dataset_(std::move(dataset)),
      batch_size_(batch_size),
      shuffle_(shuffle),
      drop_last_(drop_last),
      num_workers_(num_workers),
      seed_(0) {
  NEEDLE_CHECK(dataset_ != nullptr, ValueError, "DataLoader: the dataset is null");
  NEEDLE_CHECK(batch_size >= 1, ValueError, "DataLoader: batch_size must be >= 1, got ", batch_size);
  NEEDLE_CHECK(num_workers >= 0, ValueError, "DataLoader: num_workers must be >= 0, got ", num_workers);
  if (seed) {
    seed_ = *seed;
  } else {
    const Generator::State state = default_generator().advance(1);
    seed_ = random_bits::bits(state.seed, state.offset);
  }
}

std::int64_t DataLoader::batches_for(std::int64_t samples) const {
  return drop_last_ ? samples / batch_size_ : (samples + batch_size_ - 1) / batch_size_;
}

std::int64_t DataLoader::size() const { return batches_for(dataset_->size()); }

Epoch DataLoader::epoch() {
  const std::int64_t n = dataset_->size();
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (shuffle_) {
    // Fisher-Yates with counter-based draws: epoch e uses its own stream of the loader's seed, so
    // epochs differ from each other yet repeat exactly for the same seed.
    const std::uint64_t stream = random_bits::mix64(seed_ ^ random_bits::mix64(epochs_started_));
    for (std::int64_t i = n - 1; i > 0; --i) {
      const double u = random_bits::uniform01(stream, static_cast<std::uint64_t>(i));
      const auto j = std::min(i, static_cast<std::int64_t>(u * static_cast<double>(i + 1)));  // rounding guard
      std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    }
  }
  ++epochs_started_;
  return start(std::move(order));
}

Epoch DataLoader::epoch(std::vector<std::int64_t> order) {
  const std::int64_t n = dataset_->size();
  for (const std::int64_t index : order) {
    NEEDLE_CHECK(index >= 0 && index < n, IndexError, "DataLoader: sample index ", index,
                 " is out of range for a dataset of ", n, " samples");
  }
  ++epochs_started_;
  return start(std::move(order));
}

Epoch DataLoader::start(std::vector<std::int64_t> order) const {
  auto state = std::make_unique<EpochState>();
  state->dataset = dataset_;
  state->batch_size = batch_size_;
  state->num_batches = batches_for(static_cast<std::int64_t>(order.size()));
  state->order = std::move(order);
  state->capacity = 2 * num_workers_;
  if (num_workers_ > 0 && state->num_batches > 0) state->start(num_workers_);
  return Epoch(std::move(state));
}

DataLoader::Iterator::Iterator(std::shared_ptr<Epoch> epoch) : epoch_(std::move(epoch)) { current_ = epoch_->next(); }

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  current_ = epoch_->next();
  if (!current_) epoch_.reset();  // the epoch is over: release its state (and threads) now
  return *this;
}

DataLoader::Iterator DataLoader::begin() { return Iterator(std::make_shared<Epoch>(epoch())); }

}  // namespace needle::data
