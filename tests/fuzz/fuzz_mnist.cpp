// libFuzzer target: the MNIST IDX readers (images and labels, plain or gzipped) through MNISTDataset.
// Input: two bytes giving where to split the rest (little-endian, modulo its length + 1), then the
// images file's bytes and the labels file's bytes. Every input must build a dataset or raise
// needle::Error; a dataset's first and last samples are read back.
#include <needle/data/mnist.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_files.h"
#include "needle/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t rest = size - 2;
  const std::size_t split = (std::size_t{data[0]} | (std::size_t{data[1]} << 8U)) % (rest + 1);
  const std::string images = needle::fuzz::write_scratch_file("images-idx3-ubyte", data + 2, split);
  const std::string labels = needle::fuzz::write_scratch_file("labels-idx1-ubyte", data + 2 + split, rest - split);
  try {
    const needle::data::MNISTDataset dataset(images, labels);
    if (dataset.size() > 0) {
      for (const std::int64_t i : {std::int64_t{0}, dataset.size() - 1}) {
        for (const needle::NDArray& array : dataset.get(i))
          (void)array.astype(needle::DType::Float64).to_vector<double>();
      }
    }
  } catch (const needle::Error&) {  // a rejected file
  }
  return 0;
}
