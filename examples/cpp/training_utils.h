// What every C++ training example shares: command-line flags, a progress bar, per-epoch metrics in CSV,
// checkpoints that resume, a loss-curve picture, the evaluation of the classifiers and the text splits
// and baseline of the language models. Plain C++ around Needle; no math here.
// The Python examples have the same helpers in examples/python/training_utils.py.
#pragma once

#include <needle/needle.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace examples {

// --key value options and --flag switches. `usage` lists what the program accepts, e.g.
// {"--data DIR", "--epochs N", "--resume"}: an entry with a value word takes a value, one without is a flag.
class Args {
 public:
  Args(int argc, char** argv, std::string program, std::vector<std::string> usage)
      : program_(std::move(program)), usage_(std::move(usage)) {
    std::map<std::string, bool> takes_value;
    for (const std::string& entry : usage_) {
      const auto space = entry.find(' ');
      takes_value[entry.substr(2, space == std::string::npos ? std::string::npos : space - 2)] =
          space != std::string::npos;
    }
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      const std::string key = arg.rfind("--", 0) == 0 ? arg.substr(2) : "";
      const auto known = takes_value.find(key);
      if (key == "help" || key == "h") {
        std::cout << usage_line() << "\n";
        std::exit(0);
      }
      if (known == takes_value.end()) fail("unknown argument '" + arg + "'");
      if (known->second) {
        if (i + 1 >= argc) fail("'" + arg + "' needs a value");
        values_[key] = argv[++i];
      } else {
        values_[key] = "1";
      }
    }
  }

  std::string get(const std::string& key, const std::string& fallback) const {
    const auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second;
  }
  int get_int(const std::string& key, int fallback) const {
    const auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    try {
      std::size_t used = 0;
      const int value = std::stoi(it->second, &used);
      if (used == it->second.size()) return value;
    } catch (const std::exception&) {
    }
    fail("--" + key + " expects an integer, got '" + it->second + "'");
  }
  double get_double(const std::string& key, double fallback) const {
    const auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    try {
      std::size_t used = 0;
      const double value = std::stod(it->second, &used);
      if (used == it->second.size()) return value;
    } catch (const std::exception&) {
    }
    fail("--" + key + " expects a number, got '" + it->second + "'");
  }
  bool flag(const std::string& key) const { return values_.count(key) > 0; }

 private:
  std::string usage_line() const {
    std::string line = "usage: " + program_;
    for (const std::string& entry : usage_) line += " [" + entry + "]";
    return line;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw needle::ValueError(program_ + ": " + what + "\n" + usage_line());
  }

  std::string program_;
  std::vector<std::string> usage_;
  std::map<std::string, std::string> values_;
};

// One line with a bar, the running mean loss and the speed, redrawn in place on a terminal; in a log
// (stdout not a terminal) about ten plain lines per epoch instead.
class Progress {
 public:
  Progress(std::string label, std::int64_t total_steps, std::string unit = "samples")
      : label_(std::move(label)),
        unit_(std::move(unit)),
        total_(std::max<std::int64_t>(total_steps, 1)),
        tty_(isatty(fileno(stdout)) != 0),
        start_(std::chrono::steady_clock::now()) {}

  void update(double loss, std::int64_t samples) {
    loss_sum_ += loss * static_cast<double>(samples);
    samples_ += samples;
    ++steps_;
    const std::int64_t tenth = (10 * steps_) / total_;
    if (!tty_ && tenth == last_tenth_) return;
    last_tenth_ = tenth;
    const int width = 30;
    const auto filled = static_cast<int>(std::min<std::int64_t>(width, width * steps_ / total_));
    std::printf("%s%s [%s%s] %lld/%lld loss %.4f %.0f %s/s%s", tty_ ? "\r" : "", label_.c_str(),
                std::string(static_cast<std::size_t>(filled), '#').c_str(),
                std::string(static_cast<std::size_t>(width - filled), '.').c_str(), static_cast<long long>(steps_),
                static_cast<long long>(total_), mean_loss(), static_cast<double>(samples_) / seconds(), unit_.c_str(),
                tty_ ? "" : "\n");
    std::fflush(stdout);
  }

  double mean_loss() const { return samples_ > 0 ? loss_sum_ / static_cast<double>(samples_) : 0.0; }
  std::int64_t samples() const { return samples_; }
  double seconds() const {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return std::max(s, 1e-9);
  }
  void finish() {
    if (tty_ && steps_ > 0) std::printf("\n");
    std::fflush(stdout);
  }

 private:
  std::string label_;
  std::string unit_;
  std::int64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  double loss_sum_ = 0.0;
  std::int64_t samples_ = 0;
  std::int64_t steps_ = 0;
  std::int64_t last_tenth_ = -1;
};

// Appends one row per epoch; the header is written only when the file is new, so a resumed run continues
// the same file.
class MetricsCsv {
 public:
  MetricsCsv(std::filesystem::path path, std::vector<std::string> fields)
      : path_(std::move(path)), fields_(std::move(fields)) {
    if (!std::filesystem::exists(path_)) {
      std::ofstream out(path_);
      for (std::size_t i = 0; i < fields_.size(); ++i) out << (i ? "," : "") << fields_[i];
      out << '\n';
    }
  }
  void append(const std::vector<double>& values) {
    if (values.size() != fields_.size()) {
      throw needle::ValueError("MetricsCsv: " + std::to_string(values.size()) + " values for " +
                               std::to_string(fields_.size()) + " columns in " + path_.string());
    }
    std::ofstream out(path_, std::ios::app);
    out.precision(8);
    for (std::size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
    out << '\n';
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<std::string> fields_;
};

// What a checkpoint holds: the model's state under "model.", the optimizer's under "optim." and the
// learning-rate schedule's under "scheduler." (so a resumed run continues with the same Adam moments,
// momentum buffers and step counts), and the number of finished epochs in the metadata.
inline const std::string kCheckpointContents = "model+optim+scheduler";

// Saves model, optimizer and schedule in one safetensors file (readable by other frameworks). Written to
// a temporary file and renamed, so a crash never leaves a half-written checkpoint.
inline void save_checkpoint(const needle::nn::Module& model, const needle::optim::Optimizer& optimizer,
                            const needle::optim::LRScheduler& scheduler, const std::filesystem::path& file, int epoch) {
  needle::io::TensorMap tensors;
  for (const auto& [name, value] : model.state_dict()) tensors.emplace("model." + name, value);
  for (const auto& [name, value] : optimizer.state_dict()) tensors.emplace("optim." + name, value);
  for (const auto& [name, value] : scheduler.state_dict()) tensors.emplace("scheduler." + name, value);
  std::filesystem::path tmp = file;
  tmp += ".tmp";
  needle::io::save_safetensors(tmp.string(), tensors,
                               {{"epoch", std::to_string(epoch)}, {"contents", kCheckpointContents}});
  std::filesystem::rename(tmp, file);
}

struct Resumed {
  int epoch = 0;                         // finished epochs
  bool training_state_restored = false;  // false for a model-only checkpoint: replay the schedule
};

// Loads a checkpoint of save_checkpoint. Each part is validated before it is changed. An older,
// model-only checkpoint (no "contents" metadata) still loads: the optimizer and the schedule then start
// fresh, which is printed, and the caller advances the schedule itself.
inline Resumed load_checkpoint(needle::nn::Module& model, needle::optim::Optimizer& optimizer,
                               needle::optim::LRScheduler& scheduler, const std::filesystem::path& file) {
  const auto metadata = needle::io::load_safetensors_metadata(file.string());
  Resumed resumed;
  const auto epoch = metadata.find("epoch");
  if (epoch != metadata.end()) resumed.epoch = std::stoi(epoch->second);
  const auto contents = metadata.find("contents");
  if (contents == metadata.end()) {
    needle::io::load_state_dict(file.string(), model);
    std::cout << "note: " << file.string()
              << " holds the model only (an older checkpoint): the optimizer's state and the schedule start fresh\n";
    return resumed;
  }
  if (contents->second != kCheckpointContents) {
    throw needle::ValueError(file.string() + ": unknown checkpoint contents '" + contents->second + "'");
  }
  const std::vector<needle::Tensor> params = optimizer.params();
  const needle::Device device = params.empty() ? needle::default_device() : params.front().device();
  needle::nn::StateDict model_state;
  needle::optim::OptimizerState optim_state;
  needle::optim::OptimizerState scheduler_state;
  for (const auto& entry : needle::io::load_safetensors(file.string(), device)) {
    const auto take = [&entry](const std::string& prefix, std::map<std::string, needle::NDArray>& part) {
      if (entry.first.rfind(prefix, 0) != 0) return false;
      part.emplace(entry.first.substr(prefix.size()), entry.second);
      return true;
    };
    if (!take("model.", model_state) && !take("optim.", optim_state) && !take("scheduler.", scheduler_state)) {
      throw needle::ValueError(file.string() + ": unexpected key '" + entry.first + "' in a checkpoint");
    }
  }
  model.load_state_dict(model_state);
  optimizer.load_state_dict(optim_state);
  scheduler.load_state_dict(scheduler_state);
  resumed.training_state_restored = true;
  return resumed;
}

// The .gz file of `name` in `folder` when there is one, else the uncompressed file.
inline std::string idx_file(const std::filesystem::path& folder, const std::string& name) {
  const std::filesystem::path gz = folder / (name + ".gz");
  return std::filesystem::exists(gz) ? gz.string() : (folder / name).string();
}

// ---- classification (train_mlp, train_cnn, train_resnet9) ----

// Number of rows whose largest logit is at the label.
inline std::int64_t count_correct(const needle::Tensor& logits, const needle::NDArray& labels) {
  const needle::NDArray predicted = needle::argmax(logits.value(), 1);
  return needle::sum(needle::eq(predicted, labels.astype(needle::DType::Int64))).item().to<std::int64_t>();
}

// Mean loss and accuracy in eval mode over the first `max_batches` batches (all when 0).
inline std::pair<double, double> evaluate_classifier(needle::nn::Module& model, needle::data::DataLoader& loader,
                                                     needle::nn::SoftmaxLoss& loss_fn, std::int64_t max_batches) {
  model.eval();
  const needle::NoGradGuard no_grad;
  double loss_sum = 0.0;
  std::int64_t correct = 0;
  std::int64_t seen = 0;
  std::int64_t batches = 0;
  for (const needle::data::Batch& batch : loader) {
    if (max_batches > 0 && batches++ >= max_batches) break;
    const needle::Tensor logits = model(needle::Tensor(batch[0]));
    const std::int64_t n = batch[1].shape()[0];
    loss_sum += loss_fn(logits, needle::Tensor(batch[1])).value().item().to<double>() * static_cast<double>(n);
    correct += count_correct(logits, batch[1]);
    seen += n;
  }
  const auto count = static_cast<double>(std::max<std::int64_t>(seen, 1));
  return {loss_sum / count, static_cast<double>(correct) / count};
}

// ---- language modelling (train_lstm_lm, train_transformer_lm) ----

// Which word ids the model trains on, is evaluated on each epoch, and is tested on (see the examples' headers).
struct LanguageSplits {
  std::int64_t vocab_size = 0;
  std::vector<std::int64_t> train, eval, test;
  std::string train_name, eval_name, note;
  bool eval_is_test = false;
};

inline LanguageSplits language_splits(const std::filesystem::path& folder) {
  if (!std::filesystem::is_directory(folder)) {
    throw needle::ValueError(folder.string() + " is not a folder with ptb.train.txt / ptb.valid.txt / ptb.test.txt");
  }
  needle::data::Corpus corpus(folder.string());
  LanguageSplits s;
  s.vocab_size = corpus.dictionary.size();
  if (!corpus.train.empty()) {
    s.train = corpus.train;
    s.train_name = "train";
    s.eval_is_test = corpus.valid.empty();
    s.eval = s.eval_is_test ? corpus.test : corpus.valid;
    s.eval_name = s.eval_is_test ? "test" : "valid";
    s.test = corpus.test.empty() ? corpus.valid : corpus.test;
  } else if (!corpus.valid.empty() && !corpus.test.empty()) {
    s.train = corpus.valid;
    s.train_name = "valid";
    s.eval = s.test = corpus.test;
    s.eval_name = "test";
    s.eval_is_test = true;
    s.note = "no ptb.train.txt in " + folder.string() +
             ": training on ptb.valid.txt and evaluating on ptb.test.txt (pass --data DIR with the full corpus "
             "for the standard split)";
  } else {
    throw needle::ValueError(folder.string() + " needs ptb.train.txt, or both ptb.valid.txt and ptb.test.txt");
  }
  return s;
}

// get_batch's (seq, batch) window turned into the transformer's (batch, seq) input, and the targets in the
// same order as the logits reshaped to (batch * seq, vocab).
inline std::pair<needle::Tensor, needle::Tensor> batch_first(const needle::NDArray& batches, std::int64_t i,
                                                             std::int64_t seq_len) {
  const auto [x, y] = needle::data::get_batch(batches, i, seq_len);
  const std::int64_t length = x.shape()[0];
  const std::int64_t batch = x.shape()[1];
  const needle::NDArray inputs = x.permute({1, 0}).compact();
  const needle::NDArray targets = y.reshape({length, batch}).permute({1, 0}).compact().reshape({length * batch});
  return {needle::Tensor(inputs), needle::Tensor(targets)};
}

// A transformer language model's mean cross entropy per token over `ids` cut into windows of seq_len words
// (each window starts without context, as in training); leaves the model in eval mode.
inline double evaluate_language_model(needle::nn::Transformer& model, const std::vector<std::int64_t>& ids,
                                      std::int64_t seq_len) {
  constexpr std::int64_t kEvalBatchSize = 10;
  model.eval();
  const needle::NoGradGuard no_grad;
  const needle::NDArray batches = needle::data::batchify(ids, kEvalBatchSize);
  needle::nn::SoftmaxLoss loss_fn;
  double total = 0.0;
  std::int64_t tokens = 0;
  for (std::int64_t i = 0; i < batches.shape()[0] - 1; i += seq_len) {
    const auto [x, y] = batch_first(batches, i, seq_len);
    const std::int64_t n = y.shape()[0];
    const needle::Tensor logits = needle::ops::reshape(model(x), {n, model.vocab_size()});
    total += loss_fn(logits, y).value().item().to<double>() * static_cast<double>(n);
    tokens += n;
  }
  return tokens > 0 ? total / static_cast<double>(tokens) : std::numeric_limits<double>::quiet_NaN();
}

// Perplexity on `test` of the unigram model fitted on `train`'s word counts, add-one smoothed over the
// whole vocabulary: the baseline a language model has to beat.
inline double unigram_perplexity(const std::vector<std::int64_t>& train, const std::vector<std::int64_t>& test,
                                 std::int64_t vocab_size) {
  std::vector<double> counts(static_cast<std::size_t>(vocab_size), 1.0);
  for (const std::int64_t id : train) counts[static_cast<std::size_t>(id)] += 1.0;
  const double total = static_cast<double>(train.size()) + static_cast<double>(vocab_size);
  double nll = 0.0;
  for (const std::int64_t id : test) nll -= std::log(counts[static_cast<std::size_t>(id)] / total);
  return std::exp(nll / static_cast<double>(test.size()));
}

namespace detail {

// An RGB canvas and the few drawing primitives a line chart needs.
struct Canvas {
  int width;
  int height;
  std::vector<std::uint8_t> rgb;

  Canvas(int w, int h) : width(w), height(h), rgb(static_cast<std::size_t>(w * h * 3), 255) {}

  void dot(int x, int y, std::array<std::uint8_t, 3> color, int radius = 1) {
    for (int dy = -radius; dy <= radius; ++dy) {
      for (int dx = -radius; dx <= radius; ++dx) {
        const int px = x + dx;
        const int py = y + dy;
        if (px < 0 || py < 0 || px >= width || py >= height) continue;
        std::copy(color.begin(), color.end(), rgb.begin() + (static_cast<std::ptrdiff_t>(py) * width + px) * 3);
      }
    }
  }
  // Bresenham's line, drawn `radius` pixels thick.
  void line(int x0, int y0, int x1, int y1, std::array<std::uint8_t, 3> color, int radius = 1) {
    const int dx = std::abs(x1 - x0);
    const int dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1;
    const int sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    while (true) {
      dot(x0, y0, color, radius);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }
};

inline void append_chunk(std::string& png, const char* type, const std::string& data) {
  const auto length = static_cast<std::uint32_t>(data.size());
  for (int shift = 24; shift >= 0; shift -= 8) png.push_back(static_cast<char>((length >> shift) & 0xff));
  const std::string body = std::string(type, 4) + data;
  png += body;
  const auto crc = static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  for (int shift = 24; shift >= 0; shift -= 8) png.push_back(static_cast<char>((crc >> shift) & 0xff));
}

inline std::string big_endian32(std::uint32_t v) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
  return s;
}

// Encodes the canvas as an 8-bit RGB PNG: one IDAT chunk of zlib-compressed rows (filter type 0), plus
// tEXt chunks for the title and the legend (the picture itself carries no font).
inline std::string encode_png(const Canvas& canvas, const std::vector<std::pair<std::string, std::string>>& text) {
  std::string raw;
  const auto row_bytes = static_cast<std::size_t>(canvas.width) * 3;
  raw.reserve((row_bytes + 1) * static_cast<std::size_t>(canvas.height));
  for (int y = 0; y < canvas.height; ++y) {
    raw.push_back('\0');
    raw.append(reinterpret_cast<const char*>(canvas.rgb.data()) + static_cast<std::size_t>(y) * row_bytes, row_bytes);
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION) != Z_OK) {
    throw needle::RuntimeError("plot_csv_png: zlib could not compress the image");
  }
  packed.resize(packed_size);

  std::string png = "\x89PNG\r\n\x1a\n";
  std::string header =
      big_endian32(static_cast<std::uint32_t>(canvas.width)) + big_endian32(static_cast<std::uint32_t>(canvas.height));
  header += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, no filter choice, no interlace
  append_chunk(png, "IHDR", header);
  for (const auto& [key, value] : text) append_chunk(png, "tEXt", key + std::string(1, '\0') + value);
  append_chunk(png, "IDAT", packed);
  append_chunk(png, "IEND", "");
  return png;
}

}  // namespace detail

// Draws the named CSV columns against the first column (the epoch) as a line chart PNG, with light grid
// lines at the y-axis quarters. The series colours are, in order, blue, orange, green, red, purple; the
// title and the legend are stored in the PNG's text fields and printed. Returns false (and prints why)
// when the CSV has no data row or lacks a column.
inline bool plot_csv_png(const std::filesystem::path& csv, const std::filesystem::path& png,
                         const std::vector<std::string>& columns, const std::string& title) {
  static const std::array<std::array<std::uint8_t, 3>, 5> palette = {
      {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}}};
  std::ifstream in(csv);
  std::string line;
  std::vector<std::string> header;
  if (std::getline(in, line)) {
    std::stringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) header.push_back(cell);
  }
  std::vector<std::size_t> picked;
  for (const std::string& name : columns) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) {
      std::cout << "plot: no column '" << name << "' in " << csv << "\n";
      return false;
    }
    picked.push_back(static_cast<std::size_t>(it - header.begin()));
  }
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::stringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) row.push_back(std::stod(cell));
    if (row.size() == header.size()) rows.push_back(std::move(row));
  }
  if (rows.empty()) {
    std::cout << "plot: " << csv << " has no rows yet\n";
    return false;
  }

  double x_lo = rows.front()[0];
  double x_hi = rows.back()[0];
  double y_lo = std::numeric_limits<double>::infinity();
  double y_hi = -y_lo;
  for (const auto& row : rows) {
    x_lo = std::min(x_lo, row[0]);
    x_hi = std::max(x_hi, row[0]);
    for (std::size_t c : picked) {
      if (!std::isfinite(row[c])) continue;
      y_lo = std::min(y_lo, row[c]);
      y_hi = std::max(y_hi, row[c]);
    }
  }
  if (!std::isfinite(y_lo)) {
    std::cout << "plot: no finite values to draw in " << csv << "\n";
    return false;
  }
  if (x_hi == x_lo) x_hi = x_lo + 1;
  const double margin = y_hi > y_lo ? 0.05 * (y_hi - y_lo) : 0.5;
  // Losses are never negative: keep the axis at zero rather than below it.
  y_lo = y_lo >= 0 ? std::max(0.0, y_lo - margin) : y_lo - margin;
  y_hi += margin;

  const int width = 640;
  const int height = 400;
  const int left = 40;
  const int right = width - 20;
  const int top = 20;
  const int bottom = height - 30;
  detail::Canvas canvas(width, height);
  const auto to_x = [&](double x) {
    return left + static_cast<int>(std::lround((x - x_lo) / (x_hi - x_lo) * (right - left)));
  };
  const auto to_y = [&](double y) {
    return bottom - static_cast<int>(std::lround((y - y_lo) / (y_hi - y_lo) * (bottom - top)));
  };
  for (int q = 1; q <= 3; ++q) {
    const int y = bottom - q * (bottom - top) / 4;
    canvas.line(left, y, right, y, {225, 225, 225}, 0);
  }
  canvas.line(left, bottom, right, bottom, {60, 60, 60}, 0);
  canvas.line(left, top, left, bottom, {60, 60, 60}, 0);

  std::string legend;
  for (std::size_t s = 0; s < picked.size(); ++s) {
    const auto color = palette[s % palette.size()];
    const std::size_t c = picked[s];
    for (std::size_t r = 0; r < rows.size(); ++r) {
      if (!std::isfinite(rows[r][c])) continue;
      canvas.dot(to_x(rows[r][0]), to_y(rows[r][c]), color, 3);
      if (r + 1 < rows.size() && std::isfinite(rows[r + 1][c])) {
        canvas.line(to_x(rows[r][0]), to_y(rows[r][c]), to_x(rows[r + 1][0]), to_y(rows[r + 1][c]), color, 1);
      }
    }
    static const std::array<const char*, 5> names = {"blue", "orange", "green", "red", "purple"};
    legend += (s ? ", " : "") + columns[s] + " = " + names[s % names.size()];
  }

  std::ostringstream range;
  range << "x: " << header[0] << " " << x_lo << ".." << x_hi << "; y: " << y_lo << ".." << y_hi;
  const std::string bytes = detail::encode_png(canvas, {{"Title", title}, {"Comment", legend + "; " + range.str()}});
  std::ofstream(png, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::cout << "loss curve: " << png << " (" << legend << "; " << range.str() << ")\n";
  return true;
}

}  // namespace examples
