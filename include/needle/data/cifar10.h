// CIFAR-10 from the "python version" archive (cifar-10-batches-py): data_batch_1..5 and test_batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "needle/data/dataset.h"

namespace needle::data {

// Sample i is {image (3, 32, 32) float32 in [0, 1], label int64 0-d}, as Needle's CIFAR10Dataset gives.
// The batches are pickles; they are read by a restricted reader that understands only what those files
// contain (a dict with b"data", a uint8 numpy array of shape (N, 3072), and b"labels", a list of ints)
// and refuses any other global, so loading a file never runs code. Transforms, which work on (H, W, C)
// images as in Needle, are applied to the image permuted to (32, 32, 3) and the result permuted back.
// A missing or malformed batch raises ValueError naming the file.
class CIFAR10Dataset final : public Dataset {
 public:
  CIFAR10Dataset(const std::string& base_folder, bool train, Transforms transforms = {});
  [[nodiscard]] std::int64_t size() const override { return labels_.shape()[0]; }
  [[nodiscard]] std::vector<NDArray> get(std::int64_t index) const override;

  // All images (N, 3, 32, 32) float32 and labels (N,) int64, untransformed.
  [[nodiscard]] const NDArray& images() const { return images_; }
  [[nodiscard]] const NDArray& labels() const { return labels_; }

 private:
  NDArray images_;
  NDArray labels_;
};

}  // namespace needle::data
