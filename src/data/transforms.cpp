// Random flips and crops on (H, W, C) images.
#include "needle/data/transforms.h"

#include <cmath>

#include "needle/core/array_ops.h"

namespace needle::data {

namespace {

// One uniform draw in [0, 1) from `generator` (the default one when null).
double draw(Generator* generator) {
  Generator& g = generator != nullptr ? *generator : default_generator();
  const Generator::State state = g.advance(1);
  return random_bits::uniform01(state.seed, state.offset);
}

void check_hwc(const NDArray& image, const char* transform) {
  NEEDLE_CHECK(image.ndim() == 3, ValueError, transform, ": expected an (H, W, C) image, got shape ",
               shape_str(image.shape()));
}

}  // namespace

RandomFlipHorizontal::RandomFlipHorizontal(double p, Generator* generator) : p_(p), generator_(generator) {
  NEEDLE_CHECK(p >= 0.0 && p <= 1.0, ValueError, "RandomFlipHorizontal: p must be in [0, 1], got ", p);
}

NDArray RandomFlipHorizontal::operator()(const NDArray& image) const {
  check_hwc(image, "RandomFlipHorizontal");
  // Needle draws np.random.rand() < p on every call; so does this, keeping the stream aligned.
  if (draw(generator_) < p_) return needle::flip(image, {1});
  return image;
}

RandomCrop::RandomCrop(std::int64_t padding, Generator* generator) : padding_(padding), generator_(generator) {
  NEEDLE_CHECK(padding >= 0, ValueError, "RandomCrop: padding must be >= 0, got ", padding);
}

NDArray RandomCrop::operator()(const NDArray& image) const {
  check_hwc(image, "RandomCrop");
  // Uniform integers in [-padding, padding], like np.random.randint(-padding, padding + 1, size=2).
  const auto span = static_cast<double>(2 * padding_ + 1);
  const auto shift_x = static_cast<std::int64_t>(std::floor(draw(generator_) * span)) - padding_;
  const auto shift_y = static_cast<std::int64_t>(std::floor(draw(generator_) * span)) - padding_;
  return crop(image, shift_x, shift_y);
}

NDArray RandomCrop::crop(const NDArray& image, std::int64_t shift_x, std::int64_t shift_y) const {
  check_hwc(image, "RandomCrop");
  NEEDLE_CHECK(std::abs(shift_x) <= padding_ && std::abs(shift_y) <= padding_, ValueError, "RandomCrop: shifts (",
               shift_x, ", ", shift_y, ") exceed the padding ", padding_);
  const std::int64_t h = image.shape()[0];
  const std::int64_t w = image.shape()[1];
  const NDArray padded = needle::pad(image, {{padding_, padding_}, {padding_, padding_}, {0, 0}});
  const std::int64_t top = padding_ + shift_x;
  const std::int64_t left = padding_ + shift_y;
  return padded.index({IndexItem::range(top, top + h), IndexItem::range(left, left + w), IndexItem::range()}).compact();
}

}  // namespace needle::data
