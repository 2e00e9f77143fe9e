// CIFAR-10 batches through the restricted pickle reader.
#include "needle/data/cifar10.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "data/pickle_reader.h"

namespace needle::data {

namespace {

constexpr std::int64_t kImageBytes = 3 * 32 * 32;

struct Batch {
  std::string pixels;
  std::vector<std::int64_t> labels;
};

Batch read_batch(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NEEDLE_CHECK(in.good(), ValueError, "CIFAR10Dataset: cannot open '", path, "'");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const pickle::ObjectPtr root = pickle::load(bytes, path);
  NEEDLE_CHECK(root->kind == pickle::Object::Kind::Dict, ValueError, "CIFAR10Dataset: '", path,
               "': the pickle does not hold a dict");
  const pickle::ObjectPtr data = pickle::dict_get(*root, "data");
  const pickle::ObjectPtr labels = pickle::dict_get(*root, "labels");
  NEEDLE_CHECK(data != nullptr && labels != nullptr, ValueError, "CIFAR10Dataset: '", path,
               "': the dict lacks b'data' or b'labels'");
  NEEDLE_CHECK(data->kind == pickle::Object::Kind::Array && data->filled, ValueError, "CIFAR10Dataset: '", path,
               "': b'data' is not a numpy array");
  NEEDLE_CHECK(data->shape.size() == 2 && data->shape[1] == kImageBytes, ValueError, "CIFAR10Dataset: '", path,
               "': b'data' has shape ", shape_str(data->shape), ", expected (N, 3072)");
  NEEDLE_CHECK(labels->kind == pickle::Object::Kind::List, ValueError, "CIFAR10Dataset: '", path,
               "': b'labels' is not a list");
  NEEDLE_CHECK(static_cast<std::int64_t>(labels->items.size()) == data->shape[0], ValueError, "CIFAR10Dataset: '", path,
               "': ", data->shape[0], " images but ", labels->items.size(), " labels");
  Batch batch;
  batch.pixels = data->text;
  batch.labels.reserve(labels->items.size());
  for (const pickle::ObjectPtr& label : labels->items) {
    NEEDLE_CHECK(label->kind == pickle::Object::Kind::Int && label->integer >= 0 && label->integer < 10, ValueError,
                 "CIFAR10Dataset: '", path, "': label ", batch.labels.size(), " is not an integer in [0, 10)");
    batch.labels.push_back(label->integer);
  }
  return batch;
}

}  // namespace

CIFAR10Dataset::CIFAR10Dataset(const std::string& base_folder, bool train, Transforms transforms)
    : Dataset(std::move(transforms)) {
  std::vector<std::string> files;
  if (train) {
    for (int i = 1; i <= 5; ++i) files.push_back((std::filesystem::path(base_folder) / str("data_batch_", i)).string());
  } else {
    files.push_back((std::filesystem::path(base_folder) / "test_batch").string());
  }
  std::vector<float> pixels;
  std::vector<std::int64_t> labels;
  for (const std::string& file : files) {
    const Batch batch = read_batch(file);
    // x / 255 in float32, as Needle's NumPy code computes it; the 3072 bytes of a row are already C, H, W.
    for (const char byte : batch.pixels)
      pixels.push_back(static_cast<float>(static_cast<unsigned char>(byte)) / 255.0F);
    labels.insert(labels.end(), batch.labels.begin(), batch.labels.end());
  }
  const auto n = static_cast<std::int64_t>(labels.size());
  images_ = NDArray::from_vector(pixels, {n, 3, 32, 32});
  labels_ = NDArray::from_vector(labels, {n});
}

std::vector<NDArray> CIFAR10Dataset::get(std::int64_t index) const {
  const std::int64_t i = checked_index(index, "CIFAR10Dataset");
  NDArray image = images_.index({IndexItem::at(i)});
  if (!transforms().empty()) image = apply_transforms(image.permute({1, 2, 0})).permute({2, 0, 1}).compact();
  return {image, labels_.index({IndexItem::at(i)})};
}

}  // namespace needle::data
