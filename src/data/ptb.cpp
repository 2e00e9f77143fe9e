// PTB: tokenizing text files into word ids, and the (time, batch) layout of truncated BPTT.
#include "needle/data/ptb.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace needle::data {

std::int64_t Dictionary::add_word(const std::string& word) {
  const auto [it, inserted] = word2idx_.try_emplace(word, size());
  if (inserted) idx2word_.push_back(word);
  return it->second;
}

std::int64_t Dictionary::index(const std::string& word) const {
  const auto found = word2idx_.find(word);
  NEEDLE_CHECK(found != word2idx_.end(), ValueError, "Dictionary: unknown word '", word, "'");
  return found->second;
}

const std::string& Dictionary::word(std::int64_t id) const {
  NEEDLE_CHECK(id >= 0 && id < size(), IndexError, "Dictionary: id ", id, " is out of range for ", size(), " words");
  return idx2word_[static_cast<std::size_t>(id)];
}

Corpus::Corpus(const std::string& base_dir, std::optional<std::int64_t> max_lines) {
  NEEDLE_CHECK(!max_lines || *max_lines >= 0, ValueError, "Corpus: max_lines must be >= 0, got ", *max_lines);
  std::string tried;
  bool any = false;
  // Train first, then test, then valid: see the header.
  for (const auto& [split, ids] :
       {std::pair<const char*, std::vector<std::int64_t>*>{"train", &train}, {"test", &test}, {"valid", &valid}}) {
    for (const std::string& name : {str(split, ".txt"), str("ptb.", split, ".txt")}) {
      const std::string path = (std::filesystem::path(base_dir) / name).string();
      tried += (tried.empty() ? "'" : ", '") + path + "'";
      if (std::filesystem::is_regular_file(path)) {
        *ids = tokenize(path, max_lines);
        any = true;
        break;
      }
    }
  }
  NEEDLE_CHECK(any, ValueError, "Corpus: no PTB text file found; tried ", tried);
}

std::vector<std::int64_t> Corpus::tokenize(const std::string& path, std::optional<std::int64_t> max_lines) {
  std::ifstream in(path);
  NEEDLE_CHECK(in.good(), ValueError, "Corpus: cannot open '", path, "'");
  std::vector<std::int64_t> ids;
  std::string line;
  for (std::int64_t n = 0; (!max_lines || n < *max_lines) && std::getline(in, line); ++n) {
    // Python's str.split(): runs of whitespace separate words.
    std::istringstream words(line);
    std::string word;
    while (words >> word) ids.push_back(dictionary.add_word(word));
    ids.push_back(dictionary.add_word("<eos>"));
  }
  NEEDLE_CHECK(!in.bad(), ValueError, "Corpus: error reading '", path, "'");
  return ids;
}

NDArray batchify(const std::vector<std::int64_t>& data, std::int64_t batch_size, DType dtype, Device device) {
  NEEDLE_CHECK(batch_size >= 1, ValueError, "batchify: batch_size must be >= 1, got ", batch_size);
  const std::int64_t nbatch = static_cast<std::int64_t>(data.size()) / batch_size;
  const std::vector<std::int64_t> kept(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(nbatch * batch_size));
  // reshape((batch_size, nbatch)).T, made contiguous.
  return NDArray::from_vector(kept, {batch_size, nbatch}, device).permute({1, 0}).astype(dtype).compact();
}

std::pair<NDArray, NDArray> get_batch(const NDArray& batches, std::int64_t i, std::int64_t bptt) {
  NEEDLE_CHECK(batches.ndim() == 2, ValueError, "get_batch: batches must be 2-d (nbatch, batch_size), got shape ",
               shape_str(batches.shape()));
  NEEDLE_CHECK(bptt >= 1, ValueError, "get_batch: bptt must be >= 1, got ", bptt);
  const std::int64_t nbatch = batches.shape()[0];
  NEEDLE_CHECK(i >= 0 && i < nbatch - 1, IndexError, "get_batch: i = ", i, " leaves no target in ", nbatch, " rows");
  const std::int64_t len = std::min(bptt, nbatch - 1 - i);
  NDArray data = batches.index({IndexItem::range(i, i + len)}).compact();
  NDArray target = batches.index({IndexItem::range(i + 1, i + 1 + len)}).compact().reshape({-1});
  return {std::move(data), std::move(target)};
}

}  // namespace needle::data
