// Trains an MLP on Fashion-MNIST with Needle's C++ API: the same model, optimizer and schedule as
// examples/python/train_mlp.py.
//   train_mlp [--data DIR] [--epochs N] [--batch-size N] [--lr X] [--out DIR] [--seed N] [--resume]
// Shows a progress line with the running loss and speed, prints a summary per epoch, appends metrics to
// OUT/metrics.csv, saves OUT/checkpoint.safetensors after every epoch (--resume continues from it) and
// draws OUT/loss.png.
#include <needle/needle.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "training_utils.h"

namespace fs = std::filesystem;
using needle::Tensor;
namespace nn = needle::nn;

namespace {

std::shared_ptr<nn::Sequential> make_model() {
  const double dropout = 0.2;
  return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(784, 512), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Dropout>(dropout), std::make_shared<nn::Linear>(512, 256), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Dropout>(dropout), std::make_shared<nn::Linear>(256, 10)});
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const examples::Args args(
        argc, argv, "train_mlp",
        {"--data DIR", "--epochs N", "--batch-size N", "--lr X", "--out DIR", "--seed N", "--resume"});
    const fs::path data = args.get("data", "/usr/share/datasets/fashion-mnist");
    const fs::path out = args.get("out", "out/mlp-cpp");
    const int epochs = args.get_int("epochs", 10);
    const int batch_size = args.get_int("batch-size", 128);
    if (!fs::is_directory(data)) {
      std::cerr << data << " does not exist: install Debian's dataset-fashion-mnist or pass --data DIR\n";
      return 2;
    }
    fs::create_directories(out);
    needle::manual_seed(static_cast<std::uint64_t>(args.get_int("seed", 0)));

    auto train_set = std::make_shared<needle::data::MNISTDataset>(examples::idx_file(data, "train-images-idx3-ubyte"),
                                                                  examples::idx_file(data, "train-labels-idx1-ubyte"));
    auto test_set = std::make_shared<needle::data::MNISTDataset>(examples::idx_file(data, "t10k-images-idx3-ubyte"),
                                                                 examples::idx_file(data, "t10k-labels-idx1-ubyte"));
    needle::data::DataLoader train_loader(train_set, batch_size, /*shuffle=*/true, false, /*num_workers=*/1);
    needle::data::DataLoader test_loader(test_set, 1000);
    std::cout << "Fashion-MNIST from " << data << ": " << train_set->size() << " training and " << test_set->size()
              << " test images\n";

    const auto model = make_model();
    nn::SoftmaxLoss loss_fn;
    needle::optim::Adam optimizer(model->parameters(), args.get_double("lr", 1e-3));
    needle::optim::CosineAnnealingLR scheduler(optimizer, epochs);

    const fs::path checkpoint = out / "checkpoint.safetensors";
    examples::MetricsCsv metrics(out / "metrics.csv",
                                 {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"});
    int first_epoch = 0;
    if (args.flag("resume") && fs::exists(checkpoint)) {
      const examples::Resumed resumed = examples::load_checkpoint(*model, optimizer, scheduler, checkpoint);
      first_epoch = resumed.epoch;
      if (!resumed.training_state_restored) {
        for (int e = 0; e < first_epoch; ++e) scheduler.step();
      }
      std::cout << "resumed from " << checkpoint << " after epoch " << first_epoch << "\n";
    }

    double test_acc = 0.0;
    for (int epoch = first_epoch; epoch < epochs; ++epoch) {
      model->train();
      examples::Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs),
                                  train_loader.size(), "images");
      std::int64_t correct = 0;
      for (const needle::data::Batch& batch : train_loader) {
        const Tensor logits = (*model)(Tensor(batch[0]));
        const Tensor loss = loss_fn(logits, Tensor(batch[1]));
        optimizer.reset_grad();
        loss.backward();
        optimizer.step();
        correct += examples::count_correct(logits, batch[1]);
        progress.update(loss.value().item().to<double>(), batch[1].shape()[0]);
      }
      progress.finish();
      scheduler.step();
      const double seconds = progress.seconds();

      const auto [test_loss, accuracy] = examples::evaluate_classifier(*model, test_loader, loss_fn, /*max_batches=*/0);
      test_acc = accuracy;
      const double train_loss = progress.mean_loss();
      const double train_acc = static_cast<double>(correct) / static_cast<double>(progress.samples());
      std::printf("epoch %d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f s\n", epoch + 1, train_loss,
                  100 * train_acc, test_loss, 100 * test_acc, seconds);
      metrics.append({static_cast<double>(epoch + 1), train_loss, train_acc, test_loss, test_acc, seconds});
      examples::save_checkpoint(*model, optimizer, scheduler, checkpoint, epoch + 1);
    }
    examples::plot_csv_png(metrics.path(), out / "loss.png", {"train_loss", "test_loss"}, "MLP on Fashion-MNIST");
    std::cout << "metrics: " << metrics.path() << "; checkpoint: " << checkpoint << "\n";
    std::printf("final test accuracy: %.2f%%\n", 100 * test_acc);
    return 0;
  } catch (const needle::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
