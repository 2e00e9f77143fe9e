// Image transforms of Needle's data pipeline. As in Needle (hw2), they take one image laid out
// (H, W, C) and return a new one; datasets that store (C, H, W) images permute around them.
//
// Random decisions come from a Generator (the default generator when none is given), which is safe to
// share between DataLoader workers. With workers, the order in which samples draw from it depends on
// scheduling, so random transforms are reproducible from a seed only without workers.
#pragma once

#include <cstdint>

#include "needle/core/ndarray.h"
#include "needle/core/random.h"

namespace needle::data {

class Transform {
 public:
  Transform() = default;
  virtual ~Transform() = default;
  Transform(const Transform&) = delete;
  Transform& operator=(const Transform&) = delete;
  Transform(Transform&&) = delete;
  Transform& operator=(Transform&&) = delete;

  // `image` is (H, W, C); ValueError naming the transform for other ranks.
  [[nodiscard]] virtual NDArray operator()(const NDArray& image) const = 0;
};

// Mirrors the image left-right (along W) with probability p.
class RandomFlipHorizontal final : public Transform {
 public:
  explicit RandomFlipHorizontal(double p = 0.5, Generator* generator = nullptr);
  [[nodiscard]] NDArray operator()(const NDArray& image) const override;

 private:
  double p_;
  Generator* generator_;
};

// Zero-pads `padding` pixels on each side of H and W and crops an H x W window shifted by
// (dx, dy) drawn uniformly from [-padding, padding] each (Needle: dx shifts along H, dy along W).
class RandomCrop final : public Transform {
 public:
  explicit RandomCrop(std::int64_t padding = 3, Generator* generator = nullptr);
  [[nodiscard]] NDArray operator()(const NDArray& image) const override;
  // The deterministic crop for given shifts (what operator() does after drawing them).
  [[nodiscard]] NDArray crop(const NDArray& image, std::int64_t shift_x, std::int64_t shift_y) const;

 private:
  std::int64_t padding_;
  Generator* generator_;
};

}  // namespace needle::data
