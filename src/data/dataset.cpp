// The dataset base (index checks, transforms) and NDArrayDataset.
#include "needle/data/dataset.h"

#include <utility>

namespace needle::data {

NDArray Dataset::apply_transforms(NDArray image) const {
  for (const auto& transform : transforms_) image = (*transform)(image);
  return image;
}

std::int64_t Dataset::checked_index(std::int64_t index, const char* dataset) const {
  const std::int64_t n = size();
  NEEDLE_CHECK(index >= -n && index < n, IndexError, dataset, ": index ", index, " is out of range for ", n,
               " samples");
  return index < 0 ? index + n : index;
}

NDArrayDataset::NDArrayDataset(std::vector<NDArray> arrays) : arrays_(std::move(arrays)) {
  NEEDLE_CHECK(!arrays_.empty(), ValueError, "NDArrayDataset: needs at least one array");
  for (std::size_t k = 0; k < arrays_.size(); ++k) {
    NEEDLE_CHECK(arrays_[k].ndim() >= 1, ValueError, "NDArrayDataset: array ", k, " is 0-d; samples are its rows");
    NEEDLE_CHECK(arrays_[k].shape()[0] == arrays_[0].shape()[0], ValueError, "NDArrayDataset: array ", k, " of shape ",
                 shape_str(arrays_[k].shape()), " has a different first dimension than array 0 of shape ",
                 shape_str(arrays_[0].shape()));
  }
}

std::int64_t NDArrayDataset::size() const { return arrays_[0].shape()[0]; }

std::vector<NDArray> NDArrayDataset::get(std::int64_t index) const {
  const std::int64_t i = checked_index(index, "NDArrayDataset");
  std::vector<NDArray> sample;
  sample.reserve(arrays_.size());
  for (const NDArray& a : arrays_) sample.push_back(a.index({IndexItem::at(i)}));
  return sample;
}

}  // namespace needle::data
