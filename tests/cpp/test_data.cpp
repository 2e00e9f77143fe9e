// The data pipeline: datasets, transforms and the DataLoader (coverage, order, seeded shuffles,
// drop_last, workers giving the same batches, errors from workers, early exit); the MNIST, CIFAR-10 and
// PTB readers on small files written here byte by byte (and damaged copies of them), and on the real
// files in ../shared/data when they are present.
#include <gtest/gtest.h>
#include <needle/data/cifar10.h>
#include <needle/data/dataloader.h>
#include <needle/data/dataset.h>
#include <needle/data/mnist.h>
#include <needle/data/ptb.h>
#include <needle/data/transforms.h>
#include <needle/needle.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "file_test_util.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using data::Batch;
using data::DataLoader;
using testing::expect_error;
using testing::TempDir;
using testing::write_bytes;

// ---- helpers ------------------------------------------------------------------------------------

// Where the shared data sets live: $NEEDLE_DATA_DIR, else ../shared/data next to the repository.
std::filesystem::path shared_data() {
  if (const char* dir = std::getenv("NEEDLE_DATA_DIR")) return dir;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().parent_path() / "shared" / "data";
}

std::vector<std::int64_t> ints_of(const NDArray& a) { return a.astype(DType::Int64).to_vector<std::int64_t>(); }

// Expects `fn` to raise ValueError naming `path` and containing `fragment`.
template <typename Fn>
void expect_file_error(Fn&& fn, const std::string& path, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "expected an error naming " << path;
  } catch (const ValueError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

std::string big_endian(std::uint32_t v) {
  return {static_cast<char>(v >> 24U), static_cast<char>(v >> 16U), static_cast<char>(v >> 8U), static_cast<char>(v)};
}

std::string little_endian(std::uint64_t v, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i, v >>= 8U) out += static_cast<char>(v & 0xFFU);
  return out;
}

// A gzip file (RFC 1952) holding `payload` in stored (uncompressed) deflate blocks: written by hand so
// the test does not depend on the zlib the reader uses.
std::string gzip(const std::string& payload) {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? 0xEDB88320U ^ (c >> 1U) : c >> 1U;
    table[i] = c;
  }
  std::uint32_t crc = 0xFFFFFFFFU;
  for (const char ch : payload) crc = table[(crc ^ static_cast<unsigned char>(ch)) & 0xFFU] ^ (crc >> 8U);
  crc ^= 0xFFFFFFFFU;
  std::string out("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10);
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(65535, payload.size() - pos);
    const bool last = pos + n == payload.size();
    out += static_cast<char>(last ? 1 : 0);
    out += little_endian(n, 2) + little_endian(~n & 0xFFFFU, 2);
    out += payload.substr(pos, n);
    pos += n;
  } while (pos < payload.size());
  return out + little_endian(crc, 4) + little_endian(payload.size() & 0xFFFFFFFFU, 4);
}

// IDX files: pixel k of the images is (7 * k) % 256; labels are given.
std::string idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  std::string out = big_endian(0x803) + big_endian(n) + big_endian(rows) + big_endian(cols);
  for (std::uint32_t k = 0; k < n * rows * cols; ++k) out += static_cast<char>((7 * k) % 256);
  return out;
}
std::string idx_labels(const std::vector<int>& labels) {
  std::string out = big_endian(0x801) + big_endian(static_cast<std::uint32_t>(labels.size()));
  for (int label : labels) out += static_cast<char>(label);
  return out;
}

// A dataset of n samples {x = [i, 10 i] float32, y = i int64 (0-d)} that throws on `bad_index`.
class CountingDataset final : public data::Dataset {
 public:
  explicit CountingDataset(std::int64_t n, std::int64_t bad_index = -1, int delay_ms = 0)
      : n_(n), bad_index_(bad_index), delay_ms_(delay_ms) {}
  [[nodiscard]] std::int64_t size() const override { return n_; }
  [[nodiscard]] std::vector<NDArray> get(std::int64_t index) const override {
    const std::int64_t i = checked_index(index, "CountingDataset");
    if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    NEEDLE_CHECK(i != bad_index_, ValueError, "CountingDataset: sample ", i, " is broken");
    ++calls;
    return {NDArray::from_vector(std::vector<float>{static_cast<float>(i), static_cast<float>(10 * i)}, {2}),
            NDArray::full({}, Scalar(i), DType::Int64)};
  }
  mutable std::atomic<int> calls{0};

 private:
  std::int64_t n_;
  std::int64_t bad_index_;
  int delay_ms_;
};

// Every batch of one epoch, as the int64 labels of each batch.
std::vector<std::vector<std::int64_t>> labels_of_epoch(DataLoader& loader) {
  std::vector<std::vector<std::int64_t>> out;
  for (const Batch& batch : loader) out.push_back(ints_of(batch[1]));
  return out;
}

std::vector<std::int64_t> identity(std::int64_t n) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::int64_t>(i);
  return out;
}

std::vector<std::int64_t> flatten(const std::vector<std::vector<std::int64_t>>& batches) {
  std::vector<std::int64_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

// ---- datasets and transforms ---------------------------------------------------------------------

TEST(DatasetTest, NDArrayDatasetServesRows) {
  const NDArray x = NDArray::arange(12).reshape({6, 2});
  const NDArray y = NDArray::arange(6, DType::Float32);
  const data::NDArrayDataset dataset({x, y});
  EXPECT_EQ(dataset.size(), 6);
  const std::vector<NDArray> sample = dataset.get(4);
  ASSERT_EQ(sample.size(), 2U);
  EXPECT_EQ(ints_of(sample[0]), (std::vector<std::int64_t>{8, 9}));
  EXPECT_EQ(sample[1].shape(), Shape{});
  EXPECT_EQ(ints_of(dataset.get(-1)[1]), std::vector<std::int64_t>{5});
  expect_error<IndexError>([&] { (void)dataset.get(6); }, "NDArrayDataset: index 6 is out of range for 6 samples");
  expect_error<ValueError>([&] { data::NDArrayDataset({x, NDArray::zeros({5})}); }, "different first dimension");
  expect_error<ValueError>([&] { data::NDArrayDataset({}); }, "at least one array");
}

TEST(TransformTest, FlipAndCropFollowNeedle) {
  // A (2, 3, 1) image with distinct values: rows [0 1 2], [3 4 5].
  const NDArray image = NDArray::arange(6, DType::Float32).reshape({2, 3, 1});
  EXPECT_EQ(ints_of(data::RandomFlipHorizontal(1.0)(image)), (std::vector<std::int64_t>{2, 1, 0, 5, 4, 3}));
  EXPECT_EQ(ints_of(data::RandomFlipHorizontal(0.0)(image)), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5}));
  const data::RandomCrop crop(1);
  // Shift down one row (shift_x along H) and left one column (shift_y = -1 along W): zeros come in.
  EXPECT_EQ(ints_of(crop.crop(image, 1, -1)), (std::vector<std::int64_t>{0, 3, 4, 0, 0, 0}));
  EXPECT_EQ(ints_of(crop.crop(image, 0, 0)), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(ints_of(crop.crop(image, -1, 1)), (std::vector<std::int64_t>{0, 0, 0, 1, 2, 0}));
  // Random crops keep the shape and only ever show shifted copies of the image.
  Generator generator(5);
  const data::RandomCrop random_crop(1, &generator);
  std::set<std::vector<std::int64_t>> seen;
  for (int i = 0; i < 60; ++i) {
    const NDArray out = random_crop(image);
    EXPECT_EQ(out.shape(), image.shape());
    seen.insert(ints_of(out));
  }
  EXPECT_EQ(seen.size(), 9U);  // all 3 x 3 shifts occur
  // p = 0.5 flips about half the time.
  const data::RandomFlipHorizontal flip(0.5, &generator);
  int flipped = 0;
  for (int i = 0; i < 200; ++i) flipped += ints_of(flip(image))[0] == 2 ? 1 : 0;
  EXPECT_GT(flipped, 60);
  EXPECT_LT(flipped, 140);
  expect_error<ValueError>([&] { (void)crop(NDArray::zeros({2, 3})); }, "RandomCrop: expected an (H, W, C) image");
  expect_error<ValueError>([] { data::RandomFlipHorizontal(1.5); }, "p must be in [0, 1]");
}

// ---- DataLoader ----------------------------------------------------------------------------------

TEST(DataLoaderTest, BatchesInOrderWithAPartialLastBatch) {
  auto dataset = std::make_shared<CountingDataset>(10);
  DataLoader loader(dataset, 3);
  EXPECT_EQ(loader.size(), 4);
  std::vector<Batch> batches;
  for (const Batch& batch : loader) batches.push_back(batch);
  ASSERT_EQ(batches.size(), 4U);
  EXPECT_EQ(batches[0][0].shape(), (Shape{3, 2}));
  EXPECT_EQ(batches[0][1].shape(), (Shape{3}));
  EXPECT_EQ(batches[0][1].dtype(), DType::Int64);
  EXPECT_EQ(ints_of(batches[1][0]), (std::vector<std::int64_t>{3, 30, 4, 40, 5, 50}));
  EXPECT_EQ(ints_of(batches[3][1]), std::vector<std::int64_t>{9});
  EXPECT_EQ(batches[3][0].shape(), (Shape{1, 2}));

  DataLoader dropping(dataset, 3, false, /*drop_last=*/true);
  EXPECT_EQ(dropping.size(), 3);
  EXPECT_EQ(flatten(labels_of_epoch(dropping)), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  DataLoader whole(dataset, 20);
  EXPECT_EQ(labels_of_epoch(whole).size(), 1U);
  DataLoader none(dataset, 20, false, true);
  EXPECT_EQ(none.size(), 0);
  EXPECT_TRUE(labels_of_epoch(none).empty());
  expect_error<ValueError>([&] { DataLoader(dataset, 0); }, "DataLoader: batch_size must be >= 1, got 0");
  expect_error<ValueError>([&] { DataLoader(dataset, 1, false, false, -1); }, "num_workers must be >= 0");
}

TEST(DataLoaderTest, SeededShufflesCoverEverySampleAndRepeat) {
  auto dataset = std::make_shared<CountingDataset>(23);
  DataLoader a(dataset, 4, /*shuffle=*/true, false, 0, /*seed=*/42);
  DataLoader b(dataset, 4, true, false, 0, 42);
  DataLoader c(dataset, 4, true, false, 0, 43);
  std::vector<std::vector<std::int64_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    const std::vector<std::int64_t> order = flatten(labels_of_epoch(a));
    std::vector<std::int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, identity(23)) << "epoch " << e << " does not hold every sample exactly once";
    EXPECT_EQ(order, flatten(labels_of_epoch(b))) << "same seed, epoch " << e;
    EXPECT_NE(order, flatten(labels_of_epoch(c))) << "another seed, epoch " << e;
    epochs.push_back(order);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  EXPECT_NE(epochs[0], identity(23));
}

TEST(DataLoaderTest, AnEpochInAGivenOrderOnWorkersOrNot) {
  auto dataset = std::make_shared<CountingDataset>(11);
  const std::vector<std::int64_t> order = {10, 3, 3, 0, 7, 1, 9};  // any in-range indices, repeats allowed
  for (const std::int64_t workers : {0, 2}) {
    for (const bool drop_last : {false, true}) {
      DataLoader loader(dataset, 3, /*shuffle=*/true, drop_last, workers, 5);
      std::vector<std::vector<std::int64_t>> batches;
      data::Epoch epoch = loader.epoch(order);
      while (std::optional<Batch> batch = epoch.next()) batches.push_back(ints_of((*batch)[1]));
      std::vector<std::vector<std::int64_t>> expected = {{10, 3, 3}, {0, 7, 1}};
      if (!drop_last) expected.push_back({9});
      EXPECT_EQ(batches, expected) << workers << " workers, drop_last " << drop_last;
    }
  }
  DataLoader loader(dataset, 3);
  expect_error<IndexError>(
      [&] {
        (void)loader.epoch({0, 11});
      },
      "DataLoader: sample index 11 is out of range for a dataset of 11 samples");
  expect_error<IndexError>([&] { (void)loader.epoch({-1}); }, "sample index -1");
}

TEST(DataLoaderTest, WorkersDeliverTheSameBatchesInOrder) {
  auto dataset = std::make_shared<CountingDataset>(37);
  for (const bool drop_last : {false, true}) {
    DataLoader serial(dataset, 5, true, drop_last, 0, 7);
    DataLoader parallel(dataset, 5, true, drop_last, 2, 7);
    for (int e = 0; e < 2; ++e) {
      std::vector<Batch> expected;
      for (const Batch& batch : serial) expected.push_back(batch);
      std::size_t k = 0;
      for (const Batch& batch : parallel) {
        ASSERT_LT(k, expected.size());
        ASSERT_EQ(batch.size(), expected[k].size());
        for (std::size_t f = 0; f < batch.size(); ++f) {
          EXPECT_EQ(batch[f].shape(), expected[k][f].shape());
          EXPECT_EQ(ints_of(batch[f]), ints_of(expected[k][f])) << "batch " << k << " field " << f;
        }
        ++k;
      }
      EXPECT_EQ(k, expected.size());
    }
  }
}

TEST(DataLoaderTest, ErrorsReachTheConsumerAtTheirBatch) {
  for (const std::int64_t workers : {0, 2}) {
    SCOPED_TRACE(str(workers, " workers"));
    auto dataset = std::make_shared<CountingDataset>(12, /*bad_index=*/7);
    DataLoader loader(dataset, 3, false, false, workers);
    data::Epoch epoch = loader.epoch();
    EXPECT_EQ(ints_of(epoch.next()->at(1)), (std::vector<std::int64_t>{0, 1, 2}));
    EXPECT_EQ(ints_of(epoch.next()->at(1)), (std::vector<std::int64_t>{3, 4, 5}));
    expect_error<ValueError>([&] { (void)epoch.next(); }, "CountingDataset: sample 7 is broken");
    EXPECT_FALSE(epoch.next().has_value()) << "the epoch ends at the error";
    // The next epoch starts afresh.
    data::Epoch again = loader.epoch();
    EXPECT_TRUE(again.next().has_value());
  }
  // Samples of different arity cannot be batched together.
  class Ragged final : public data::Dataset {
   public:
    [[nodiscard]] std::int64_t size() const override { return 2; }
    [[nodiscard]] std::vector<NDArray> get(std::int64_t index) const override {
      return std::vector<NDArray>(static_cast<std::size_t>(checked_index(index, "Ragged") + 1), NDArray::zeros({1}));
    }
  };
  DataLoader ragged(std::make_shared<Ragged>(), 2);
  expect_error<ValueError>([&] { (void)ragged.epoch().next(); },
                           "DataLoader: sample 1 has 2 arrays but sample 0 has 1");
}

TEST(DataLoaderTest, StoppingEarlyJoinsTheWorkers) {
  auto dataset = std::make_shared<CountingDataset>(200, -1, /*delay_ms=*/1);
  DataLoader loader(dataset, 2, true, false, 2, 1);
  for (const Batch& batch : loader) {
    EXPECT_EQ(batch[0].shape(), (Shape{2, 2}));
    break;  // the epoch is destroyed with workers mid-way
  }
  // Workers only run ahead by the prefetch window (2 * num_workers batches), not over the whole set.
  EXPECT_LE(dataset->calls.load(), 2 * (1 + 4 + 2));
  {
    const data::Epoch never_read = loader.epoch();  // destroyed without a single next()
  }
  DataLoader empty(std::make_shared<CountingDataset>(0), 4, false, false, 2);
  EXPECT_TRUE(labels_of_epoch(empty).empty());
}

// ---- MNIST ---------------------------------------------------------------------------------------

TEST(MNISTTest, ReadsGzippedAndPlainIdxFiles) {
  const TempDir dir;
  const std::string images = dir.file("images.gz");
  const std::string labels = dir.file("labels.gz");
  write_bytes(images, gzip(idx_images(3, 4, 5)));
  write_bytes(labels, gzip(idx_labels({7, 0, 9})));
  for (const bool gzipped : {true, false}) {
    SCOPED_TRACE(gzipped ? "gzipped" : "plain");
    if (!gzipped) {
      write_bytes(images, idx_images(3, 4, 5));
      write_bytes(labels, idx_labels({7, 0, 9}));
    }
    const data::MNISTDataset dataset(images, labels);
    EXPECT_EQ(dataset.size(), 3);
    const std::vector<NDArray> sample = dataset.get(1);
    EXPECT_EQ(sample[0].shape(), (Shape{4, 5, 1}));
    EXPECT_EQ(sample[0].dtype(), DType::Float32);
    // Pixel j of image 1 is byte k = 20 + j: (7 * k) % 256, scaled by 1/255.
    const std::vector<float> pixels = sample[0].compact().to_vector<float>();
    for (std::size_t j = 0; j < pixels.size(); ++j) {
      EXPECT_EQ(pixels[j], static_cast<float>((7 * (20 + j)) % 256) / 255.0F);
    }
    EXPECT_EQ(sample[1].dtype(), DType::Int64);
    EXPECT_EQ(ints_of(dataset.labels()), (std::vector<std::int64_t>{7, 0, 9}));
  }
  // Transforms apply to the (rows, cols, 1) image: after a flip, pixel (0, 0) is old pixel (0, 4) = 28/255.
  const data::MNISTDataset flipped(images, labels, {std::make_shared<data::RandomFlipHorizontal>(1.0)});
  EXPECT_EQ(flipped.get(0)[0].compact().to_vector<float>()[0], 28.0F / 255.0F);
}

TEST(MNISTTest, DamagedFilesNameTheFile) {
  const TempDir dir;
  const std::string images = dir.file("images.idx");
  const std::string labels = dir.file("labels.idx");
  write_bytes(labels, idx_labels({1, 2}));
  auto load = [&] { data::MNISTDataset(images, labels); };
  write_bytes(images, idx_images(2, 3, 3).substr(0, 30));
  expect_file_error(load, images, "announces 18 bytes of images but the file holds 14 (truncated)");
  write_bytes(images, idx_images(2, 3, 3) + "x");
  expect_file_error(load, images, "(trailing data)");
  write_bytes(images, idx_labels({1, 2, 3, 4, 5, 6, 7, 8}));
  expect_file_error(load, images, "magic number 0x801 is not 0x803");
  write_bytes(images, "abc");
  expect_file_error(load, images, "too short for an IDX images header");
  write_bytes(images, idx_images(3, 3, 3));
  expect_file_error(load, images, "holds 3 images but");
  const std::string gz = gzip(idx_images(2, 3, 3));
  write_bytes(images, gz.substr(0, gz.size() - 12));
  expect_file_error(load, images, "truncated or corrupt gzip data");
  write_bytes(images, idx_images(2, 3, 3));
  write_bytes(labels, gzip(idx_labels({1, 2})).substr(0, 15));
  expect_file_error(load, labels, "gzip");
  std::filesystem::remove(labels);
  expect_file_error(load, labels, "cannot open");
}

TEST(MNISTTest, RealTestSet) {
  const std::filesystem::path dir = shared_data() / "mnist";
  const std::filesystem::path images = dir / "t10k-images-idx3-ubyte.gz";
  const std::filesystem::path labels = dir / "t10k-labels-idx1-ubyte.gz";
  if (!std::filesystem::exists(images) || !std::filesystem::exists(labels)) {
    GTEST_SKIP() << "MNIST test files not found under " << dir << " (set NEEDLE_DATA_DIR to their parent folder)";
  }
  const data::MNISTDataset dataset(images.string(), labels.string());
  ASSERT_EQ(dataset.size(), 10000);
  EXPECT_EQ(dataset.images().shape(), (Shape{10000, 28, 28, 1}));
  // The published class counts of the 10k test set, and its first labels.
  const std::vector<std::int64_t> all = ints_of(dataset.labels());
  std::vector<std::int64_t> histogram(10, 0);
  for (std::int64_t label : all) ++histogram[static_cast<std::size_t>(label)];
  EXPECT_EQ(histogram, (std::vector<std::int64_t>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}));
  EXPECT_EQ(std::vector<std::int64_t>(all.begin(), all.begin() + 5), (std::vector<std::int64_t>{7, 2, 1, 0, 4}));
  EXPECT_EQ(needle::max(dataset.images()).item().to<double>(), 1.0);
  EXPECT_EQ(needle::min(dataset.images()).item().to<double>(), 0.0);
  // The first image's bytes sum to 18454.
  EXPECT_NEAR(needle::sum(dataset.get(0)[0].astype(DType::Float64)).item().to<double>(), 18454.0 / 255.0, 1e-4);
}

// ---- CIFAR-10 ------------------------------------------------------------------------------------

// A CIFAR-10 batch exactly as Python 2's cPickle wrote them (protocol 2): a dict with "data" (a numpy
// uint8 array (n, 3072) rebuilt by numpy.core.multiarray._reconstruct), "labels", "batch_label" and
// "filenames". Pixel k of the batch is (k + offset) % 251.
std::string cifar_pickle(const std::vector<int>& labels, int offset) {
  const auto n = static_cast<std::uint32_t>(labels.size());
  std::string pixels;
  for (std::uint32_t k = 0; k < n * 3072; ++k)
    pixels += static_cast<char>((k + static_cast<std::uint32_t>(offset)) % 251);
  using namespace std::string_literals;
  std::string p =
      "\x80\x02}q\x01(U\x04"
      "dataq\x02"s;
  p += "cnumpy.core.multiarray\n_reconstruct\nq\x03"
       "cnumpy\nndarray\nq\x04"s;
  p += "K\x00\x85U\x01"
       "b\x87Rq\x05(K\x01"s;
  p += "K"s + little_endian(n, 1) + "M"s + little_endian(3072, 2) + "\x86"s;
  p += "cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"s;
  p += "T"s + little_endian(pixels.size(), 4) + pixels + "tbU\x06labelsq\x08]q\x09("s;
  for (int label : labels) p += "K"s + little_endian(static_cast<std::uint64_t>(label), 1);
  p += "eU\x0b"
       "batch_labelq\x0aU\x14testing batch 1 of 1q\x0bU\x09"
       "filenamesq\x0c]q\x0d("s;
  for (std::uint32_t i = 0; i < n; ++i) p += "U\x06x"s + std::to_string(i % 10) + ".png";
  return p + "eu.";
}

TEST(CIFAR10Test, ReadsPickledBatches) {
  const TempDir dir;
  write_bytes(dir.file("test_batch"), cifar_pickle({3, 8}, 0));
  for (int i = 1; i <= 5; ++i) write_bytes(dir.file(str("data_batch_", i)), cifar_pickle({i, 9 - i, 0}, i));
  const data::CIFAR10Dataset test(dir.path(), false);
  ASSERT_EQ(test.size(), 2);
  EXPECT_EQ(ints_of(test.labels()), (std::vector<std::int64_t>{3, 8}));
  const std::vector<NDArray> sample = test.get(1);
  EXPECT_EQ(sample[0].shape(), (Shape{3, 32, 32}));
  EXPECT_EQ(sample[0].dtype(), DType::Float32);
  // Channel c, row h, column w of image 1 is byte 3072 + 1024 c + 32 h + w of the batch.
  const std::vector<float> image = sample[0].compact().to_vector<float>();
  EXPECT_EQ(image[1024 * 2 + 32 * 5 + 7], static_cast<float>((3072 + 1024 * 2 + 32 * 5 + 7) % 251) / 255.0F);
  const data::CIFAR10Dataset train(dir.path(), true);
  EXPECT_EQ(train.size(), 15);
  EXPECT_EQ(ints_of(train.labels()), (std::vector<std::int64_t>{1, 8, 0, 2, 7, 0, 3, 6, 0, 4, 5, 0, 5, 4, 0}));
  EXPECT_EQ(train.get(3)[0].compact().to_vector<float>()[0], 2.0F / 255.0F);  // batch 2 starts at offset 2
  // Transforms see (H, W, C): a horizontal flip reverses each row of every channel.
  const data::CIFAR10Dataset flipped(dir.path(), false, {std::make_shared<data::RandomFlipHorizontal>(1.0)});
  const NDArray mirrored = flipped.get(1)[0];
  EXPECT_EQ(mirrored.shape(), (Shape{3, 32, 32}));
  EXPECT_EQ(mirrored.to_vector<float>()[1024 * 2 + 32 * 5 + (31 - 7)], image[1024 * 2 + 32 * 5 + 7]);
}

TEST(CIFAR10Test, RefusesOtherGlobalsAndDamagedFiles) {
  using namespace std::string_literals;
  const TempDir dir;
  const std::string path = dir.file("test_batch");
  auto load = [&] { data::CIFAR10Dataset(dir.path(), false); };
  // pickle.dumps of os.system("ls") at protocol 2: the reader must not even accept the global.
  write_bytes(path,
              "\x80\x02"
              "cos\nsystem\nq\x00U\x02lsq\x01\x85q\x02Rq\x03."s);
  expect_file_error(load, path, "refusing to load the global 'os.system'");
  // A builtins global hidden inside an otherwise valid batch.
  std::string sneaky = cifar_pickle({1}, 0);
  sneaky.replace(sneaky.find("cnumpy\ndtype\n"), 13, "cbuiltins\neval\n");
  write_bytes(path, sneaky);
  expect_file_error(load, path, "refusing to load the global 'builtins.eval'");
  const std::string good = cifar_pickle({1, 2}, 0);
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{20}, std::size_t{130}, std::size_t{200},
                                 std::size_t{3000}, good.size() - 40, good.size() - 1}) {
    write_bytes(path, good.substr(0, size));
    expect_file_error(load, path, "");
  }
  std::string wrong_label = good;
  wrong_label.replace(wrong_label.find("(K\x01K\x02"
                                       "e"s),
                      6,
                      "(K\x01K\x0c"
                      "e"s);
  write_bytes(path, wrong_label);
  expect_file_error(load, path, "label 1 is not an integer in [0, 10)");
  std::string short_data = good;
  short_data.replace(short_data.find("K\x02M"s), 2, "K\x03"s);  // the shape says 3 images, the bytes hold 2
  write_bytes(path, short_data);
  expect_file_error(load, path, "needs 9216 bytes but its data has 6144");
  std::filesystem::remove(path);
  expect_file_error(load, path, "cannot open");
}

// ---- PTB -----------------------------------------------------------------------------------------

TEST(PTBTest, CorpusDictionaryAndBatches) {
  const TempDir dir;
  write_bytes(dir.file("train.txt"), " the cat sat \n the  dog\n");
  write_bytes(dir.file("test.txt"), "a cat\n");
  const data::Corpus corpus(dir.path());
  // Ids in order of first appearance, train before test; every line ends with <eos>.
  EXPECT_EQ(corpus.train, (std::vector<std::int64_t>{0, 1, 2, 3, 0, 4, 3}));
  EXPECT_EQ(corpus.test, (std::vector<std::int64_t>{5, 1, 3}));
  EXPECT_TRUE(corpus.valid.empty());
  EXPECT_EQ(corpus.dictionary.size(), 6);
  EXPECT_EQ(corpus.dictionary.word(3), "<eos>");
  EXPECT_EQ(corpus.dictionary.index("dog"), 4);
  expect_error<ValueError>([&] { (void)corpus.dictionary.index("bird"); }, "unknown word 'bird'");
  const data::Corpus first_line(dir.path(), 1);
  EXPECT_EQ(first_line.train, (std::vector<std::int64_t>{0, 1, 2, 3}));

  // batchify: 7 ids in 2 columns -> 3 rows, column j the j-th run: [[0 3] [1 0] [2 4]].
  const NDArray batches = data::batchify(corpus.train, 2);
  EXPECT_EQ(batches.shape(), (Shape{3, 2}));
  EXPECT_EQ(ints_of(batches), (std::vector<std::int64_t>{0, 3, 1, 0, 2, 4}));
  EXPECT_EQ(data::batchify(corpus.train, 2, DType::Float32).dtype(), DType::Float32);
  const auto [x, y] = data::get_batch(batches, 0, 5);  // only 2 rows have a next row
  EXPECT_EQ(x.shape(), (Shape{2, 2}));
  EXPECT_EQ(ints_of(y), (std::vector<std::int64_t>{1, 0, 2, 4}));
  const auto [x1, y1] = data::get_batch(batches, 1, 1);
  EXPECT_EQ(ints_of(x1), (std::vector<std::int64_t>{1, 0}));
  EXPECT_EQ(ints_of(y1), (std::vector<std::int64_t>{2, 4}));
  expect_error<IndexError>([&] { (void)data::get_batch(batches, 2, 1); },
                           "get_batch: i = 2 leaves no target in 3 rows");
  expect_error<ValueError>([&] { (void)data::batchify(corpus.train, 0); }, "batchify: batch_size must be >= 1");

  // The ptb.*.txt names, and a folder with neither.
  const TempDir other;
  write_bytes(other.file("ptb.valid.txt"), "x y\n");
  EXPECT_EQ(data::Corpus(other.path()).valid, (std::vector<std::int64_t>{0, 1, 2}));
  std::filesystem::remove(other.file("ptb.valid.txt"));
  expect_file_error([&] { data::Corpus(other.path()); }, other.file("ptb.train.txt"), "no PTB text file found");
  data::Corpus reader(dir.path());
  expect_file_error([&] { (void)reader.tokenize(other.file("nothing.txt")); }, other.file("nothing.txt"),
                    "cannot open");
}

TEST(PTBTest, RealFiles) {
  const std::filesystem::path dir = shared_data() / "ptb";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "PTB files not found under " << dir;
  const data::Corpus corpus(dir.string());
  std::int64_t lines = 0;
  for (const char* name : {"ptb.test.txt", "test.txt"}) {
    std::ifstream in(dir / name);
    std::string line;
    while (std::getline(in, line)) ++lines;
  }
  ASSERT_GT(lines, 0);
  ASSERT_FALSE(corpus.test.empty());
  const std::int64_t eos = corpus.dictionary.index("<eos>");
  EXPECT_EQ(std::count(corpus.test.begin(), corpus.test.end(), eos), lines);
  EXPECT_LE(corpus.dictionary.size(), 10000);  // PTB's vocabulary is 10k words, <unk> and <eos> included
  const NDArray batches = data::batchify(corpus.test, 16);
  EXPECT_EQ(batches.shape()[1], 16);
  const auto [x, y] = data::get_batch(batches, 0, 35);
  EXPECT_EQ(x.shape(), (Shape{35, 16}));
  EXPECT_EQ(y.shape(), (Shape{35 * 16}));
}

}  // namespace
}  // namespace needle
