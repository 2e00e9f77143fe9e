// Trains a 2-layer LSTM language model on Penn Treebank text with Needle's C++ API: the same model,
// optimizer, schedule and flags as examples/python/train_lstm_lm.py.
//   train_lstm_lm [--data DIR] [--epochs N] [--batch-size N] [--seq-len N] [--lr LR] [--out DIR] [--resume]
//                 [--seed N] [--max-steps N] [--embed N] [--hidden N] [--layers N] [--dropout P] [--clip NORM]
// Embedding -> dropout -> LSTM -> dropout -> Linear decoder, truncated backpropagation through time with
// the hidden state carried (detached) across batches, gradient clipping, Adam with a cosine schedule over
// the epochs. With ptb.train.txt in DIR it trains on train and evaluates on valid; with only ptb.valid.txt
// and ptb.test.txt it trains on valid and evaluates on test, and says so. Ends with the test perplexity
// next to an add-one smoothed unigram model's.
#include <needle/needle.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "training_utils.h"

namespace fs = std::filesystem;
using needle::Tensor;
namespace nn = needle::nn;
namespace data = needle::data;

namespace {

constexpr std::int64_t kEvalBatchSize = 10;

using State = std::pair<Tensor, Tensor>;

// Word ids (seq_len, batch) -> logits (seq_len * batch, vocab) and the final (h, c). Children are named
// as the Python example's attributes, so both write the same checkpoint keys.
class LstmLanguageModel final : public nn::Module {
 public:
  LstmLanguageModel(std::int64_t vocab_size, std::int64_t embed, std::int64_t hidden, std::int64_t layers,
                    double dropout)
      : hidden_(hidden) {
    embedding_ = register_module("embedding", std::make_shared<nn::Embedding>(vocab_size, embed));
    dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(dropout));
    lstm_ = register_module("lstm", std::make_shared<nn::LSTM>(embed, hidden, layers));
    decoder_ = register_module("decoder", std::make_shared<nn::Linear>(hidden, vocab_size));
  }
  using Module::forward;
  std::pair<Tensor, State> forward(const Tensor& x, const State& state) {
    const std::int64_t rows = x.shape()[0] * x.shape()[1];
    auto [output, next] = (*lstm_)(dropout_->forward(embedding_->forward(x)), state);
    const Tensor logits = decoder_->forward(needle::ops::reshape(dropout_->forward(output), {rows, hidden_}));
    return {logits, next};
  }
  [[nodiscard]] std::string name() const override { return "LSTMLanguageModel"; }

 private:
  std::int64_t hidden_;
  std::shared_ptr<nn::Embedding> embedding_;
  std::shared_ptr<nn::Dropout> dropout_;
  std::shared_ptr<nn::LSTM> lstm_;
  std::shared_ptr<nn::Linear> decoder_;
};

// The state's values without their history: backpropagation stops at the batch boundary.
State detach(const State& state) { return {state.first.detach(), state.second.detach()}; }

// Mean cross entropy per token over `ids`, the hidden state carried through the whole text.
double evaluate(LstmLanguageModel& model, const std::vector<std::int64_t>& ids, std::int64_t bptt) {
  model.eval();
  const needle::NoGradGuard no_grad;
  const needle::NDArray batches = data::batchify(ids, kEvalBatchSize);
  nn::SoftmaxLoss loss_fn;
  double total = 0.0;
  std::int64_t tokens = 0;
  State state;
  for (std::int64_t i = 0; i < batches.shape()[0] - 1; i += bptt) {
    const auto [x, y] = data::get_batch(batches, i, bptt);
    const auto [logits, next] = model.forward(Tensor(x), state);
    state = next;
    const std::int64_t n = y.shape()[0];
    total += loss_fn(logits, Tensor(y)).value().item().to<double>() * static_cast<double>(n);
    tokens += n;
  }
  return tokens > 0 ? total / static_cast<double>(tokens) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const examples::Args args(
        argc, argv, "train_lstm_lm",
        {"--data DIR", "--epochs N", "--batch-size N", "--seq-len N", "--bptt N", "--lr LR", "--embed N", "--hidden N",
         "--layers N", "--dropout P", "--clip NORM", "--max-steps N", "--out DIR", "--resume", "--seed N"});
    const fs::path data_dir = args.get("data", "/work/shared/data/ptb");
    const fs::path out = args.get("out", "out/lstm_lm-cpp");
    const int epochs = args.get_int("epochs", 4);
    const std::int64_t batch_size = args.get_int("batch-size", 20);
    const std::int64_t seq_len = args.get_int("seq-len", args.get_int("bptt", 35));
    const double lr = args.get_double("lr", 2e-3);
    const std::int64_t embed = args.get_int("embed", 200);
    const std::int64_t hidden = args.get_int("hidden", 200);
    const std::int64_t layers = args.get_int("layers", 2);
    const double dropout = args.get_double("dropout", 0.3);
    const double clip = args.get_double("clip", 0.5);
    const int max_steps = args.get_int("max-steps", 0);
    fs::create_directories(out);
    needle::manual_seed(static_cast<std::uint64_t>(args.get_int("seed", 0)));

    const examples::LanguageSplits splits = examples::language_splits(data_dir);
    std::printf(
        "PTB from %s: vocabulary %lld words; %s %zu tokens (training), %s %zu (per-epoch evaluation), "
        "test %zu\n",
        data_dir.c_str(), static_cast<long long>(splits.vocab_size), splits.train_name.c_str(), splits.train.size(),
        splits.eval_name.c_str(), splits.eval.size(), splits.test.size());
    if (!splits.note.empty()) std::printf("%s\n", splits.note.c_str());
    const needle::NDArray train_batches = data::batchify(splits.train, batch_size);
    std::vector<std::int64_t> positions;
    for (std::int64_t i = 0; i < train_batches.shape()[0] - 1; i += seq_len) positions.push_back(i);
    if (max_steps > 0 && static_cast<std::size_t>(max_steps) < positions.size()) positions.resize(max_steps);

    LstmLanguageModel model(splits.vocab_size, embed, hidden, layers, dropout);
    nn::SoftmaxLoss loss_fn;
    needle::optim::Adam optimizer(model.parameters(), lr);
    needle::optim::CosineAnnealingLR scheduler(optimizer, epochs);
    std::int64_t n_params = 0;
    for (const Tensor& p : model.parameters()) n_params += p.value().size();
    std::printf(
        "model: Embedding(%lld, %lld) -> LSTM(%lld, %lld) x %lld -> Linear(%lld, %lld), dropout %g, %lld "
        "parameters; Adam lr %g (cosine), clip %g, batch %lld, bptt %lld\n",
        static_cast<long long>(splits.vocab_size), static_cast<long long>(embed), static_cast<long long>(embed),
        static_cast<long long>(hidden), static_cast<long long>(layers), static_cast<long long>(hidden),
        static_cast<long long>(splits.vocab_size), dropout, static_cast<long long>(n_params), lr, clip,
        static_cast<long long>(batch_size), static_cast<long long>(seq_len));

    const fs::path checkpoint = out / "checkpoint.safetensors";
    examples::MetricsCsv metrics(out / "metrics.csv", {"epoch", "train_loss", "train_ppl", "eval_loss", "eval_ppl",
                                                       "lr", "seconds", "tokens_per_s"});
    int first_epoch = 0;
    if (args.flag("resume") && fs::exists(checkpoint)) {
      const examples::Resumed resumed = examples::load_checkpoint(model, optimizer, scheduler, checkpoint);
      first_epoch = resumed.epoch;
      if (!resumed.training_state_restored) {
        for (int e = 0; e < first_epoch; ++e) scheduler.step();
      }
      std::printf("resumed from %s after epoch %d\n", checkpoint.c_str(), first_epoch);
    }

    double eval_loss = std::numeric_limits<double>::quiet_NaN();
    for (int epoch = first_epoch; epoch < epochs; ++epoch) {
      model.train();
      const double epoch_lr = optimizer.lr();
      examples::Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs),
                                  static_cast<std::int64_t>(positions.size()), "tokens");
      State state;
      for (const std::int64_t i : positions) {
        const auto [x, y] = data::get_batch(train_batches, i, seq_len);
        const auto [logits, next] = model.forward(Tensor(x), state);
        const Tensor loss = loss_fn(logits, Tensor(y));
        optimizer.reset_grad();
        loss.backward();
        needle::optim::clip_grad_norm(model.parameters(), clip);
        optimizer.step();
        state = detach(next);
        progress.update(loss.value().item().to<double>(), y.shape()[0]);
      }
      progress.finish();
      scheduler.step();
      const double seconds = progress.seconds();
      const double train_loss = progress.mean_loss();
      const double speed = static_cast<double>(progress.samples()) / seconds;
      eval_loss = evaluate(model, splits.eval, seq_len);
      std::printf("epoch %d: train loss %.4f (ppl %.1f) | %s loss %.4f ppl %.1f | %.1f s, %.0f tokens/s\n", epoch + 1,
                  train_loss, std::exp(train_loss), splits.eval_name.c_str(), eval_loss, std::exp(eval_loss), seconds,
                  speed);
      std::fflush(stdout);
      metrics.append({static_cast<double>(epoch + 1), train_loss, std::exp(train_loss), eval_loss, std::exp(eval_loss),
                      epoch_lr, seconds, speed});
      examples::save_checkpoint(model, optimizer, scheduler, checkpoint, epoch + 1);
    }

    const fs::path png = out / "loss.png";
    examples::plot_csv_png(metrics.path(), png, {"train_loss", "eval_loss"},
                           "2-layer LSTM on PTB");  // prints where the picture went
    std::printf("metrics: %s; checkpoint: %s\n", metrics.path().c_str(), checkpoint.c_str());
    // The per-epoch evaluation already ran on the test text when there is no separate validation text.
    const double test_loss =
        splits.eval_is_test && !std::isnan(eval_loss) ? eval_loss : evaluate(model, splits.test, seq_len);
    const double test_ppl = std::exp(test_loss);
    const double unigram = examples::unigram_perplexity(splits.train, splits.test, splits.vocab_size);
    // Lower perplexity is better: say by what factor the model beats (or trails) the baseline.
    const bool beats = test_ppl <= unigram;
    std::printf("test perplexity: %.1f (unigram baseline %.1f: %.2fx %s)\n", test_ppl, unigram,
                beats ? unigram / test_ppl : test_ppl / unigram, beats ? "lower" : "higher");
    return 0;
  } catch (const needle::Error& e) {
    std::cerr << "train_lstm_lm: " << e.what() << "\n";
    return 1;
  }
}
