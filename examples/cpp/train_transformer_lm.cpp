// Trains a small decoder-only transformer language model on Penn Treebank text with Needle's C++ API: the
// same model, optimizer, schedule and flags as examples/python/train_transformer_lm.py.
//   train_transformer_lm [--data DIR] [--epochs N] [--batch-size N] [--seq-len N] [--lr LR] [--out DIR]
//                        [--resume] [--seed N] [--max-steps N] [--dim N] [--layers N] [--heads N] [--mlp N]
//                        [--dropout P] [--weight-decay WD] [--warmup N] [--clip NORM]
// nn::Transformer: word plus learned position embeddings, pre-LayerNorm blocks with causal self-attention
// and a GELU MLP, a final LayerNorm and a Linear head. Each batch holds batch-size windows of seq-len
// consecutive words; AdamW with a linear warm-up then a cosine decay, per step. With ptb.train.txt in DIR
// it trains on train and evaluates on valid; with only ptb.valid.txt and ptb.test.txt it trains on valid
// and evaluates on test, and says so. Ends with the test perplexity next to an add-one smoothed unigram
// model's.
#include <needle/needle.h>

#include <algorithm>
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
using needle::NDArray;
using needle::Tensor;
namespace nn = needle::nn;
namespace data = needle::data;

int main(int argc, char** argv) {
  try {
    const examples::Args args(argc, argv, "train_transformer_lm",
                              {"--data DIR", "--epochs N", "--batch-size N", "--seq-len N", "--bptt N", "--lr LR",
                               "--weight-decay WD", "--warmup N", "--dim N", "--layers N", "--heads N", "--mlp N",
                               "--dropout P", "--clip NORM", "--max-steps N", "--out DIR", "--resume", "--seed N"});
    const fs::path data_dir = args.get("data", "/work/shared/data/ptb");
    const fs::path out = args.get("out", "out/transformer_lm-cpp");
    const int epochs = args.get_int("epochs", 6);
    const std::int64_t batch_size = args.get_int("batch-size", 8);
    const std::int64_t seq_len = args.get_int("seq-len", args.get_int("bptt", 64));
    const double lr = args.get_double("lr", 2e-3);
    const double weight_decay = args.get_double("weight-decay", 0.1);
    const std::int64_t dim = args.get_int("dim", 128);
    const std::int64_t layers = args.get_int("layers", 2);
    const std::int64_t heads = args.get_int("heads", 4);
    const std::int64_t mlp = args.get_int("mlp", 512);
    const double dropout = args.get_double("dropout", 0.1);
    const double clip = args.get_double("clip", 1.0);
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
    const NDArray train_batches = data::batchify(splits.train, batch_size);
    std::vector<std::int64_t> positions;
    for (std::int64_t i = 0; i < train_batches.shape()[0] - 1; i += seq_len) positions.push_back(i);
    if (max_steps > 0 && static_cast<std::size_t>(max_steps) < positions.size()) positions.resize(max_steps);

    nn::Transformer model(splits.vocab_size, dim, layers, heads, mlp, seq_len, dropout);
    nn::SoftmaxLoss loss_fn;
    needle::optim::AdamW optimizer(model.parameters(), lr, 0.9, 0.999, 1e-8, weight_decay);
    const auto steps_per_epoch = static_cast<std::int64_t>(positions.size());
    const std::int64_t total_steps = epochs * steps_per_epoch;
    const std::int64_t warmup =
        std::max<std::int64_t>(1, std::min<std::int64_t>(args.get_int("warmup", 100), total_steps / 10));
    auto cosine =
        std::make_shared<needle::optim::CosineAnnealingLR>(optimizer, std::max<std::int64_t>(total_steps - warmup, 1));
    needle::optim::LinearWarmup scheduler(optimizer, warmup, 0.1, cosine);
    std::int64_t n_params = 0;
    for (const Tensor& p : model.parameters()) n_params += p.value().size();
    std::printf(
        "model: Transformer(vocab %lld, dim %lld, %lld layers, %lld heads, MLP %lld, context %lld, dropout "
        "%g), %lld parameters; AdamW lr %g wd %g, %lld warm-up steps then cosine over %lld, clip %g, batch "
        "%lld\n",
        static_cast<long long>(splits.vocab_size), static_cast<long long>(dim), static_cast<long long>(layers),
        static_cast<long long>(heads), static_cast<long long>(mlp), static_cast<long long>(seq_len), dropout,
        static_cast<long long>(n_params), lr, weight_decay, static_cast<long long>(warmup),
        static_cast<long long>(total_steps), clip, static_cast<long long>(batch_size));

    const fs::path checkpoint = out / "checkpoint.safetensors";
    examples::MetricsCsv metrics(out / "metrics.csv", {"epoch", "train_loss", "train_ppl", "eval_loss", "eval_ppl",
                                                       "lr", "seconds", "tokens_per_s"});
    int first_epoch = 0;
    if (args.flag("resume") && fs::exists(checkpoint)) {
      const examples::Resumed resumed = examples::load_checkpoint(model, optimizer, scheduler, checkpoint);
      first_epoch = resumed.epoch;
      if (!resumed.training_state_restored) {
        for (std::int64_t s = 0; s < first_epoch * steps_per_epoch; ++s) scheduler.step();
      }
      std::printf("resumed from %s after epoch %d\n", checkpoint.c_str(), first_epoch);
    }

    double eval_loss = std::numeric_limits<double>::quiet_NaN();
    for (int epoch = first_epoch; epoch < epochs; ++epoch) {
      model.train();
      examples::Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs), steps_per_epoch,
                                  "tokens");
      for (const std::int64_t i : positions) {
        const auto [x, y] = examples::batch_first(train_batches, i, seq_len);
        const Tensor logits = needle::ops::reshape(model(x), {y.shape()[0], splits.vocab_size});
        const Tensor loss = loss_fn(logits, y);
        optimizer.reset_grad();
        loss.backward();
        needle::optim::clip_grad_norm(model.parameters(), clip);
        optimizer.step();
        scheduler.step();
        progress.update(loss.value().item().to<double>(), y.shape()[0]);
      }
      progress.finish();
      const double seconds = progress.seconds();
      const double train_loss = progress.mean_loss();
      const double speed = static_cast<double>(progress.samples()) / seconds;
      eval_loss = examples::evaluate_language_model(model, splits.eval, seq_len);
      std::printf("epoch %d: train loss %.4f (ppl %.1f) | %s loss %.4f ppl %.1f | %.1f s, %.0f tokens/s\n", epoch + 1,
                  train_loss, std::exp(train_loss), splits.eval_name.c_str(), eval_loss, std::exp(eval_loss), seconds,
                  speed);
      std::fflush(stdout);
      // The learning rate at the end of the epoch, as the Python example logs it.
      metrics.append({static_cast<double>(epoch + 1), train_loss, std::exp(train_loss), eval_loss, std::exp(eval_loss),
                      optimizer.lr(), seconds, speed});
      examples::save_checkpoint(model, optimizer, scheduler, checkpoint, epoch + 1);
    }

    const fs::path png = out / "loss.png";
    examples::plot_csv_png(metrics.path(), png, {"train_loss", "eval_loss"},
                           "Transformer on PTB");  // prints where the picture went
    std::printf("metrics: %s; checkpoint: %s\n", metrics.path().c_str(), checkpoint.c_str());
    // The per-epoch evaluation already ran on the test text when there is no separate validation text.
    const double test_loss = splits.eval_is_test && !std::isnan(eval_loss)
                                 ? eval_loss
                                 : examples::evaluate_language_model(model, splits.test, seq_len);
    const double test_ppl = std::exp(test_loss);
    const double unigram = examples::unigram_perplexity(splits.train, splits.test, splits.vocab_size);
    // Lower perplexity is better: say by what factor the model beats (or trails) the baseline.
    const bool beats = test_ppl <= unigram;
    std::printf("test perplexity: %.1f (unigram baseline %.1f: %.2fx %s)\n", test_ppl, unigram,
                beats ? unigram / test_ppl : test_ppl / unigram, beats ? "lower" : "higher");
    return 0;
  } catch (const needle::Error& e) {
    std::cerr << "train_transformer_lm: " << e.what() << "\n";
    return 1;
  }
}
