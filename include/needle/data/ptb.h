// The Penn Treebank language-modelling data, as Needle's hw4 reads it: a word dictionary, corpora of
// word ids with <eos> ending every line, and the batching helpers of truncated BPTT.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "needle/core/ndarray.h"

namespace needle::data {

class Dictionary {
 public:
  // The id of `word`, adding it (with the next id) when new.
  std::int64_t add_word(const std::string& word);
  // The id of a known word; ValueError otherwise.
  [[nodiscard]] std::int64_t index(const std::string& word) const;
  [[nodiscard]] const std::string& word(std::int64_t id) const;  // IndexError when out of range
  [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(idx2word_.size()); }
  [[nodiscard]] const std::unordered_map<std::string, std::int64_t>& word2idx() const { return word2idx_; }
  [[nodiscard]] const std::vector<std::string>& idx2word() const { return idx2word_; }

 private:
  std::unordered_map<std::string, std::int64_t> word2idx_;
  std::vector<std::string> idx2word_;
};

// Reads the splits found in base_dir: train from "train.txt" or "ptb.train.txt", likewise "valid" and
// "test". Splits are tokenized train, test, valid, so train and test get the ids Needle's Corpus (which
// reads only those two) gives. A split with neither file is left empty; when no split exists at all
// ValueError names the paths tried. With max_lines, only the first max_lines lines of each file count.
class Corpus {
 public:
  explicit Corpus(const std::string& base_dir, std::optional<std::int64_t> max_lines = std::nullopt);

  // Appends the ids of `path`'s words to the dictionary (each line's words, then "<eos>") and returns
  // them. ValueError naming the path when it cannot be read.
  std::vector<std::int64_t> tokenize(const std::string& path, std::optional<std::int64_t> max_lines = std::nullopt);

  Dictionary dictionary;
  std::vector<std::int64_t> train;
  std::vector<std::int64_t> valid;
  std::vector<std::int64_t> test;
};

// Needle's batchify: drops the tail that does not fill a column and lays the ids out as
// (len(data) / batch_size, batch_size), column j holding the j-th contiguous run. ValueError when
// batch_size < 1.
NDArray batchify(const std::vector<std::int64_t>& data, std::int64_t batch_size, DType dtype = DType::Int64,
                 Device device = default_device());

// Needle's get_batch: rows [i, i + L) of `batches` as the input (L, batch_size) and rows [i + 1, i + 1 + L)
// flattened as the target (L * batch_size,), with L = min(bptt, nbatch - 1 - i). IndexError unless
// 0 <= i < nbatch - 1; ValueError for bptt < 1 or a batches array that is not 2-d.
std::pair<NDArray, NDArray> get_batch(const NDArray& batches, std::int64_t i, std::int64_t bptt);

}  // namespace needle::data
