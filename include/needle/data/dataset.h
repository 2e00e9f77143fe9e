// Datasets: indexable collections of samples, each sample a list of arrays (image, label, ...).
//
// Datasets hold NDArrays only, never Tensors, so the DataLoader's worker threads can read them without
// touching autograd. get() must be safe to call from several threads at once: the datasets here only
// read their arrays, and the random transforms draw from a mutex-guarded Generator.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "needle/core/ndarray.h"
#include "needle/data/transforms.h"

namespace needle::data {

using Transforms = std::vector<std::shared_ptr<const Transform>>;

class Dataset {
 public:
  explicit Dataset(Transforms transforms = {}) : transforms_(std::move(transforms)) {}
  virtual ~Dataset() = default;
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;
  Dataset(Dataset&&) = delete;
  Dataset& operator=(Dataset&&) = delete;

  [[nodiscard]] virtual std::int64_t size() const = 0;
  // Sample `index` (negative counts from the end, as in Python); IndexError when out of range.
  [[nodiscard]] virtual std::vector<NDArray> get(std::int64_t index) const = 0;
  // Runs the dataset's transforms in order on one (H, W, C) image (Needle's apply_transforms).
  [[nodiscard]] NDArray apply_transforms(NDArray image) const;
  [[nodiscard]] const Transforms& transforms() const { return transforms_; }

 protected:
  // `index` mapped into [0, size()); IndexError naming `dataset` when out of range.
  [[nodiscard]] std::int64_t checked_index(std::int64_t index, const char* dataset) const;

 private:
  Transforms transforms_;
};

// Samples are the rows of the given arrays: sample i is {arrays[0][i], arrays[1][i], ...} (views).
// Needle's NDArrayDataset; no transforms.
class NDArrayDataset final : public Dataset {
 public:
  // ValueError when no array is given, an array is 0-d, or the first dimensions differ.
  explicit NDArrayDataset(std::vector<NDArray> arrays);
  [[nodiscard]] std::int64_t size() const override;
  [[nodiscard]] std::vector<NDArray> get(std::int64_t index) const override;

 private:
  std::vector<NDArray> arrays_;
};

}  // namespace needle::data
