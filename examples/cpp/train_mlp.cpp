// Trains an MLP on Fashion-MNIST with Needle's C++ API: the same model, optimizer and schedule as
// examples/python/train_mlp.py.
//   train_mlp [--data DIR] [--epochs N] [--out DIR] [--resume]
// Shows a progress line with the running loss and speed, prints a summary per epoch, appends metrics to
// OUT/metrics.csv and saves OUT/checkpoint.safetensors after every epoch (--resume continues from it).
#include <needle/needle.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

namespace fs = std::filesystem;
using needle::Tensor;
namespace nn = needle::nn;

namespace {

struct Options {
  fs::path data = "/usr/share/datasets/fashion-mnist";
  fs::path out = "out/mlp-cpp";
  int epochs = 10;
  bool resume = false;
};

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--data" && has_value) {
      options.data = argv[++i];
    } else if (arg == "--out" && has_value) {
      options.out = argv[++i];
    } else if (arg == "--epochs" && has_value) {
      options.epochs = std::stoi(argv[++i]);
    } else if (arg == "--resume") {
      options.resume = true;
    } else {
      throw needle::ValueError("train_mlp: unknown argument '" + arg +
                               "' (expected --data DIR, --epochs N, --out DIR, --resume)");
    }
  }
  return options;
}

// The .gz file of `name` in `folder`, or the uncompressed one.
std::string idx_file(const fs::path& folder, const std::string& name) {
  const fs::path gz = folder / (name + ".gz");
  return fs::exists(gz) ? gz.string() : (folder / name).string();
}

std::shared_ptr<nn::Sequential> make_model() {
  const double dropout = 0.2;
  return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(784, 512), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Dropout>(dropout), std::make_shared<nn::Linear>(512, 256), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Dropout>(dropout), std::make_shared<nn::Linear>(256, 10)});
}

// Number of rows whose largest logit is at the label.
std::int64_t count_correct(const Tensor& logits, const needle::NDArray& labels) {
  const needle::NDArray predicted = needle::argmax(logits.value(), 1);
  return needle::sum(needle::eq(predicted, labels.astype(needle::DType::Int64))).item().to<std::int64_t>();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse(argc, argv);
    if (!fs::is_directory(options.data)) {
      std::cerr << options.data << " does not exist: install Debian's dataset-fashion-mnist or pass --data DIR\n";
      return 2;
    }
    fs::create_directories(options.out);
    needle::manual_seed(0);

    auto train_set = std::make_shared<needle::data::MNISTDataset>(idx_file(options.data, "train-images-idx3-ubyte"),
                                                                  idx_file(options.data, "train-labels-idx1-ubyte"));
    auto test_set = std::make_shared<needle::data::MNISTDataset>(idx_file(options.data, "t10k-images-idx3-ubyte"),
                                                                 idx_file(options.data, "t10k-labels-idx1-ubyte"));
    needle::data::DataLoader train_loader(train_set, 128, /*shuffle=*/true, false, /*num_workers=*/1);
    needle::data::DataLoader test_loader(test_set, 1000);
    std::cout << "Fashion-MNIST from " << options.data << ": " << train_set->size() << " training and "
              << test_set->size() << " test images\n";

    const auto model = make_model();
    nn::SoftmaxLoss loss_fn;
    needle::optim::Adam optimizer(model->parameters(), 1e-3);
    needle::optim::CosineAnnealingLR scheduler(optimizer, options.epochs);

    const fs::path checkpoint = options.out / "checkpoint.safetensors";
    const fs::path metrics = options.out / "metrics.csv";
    int first_epoch = 0;
    if (options.resume && fs::exists(checkpoint)) {
      needle::io::load_state_dict(checkpoint.string(), *model);
      first_epoch = std::stoi(needle::io::load_safetensors_metadata(checkpoint.string()).at("epoch"));
      for (int e = 0; e < first_epoch; ++e) scheduler.step();
      std::cout << "resumed from " << checkpoint << " after epoch " << first_epoch << "\n";
    }
    if (!fs::exists(metrics)) std::ofstream(metrics) << "epoch,train_loss,train_acc,test_loss,test_acc,seconds\n";

    double test_acc = 0.0;
    for (int epoch = first_epoch; epoch < options.epochs; ++epoch) {
      model->train();
      const auto start = std::chrono::steady_clock::now();
      double loss_sum = 0.0;
      std::int64_t seen = 0;
      std::int64_t correct = 0;
      std::int64_t step = 0;
      for (const needle::data::Batch& batch : train_loader) {
        const Tensor images(batch[0]);
        const Tensor logits = (*model)(images);
        const Tensor loss = loss_fn(logits, Tensor(batch[1]));
        optimizer.reset_grad();
        loss.backward();
        optimizer.step();
        const std::int64_t n = batch[1].shape()[0];
        loss_sum += loss.value().item().to<double>() * static_cast<double>(n);
        seen += n;
        correct += count_correct(logits, batch[1]);
        if (++step % 47 == 0 || step == train_loader.size()) {
          const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          std::printf("epoch %d/%d  %lld/%lld  loss %.4f  %.0f images/s\n", epoch + 1, options.epochs,
                      static_cast<long long>(step), static_cast<long long>(train_loader.size()),
                      loss_sum / static_cast<double>(seen), static_cast<double>(seen) / seconds);
          std::fflush(stdout);
        }
      }
      scheduler.step();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

      model->eval();
      needle::NoGradGuard no_grad;
      double test_loss_sum = 0.0;
      std::int64_t test_correct = 0;
      for (const needle::data::Batch& batch : test_loader) {
        const Tensor logits = (*model)(Tensor(batch[0]));
        test_loss_sum +=
            loss_fn(logits, Tensor(batch[1])).value().item().to<double>() * static_cast<double>(batch[1].shape()[0]);
        test_correct += count_correct(logits, batch[1]);
      }
      const double train_loss = loss_sum / static_cast<double>(seen);
      const double train_acc = static_cast<double>(correct) / static_cast<double>(seen);
      const double test_loss = test_loss_sum / static_cast<double>(test_set->size());
      test_acc = static_cast<double>(test_correct) / static_cast<double>(test_set->size());
      std::printf("epoch %d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f s\n", epoch + 1, train_loss,
                  100 * train_acc, test_loss, 100 * test_acc, seconds);
      std::ofstream(metrics, std::ios::app) << epoch + 1 << ',' << train_loss << ',' << train_acc << ',' << test_loss
                                            << ',' << test_acc << ',' << seconds << '\n';
      needle::io::save_state_dict(checkpoint.string(), *model, {{"epoch", std::to_string(epoch + 1)}});
    }
    std::cout << "metrics: " << metrics << "; checkpoint: " << checkpoint << "\n";
    std::printf("final test accuracy: %.2f%%\n", 100 * test_acc);
    return 0;
  } catch (const needle::Error& e) {
    std::cerr << "train_mlp: " << e.what() << "\n";
    return 1;
  }
}
