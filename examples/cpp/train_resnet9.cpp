// Trains the course's ResNet-9 on CIFAR-10 with Needle's C++ API: the same model, augmentation, optimizers,
// schedule and flags as examples/python/train_resnet9.py.
//   train_resnet9 --data DIR [--epochs N] [--batch-size N] [--optimizer adam|sgd] [--lr X] [--weight-decay X]
//                 [--out DIR] [--seed N] [--resume] [--max-steps N]
// DIR is a cifar-10-batches-py folder (examples/python/make_fake_cifar10.py writes a small synthetic one).
// Training images are augmented with RandomFlipHorizontal and RandomCrop(4). Model (ConvBN = Conv with
// padding k/2, BatchNorm2d, ReLU):
//   ConvBN(3,16,k7,s4) ConvBN(16,32,k3,s2) Residual(ConvBN(32,32,k3,s1) ConvBN(32,32,k3,s1))
//   ConvBN(32,64,k3,s2) ConvBN(64,128,k3,s2) Residual(ConvBN(128,128,k3,s1) ConvBN(128,128,k3,s1))
//   Flatten Linear(128,128) ReLU Linear(128,10)
// Adam (or SGD with momentum 0.9) with a cosine schedule. Shows a progress line with the running loss and
// speed, prints a summary per epoch, appends metrics to OUT/metrics.csv, saves OUT/checkpoint.safetensors
// after every epoch (--resume continues from it) and draws OUT/loss.png. --max-steps N trains on at most N
// batches per epoch and tests on at most N (quick checks).
#include <needle/needle.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "training_utils.h"

namespace fs = std::filesystem;
using needle::Tensor;
namespace nn = needle::nn;

namespace {

using Modules = std::vector<std::shared_ptr<nn::Module>>;

std::shared_ptr<nn::Module> conv_bn(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
                                    std::int64_t stride) {
  return std::make_shared<nn::Sequential>(Modules{
      std::make_shared<nn::Conv>(in_channels, out_channels, kernel_size, stride),
      std::make_shared<nn::BatchNorm2d>(out_channels),
      std::make_shared<nn::ReLU>(),
  });
}

std::shared_ptr<nn::Module> residual(std::shared_ptr<nn::Module> first, std::shared_ptr<nn::Module> second) {
  return std::make_shared<nn::Residual>(std::make_shared<nn::Sequential>(Modules{std::move(first), std::move(second)}));
}

std::shared_ptr<nn::Sequential> make_model() {
  return std::make_shared<nn::Sequential>(Modules{
      conv_bn(3, 16, 7, 4),   // 32x32 -> 8x8
      conv_bn(16, 32, 3, 2),  // 4x4
      residual(conv_bn(32, 32, 3, 1), conv_bn(32, 32, 3, 1)),
      conv_bn(32, 64, 3, 2),   // 2x2
      conv_bn(64, 128, 3, 2),  // 1x1
      residual(conv_bn(128, 128, 3, 1), conv_bn(128, 128, 3, 1)),
      std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(128, 128),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(128, 10),
  });
}

std::unique_ptr<needle::optim::Optimizer> make_optimizer(const std::string& name, const std::vector<Tensor>& params,
                                                         double lr, double weight_decay) {
  if (name == "sgd") return std::make_unique<needle::optim::SGD>(params, lr, /*momentum=*/0.9, weight_decay);
  if (name == "adam") return std::make_unique<needle::optim::Adam>(params, lr, 0.9, 0.999, 1e-8, weight_decay);
  throw needle::ValueError("train_resnet9: --optimizer must be adam or sgd, got '" + name + "'");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const examples::Args args(argc, argv, "train_resnet9",
                              {"--data DIR", "--epochs N", "--batch-size N", "--optimizer NAME", "--lr X",
                               "--weight-decay X", "--out DIR", "--seed N", "--resume", "--max-steps N"});
    const fs::path data = args.get("data", "");
    const fs::path out = args.get("out", "out/resnet9-cpp");
    const int epochs = args.get_int("epochs", 10);
    const int batch_size = args.get_int("batch-size", 128);
    const std::string optimizer_name = args.get("optimizer", "adam");
    const double lr = args.get_double("lr", optimizer_name == "sgd" ? 0.05 : 1e-3);
    const double weight_decay = args.get_double("weight-decay", 1e-3);
    const std::int64_t max_steps = args.get_int("max-steps", 0);
    if (data.empty() || !fs::is_directory(data)) {
      std::cerr << "train_resnet9: '" << data.string()
                << "' is not a folder: pass --data with the cifar-10-batches-py folder\n";
      return 2;
    }
    fs::create_directories(out);
    // Seeds the initial weights, the loader's shuffles and the augmentation.
    needle::manual_seed(static_cast<std::uint64_t>(args.get_int("seed", 0)));

    const needle::data::Transforms augment = {std::make_shared<needle::data::RandomFlipHorizontal>(0.5),
                                              std::make_shared<needle::data::RandomCrop>(4)};
    auto train_set = std::make_shared<needle::data::CIFAR10Dataset>(data.string(), /*train=*/true, augment);
    auto test_set = std::make_shared<needle::data::CIFAR10Dataset>(data.string(), /*train=*/false);
    needle::data::DataLoader train_loader(train_set, batch_size, /*shuffle=*/true, false, /*num_workers=*/1);
    needle::data::DataLoader test_loader(test_set, 500);
    std::cout << "CIFAR-10 from " << data << ": " << train_set->size() << " training and " << test_set->size()
              << " test images\n";

    const auto model = make_model();
    nn::SoftmaxLoss loss_fn;
    const auto optimizer = make_optimizer(optimizer_name, model->parameters(), lr, weight_decay);
    needle::optim::CosineAnnealingLR scheduler(*optimizer, epochs);
    std::int64_t n_params = 0;
    for (const Tensor& p : model->parameters()) n_params += p.value().size();
    std::printf("model: ResNet-9, %lld parameters, %s lr %g weight decay %g\n", static_cast<long long>(n_params),
                optimizer_name.c_str(), lr, weight_decay);

    const fs::path checkpoint = out / "checkpoint.safetensors";
    examples::MetricsCsv metrics(out / "metrics.csv",
                                 {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"});
    int first_epoch = 0;
    if (args.flag("resume") && fs::exists(checkpoint)) {
      const examples::Resumed resumed = examples::load_checkpoint(*model, *optimizer, scheduler, checkpoint);
      first_epoch = resumed.epoch;
      if (!resumed.training_state_restored) {
        for (int e = 0; e < first_epoch; ++e) scheduler.step();
      }
      std::cout << "resumed from " << checkpoint << " after epoch " << first_epoch << "\n";
    }

    const std::int64_t steps =
        max_steps > 0 ? std::min<std::int64_t>(max_steps, train_loader.size()) : train_loader.size();
    double test_acc = 0.0;
    for (int epoch = first_epoch; epoch < epochs; ++epoch) {
      model->train();
      examples::Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs), steps, "images");
      std::int64_t correct = 0;
      std::int64_t step = 0;
      for (const needle::data::Batch& batch : train_loader) {
        if (step++ >= steps) break;
        const Tensor logits = (*model)(Tensor(batch[0]));
        const Tensor loss = loss_fn(logits, Tensor(batch[1]));
        optimizer->reset_grad();
        loss.backward();
        optimizer->step();
        correct += examples::count_correct(logits, batch[1]);
        progress.update(loss.value().item().to<double>(), batch[1].shape()[0]);
      }
      progress.finish();
      scheduler.step();
      const double seconds = progress.seconds();

      const auto [test_loss, accuracy] = examples::evaluate_classifier(*model, test_loader, loss_fn, max_steps);
      test_acc = accuracy;
      const double train_loss = progress.mean_loss();
      const double train_acc = static_cast<double>(correct) / static_cast<double>(progress.samples());
      std::printf("epoch %d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f s\n", epoch + 1, train_loss,
                  100 * train_acc, test_loss, 100 * test_acc, seconds);
      metrics.append({static_cast<double>(epoch + 1), train_loss, train_acc, test_loss, test_acc, seconds});
      examples::save_checkpoint(*model, *optimizer, scheduler, checkpoint, epoch + 1);
    }
    if (first_epoch >= epochs)
      test_acc = examples::evaluate_classifier(*model, test_loader, loss_fn, max_steps).second;  // nothing left

    // Prints where the picture went (or why there is none).
    examples::plot_csv_png(metrics.path(), out / "loss.png", {"train_loss", "test_loss"}, "ResNet-9 on CIFAR-10");
    std::cout << "metrics: " << metrics.path() << "; checkpoint: " << checkpoint << "\n";
    std::printf("final test accuracy: %.2f%%\n", 100 * test_acc);
    return 0;
  } catch (const needle::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
