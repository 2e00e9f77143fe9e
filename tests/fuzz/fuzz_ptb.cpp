// libFuzzer target: the Penn Treebank reader (Corpus on a folder holding train.txt) and the batching
// helpers on what it read. Input: one byte choosing max_lines (255: no limit, else its value modulo
// 16), one byte for batchify's batch size and one for get_batch's bptt (both may be 0, which must be
// a needle::Error), then the text. Every input must give a result or raise needle::Error, and every
// word id must name a word of the dictionary.
#include <needle/data/ptb.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>

#include "fuzz_files.h"
#include "needle/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::optional<std::int64_t> max_lines =
      data[0] == 255 ? std::nullopt : std::optional<std::int64_t>(data[0] % 16);
  const std::int64_t batch_size = data[1] % 16;
  const std::int64_t bptt = data[2] % 16;
  (void)needle::fuzz::write_scratch_file("train.txt", data + 3, size - 3);
  try {
    needle::data::Corpus corpus(needle::fuzz::scratch_folder().string(), max_lines);
    for (const std::int64_t id : corpus.train) {
      if (id < 0 || id >= corpus.dictionary.size()) std::abort();  // an id naming no word
      if (corpus.dictionary.index(corpus.dictionary.word(id)) != id) std::abort();
    }
    const needle::NDArray batches = needle::data::batchify(corpus.train, batch_size);
    if (batches.shape()[0] >= 2) {
      const auto [input, target] = needle::data::get_batch(batches, 0, bptt);
      (void)input.to_vector<std::int64_t>();
      (void)target.to_vector<std::int64_t>();
    }
  } catch (const needle::Error&) {  // a rejected argument
  }
  return 0;
}
