// Data-parallel training with needle::dist from C++: the README's MLP on Fashion-MNIST, or the transformer
// language model on Penn Treebank, on several processes (the same as examples/python/train_ddp.py).
//   mpirun -np 2 train_ddp [--model mlp|transformer] [--data DIR] [--epochs N] [--batch-size N]
//                          [--max-steps N] [--threads N] [--out DIR] [--seed N]
// Every rank builds the model; DistributedDataParallel copies rank 0's weights to all of them and averages
// the gradients during backward, so training equals one process on the whole global batch. Each rank reads
// its share of every global batch (a DistributedSampler's shard of the images, or its columns of the token
// stream). Rank 0 prints progress, evaluates and saves OUT/checkpoint.safetensors; every rank prints its step
// time and the time it waited for the all-reduce at the end of each epoch (stragglers make the others wait).
#include <needle/core/threads.h>
#include <needle/dist/ddp.h>
#include <needle/dist/sampler.h>
#include <needle/needle.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "training_utils.h"

namespace fs = std::filesystem;
namespace dist = needle::dist;
namespace nn = needle::nn;
using needle::NDArray;
using needle::Tensor;

namespace {

// Step time and all-reduce waiting time of this rank over an epoch.
struct RankTiming {
  double step_seconds = 0;
  double wait_seconds = 0;
  std::int64_t steps = 0;
  void add(double seconds, const dist::DistributedDataParallel& ddp) {
    step_seconds += seconds;
    wait_seconds += ddp.reducer().stats().last_wait_seconds;
    ++steps;
  }
  // Every rank's line, printed by rank 0 in rank order.
  void report(dist::ProcessGroup& group) {
    const NDArray mine = NDArray::from_vector<double>({step_seconds, wait_seconds, static_cast<double>(steps)}, {3},
                                                      needle::cpu_device());
    const std::vector<double> all = group.all_gather(mine).to_vector<double>();
    if (group.rank() == 0) {
      for (int r = 0; r < group.size(); ++r) {
        const double* v = all.data() + 3 * r;
        std::printf("  rank %d: %.1f ms/step, %.2f ms/step waiting for the all-reduce\n", r, 1e3 * v[0] / v[2],
                    1e3 * v[1] / v[2]);
      }
      std::fflush(stdout);
    }
    *this = {};
  }
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The sum over the ranks of `values`.
std::vector<double> summed(dist::ProcessGroup& group, const std::vector<double>& values) {
  const NDArray array = NDArray::from_vector(values, {static_cast<std::int64_t>(values.size())}, needle::cpu_device());
  group.all_reduce(array, dist::ReduceOp::Sum);
  return array.to_vector<double>();
}

int train_mlp(const examples::Args& args, dist::ProcessGroup& group, const fs::path& out) {
  const fs::path data = args.get("data", "/usr/share/datasets/fashion-mnist");
  if (!fs::is_directory(data)) {
    std::cerr << data << " does not exist: install Debian's dataset-fashion-mnist or pass --data DIR\n";
    return 2;
  }
  const int epochs = args.get_int("epochs", 10);
  const std::int64_t per_rank = args.get_int("batch-size", 128) / group.size();
  const int max_steps = args.get_int("max-steps", 0);
  auto train_set = std::make_shared<needle::data::MNISTDataset>(examples::idx_file(data, "train-images-idx3-ubyte"),
                                                                examples::idx_file(data, "train-labels-idx1-ubyte"));
  auto test_set = std::make_shared<needle::data::MNISTDataset>(examples::idx_file(data, "t10k-images-idx3-ubyte"),
                                                               examples::idx_file(data, "t10k-labels-idx1-ubyte"));
  dist::DistributedSampler sampler(train_set->size(), group.size(), group.rank(), /*shuffle=*/true,
                                   static_cast<std::uint64_t>(args.get_int("seed", 0)));
  needle::data::DataLoader loader(train_set, per_rank, false, false, /*num_workers=*/1);
  needle::data::DataLoader test_loader(test_set, 1000);

  const double dropout = 0.2;
  auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(784, 512), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Dropout>(dropout), std::make_shared<nn::Linear>(512, 256), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Dropout>(dropout), std::make_shared<nn::Linear>(256, 10)});
  dist::DistributedDataParallel ddp(model);
  nn::SoftmaxLoss loss_fn;
  needle::optim::Adam optimizer(ddp.parameters(), args.get_double("lr", 1e-3));
  needle::optim::CosineAnnealingLR scheduler(optimizer, epochs);
  if (group.rank() == 0) {
    std::printf("%d ranks x batch %lld; %lld steps per epoch\n", group.size(), static_cast<long long>(per_rank),
                static_cast<long long>(sampler.size() / per_rank + (sampler.size() % per_rank != 0)));
  }
  double accuracy = 0;
  RankTiming timing;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    sampler.set_epoch(epoch);
    ddp.train();
    std::vector<double> loss_and_count{0, 0};
    needle::data::Epoch batches = loader.epoch(sampler.indices());
    for (int step = 0; max_steps <= 0 || step < max_steps; ++step) {
      const auto start = std::chrono::steady_clock::now();
      const std::optional<needle::data::Batch> batch = batches.next();
      if (!batch) break;
      const Tensor loss = loss_fn(ddp(Tensor((*batch)[0])), Tensor((*batch)[1]));
      optimizer.reset_grad();
      loss.backward();
      optimizer.step();
      const auto n = static_cast<double>((*batch)[1].shape()[0]);
      loss_and_count[0] += loss.value().item().to<double>() * n;
      loss_and_count[1] += n;
      timing.add(seconds_since(start), ddp);
    }
    scheduler.step();
    const std::vector<double> totals = summed(group, loss_and_count);
    NDArray result = NDArray::zeros({2}, needle::DType::Float64, needle::cpu_device());
    if (group.rank() == 0) {
      const auto [test_loss, test_acc] = examples::evaluate_classifier(*model, test_loader, loss_fn, 0);
      result = NDArray::from_vector<double>({test_loss, test_acc}, {2}, needle::cpu_device());
    }
    group.broadcast(result, 0);  // the others wait here for rank 0's evaluation
    accuracy = result.to_vector<double>()[1];
    if (group.rank() == 0) {
      std::printf("epoch %d: train loss %.4f | test loss %.4f acc %.2f%%\n", epoch + 1, totals[0] / totals[1],
                  result.to_vector<double>()[0], 100 * accuracy);
    }
    timing.report(group);
  }
  if (group.rank() == 0) {
    needle::io::save_state_dict((out / "checkpoint.safetensors").string(), *model);
    std::printf("final test accuracy: %.2f%%\n", 100 * accuracy);
  }
  return 0;
}

int train_transformer(const examples::Args& args, dist::ProcessGroup& group, const fs::path& out) {
  const examples::LanguageSplits splits = examples::language_splits(args.get("data", "/work/shared/data/ptb"));
  const int epochs = args.get_int("epochs", 6);
  const std::int64_t per_rank = args.get_int("batch-size", 8) / group.size();
  const std::int64_t seq_len = 64;
  const int max_steps = args.get_int("max-steps", 0);
  // The token stream cut into global-batch columns; this rank trains on its own columns.
  const NDArray stream = needle::data::batchify(splits.train, per_rank * group.size());
  const NDArray mine = stream
                           .index({needle::IndexItem::range(),
                                   needle::IndexItem::range(group.rank() * per_rank, (group.rank() + 1) * per_rank)})
                           .compact();
  std::vector<std::int64_t> positions;
  for (std::int64_t i = 0; i < mine.shape()[0] - 1; i += seq_len) positions.push_back(i);
  if (max_steps > 0 && static_cast<std::size_t>(max_steps) < positions.size()) positions.resize(max_steps);

  auto model = std::make_shared<nn::Transformer>(splits.vocab_size, 128, 2, 4, 512, seq_len, 0.1);
  dist::DistributedDataParallel ddp(model);
  nn::SoftmaxLoss loss_fn;
  needle::optim::AdamW optimizer(ddp.parameters(), 2e-3, 0.9, 0.999, 1e-8, 0.1);
  const auto total_steps = static_cast<std::int64_t>(epochs * positions.size());
  const std::int64_t warmup = std::max<std::int64_t>(1, std::min<std::int64_t>(100, total_steps / 10));
  auto cosine =
      std::make_shared<needle::optim::CosineAnnealingLR>(optimizer, std::max<std::int64_t>(total_steps - warmup, 1));
  needle::optim::LinearWarmup scheduler(optimizer, warmup, 0.1, cosine);
  if (group.rank() == 0) {
    std::printf("PTB: %s %zu tokens; %d ranks x batch %lld; %zu steps per epoch\n", splits.train_name.c_str(),
                splits.train.size(), group.size(), static_cast<long long>(per_rank), positions.size());
  }
  double perplexity = NAN;
  RankTiming timing;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    ddp.train();
    std::vector<double> loss_and_count{0, 0};
    for (const std::int64_t i : positions) {
      const auto start = std::chrono::steady_clock::now();
      const auto [x, y] = examples::batch_first(mine, i, seq_len);
      const Tensor loss = loss_fn(needle::ops::reshape(ddp(x), {y.shape()[0], splits.vocab_size}), y);
      optimizer.reset_grad();
      loss.backward();
      needle::optim::clip_grad_norm(ddp.parameters(), 1.0);
      optimizer.step();
      scheduler.step();
      const auto n = static_cast<double>(y.shape()[0]);
      loss_and_count[0] += loss.value().item().to<double>() * n;
      loss_and_count[1] += n;
      timing.add(seconds_since(start), ddp);
    }
    const std::vector<double> totals = summed(group, loss_and_count);
    NDArray result = NDArray::zeros({1}, needle::DType::Float64, needle::cpu_device());
    if (group.rank() == 0) {
      result = NDArray::from_vector<double>({examples::evaluate_language_model(*model, splits.test, seq_len)}, {1},
                                            needle::cpu_device());
    }
    group.broadcast(result, 0);
    perplexity = std::exp(result.to_vector<double>()[0]);
    if (group.rank() == 0) {
      std::printf("epoch %d: train ppl %.1f | test ppl %.1f\n", epoch + 1, std::exp(totals[0] / totals[1]), perplexity);
    }
    timing.report(group);
  }
  if (group.rank() == 0) {
    needle::io::save_state_dict((out / "checkpoint.safetensors").string(), *model);
    std::printf("final test perplexity: %.1f\n", perplexity);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const examples::Args args(argc, argv, "train_ddp",
                              {"--model mlp|transformer", "--data DIR", "--epochs N", "--batch-size N", "--lr X",
                               "--max-steps N", "--threads N", "--out DIR", "--seed N"});
    dist::ProcessGroup& group = dist::init();
    if (args.get_int("threads", 0) > 0) needle::set_num_threads(args.get_int("threads", 0));
    const std::string model = args.get("model", "mlp");
    const fs::path out = args.get("out", "out/ddp_" + model + "-cpp");
    fs::create_directories(out);
    // Ranks differ in their dropout masks; the weights are rank 0's (DistributedDataParallel copies them).
    needle::manual_seed(static_cast<std::uint64_t>(args.get_int("seed", 0) + group.rank()));
    if (model == "mlp") return train_mlp(args, group, out);
    if (model == "transformer") return train_transformer(args, group, out);
    std::cerr << "train_ddp: --model must be mlp or transformer, got " << model << "\n";
    return 2;
  } catch (const needle::Error& e) {
    // Ends every rank: the others would otherwise wait for this one in a collective.
    dist::abort_job(std::string("train_ddp: ") + e.what());
  }
}
