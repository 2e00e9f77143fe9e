// MNIST (and Fashion-MNIST): the IDX files of images and labels, gzipped or not.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "needle/data/dataset.h"

namespace needle::data {

// Sample i is {image (rows, cols, 1) float32 in [0, 1] after the transforms, label int64 0-d}.
// Needle's MNISTDataset gives the same images; its labels are uint8, int64 here so they feed
// cross_entropy directly. Both files are read (and decompressed) at construction and validated: magic
// numbers (0x00000803 images, 0x00000801 labels), equal counts, and sizes that match the header
// exactly. A missing, truncated or malformed file raises ValueError naming it.
class MNISTDataset final : public Dataset {
 public:
  MNISTDataset(const std::string& image_path, const std::string& label_path, Transforms transforms = {});
  [[nodiscard]] std::int64_t size() const override { return labels_.shape()[0]; }
  [[nodiscard]] std::vector<NDArray> get(std::int64_t index) const override;

  // All images (N, rows, cols, 1) float32 and labels (N,) int64, untransformed.
  [[nodiscard]] const NDArray& images() const { return images_; }
  [[nodiscard]] const NDArray& labels() const { return labels_; }

 private:
  NDArray images_;
  NDArray labels_;
};

// The decompressed bytes of a gzip file, or the bytes as they are when it is not gzipped. ValueError
// naming `path` when it cannot be opened or the compressed stream is truncated or corrupt.
std::vector<std::uint8_t> read_maybe_gzipped(const std::string& path);

}  // namespace needle::data
