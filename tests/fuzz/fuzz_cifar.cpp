// libFuzzer target: the CIFAR-10 batch reader (the restricted unpickler and the checks of the dict it
// must hold) through CIFAR10Dataset(folder, train = false), which reads the folder's test_batch. The
// input is that file's bytes. Every input must build a dataset or raise needle::Error; a dataset's
// first and last samples are read back.
#include <needle/data/cifar10.h>

#include <cstddef>
#include <cstdint>

#include "fuzz_files.h"
#include "needle/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)needle::fuzz::write_scratch_file("test_batch", data, size);
  try {
    const needle::data::CIFAR10Dataset dataset(needle::fuzz::scratch_folder().string(), /*train=*/false);
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
