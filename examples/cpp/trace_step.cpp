// Trace one training step of a small MLP from C++: every op, backward node and kernel, as Chrome trace
// JSON and a summary table, plus the autograd graph as DOT. The C++ twin of examples/python/trace_step.py.
//
//   build/release/examples/cpp/trace_step [out_dir]     # default out/trace_cpp
#include <needle/debug/debug.h>
#include <needle/needle.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

using needle::NDArray;
using needle::Tensor;
namespace nn = needle::nn;

int main(int argc, char** argv) {
  try {
    const std::filesystem::path out = argc > 1 ? argv[1] : "out/trace_cpp";
    std::filesystem::create_directories(out);
    constexpr std::int64_t kBatch = 128;
    nn::Sequential model(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(784, 256), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(256, 10)});
    needle::optim::SGD optimizer(model.parameters(), 0.1);
    nn::SoftmaxLoss loss_fn;
    // Random images and labels shaped like a Fashion-MNIST batch: the trace is about the step, not the data.
    needle::Generator generator(0);
    const Tensor images(
        needle::randn({kBatch, 784}, 0.0, 1.0, needle::DType::Float32, needle::cpu_device(), &generator));
    std::vector<std::int64_t> classes(kBatch);
    for (std::int64_t i = 0; i < kBatch; ++i) classes[static_cast<std::size_t>(i)] = i % 10;
    const Tensor labels(NDArray::from_vector(classes, {kBatch}));

    const auto step = [&] {
      // Marks the ops created by this lambda with this line in traces and anomaly reports.
      NEEDLE_CALL_SITE();
      const Tensor loss = loss_fn(model(images), labels);
      optimizer.reset_grad();
      loss.backward();
      optimizer.step();
      return loss;
    };
    for (int i = 0; i < 3; ++i) (void)step();  // warm up caches and the allocator

    Tensor loss;
    needle::trace::Recording recording;
    {
      needle::trace::Scope scope;
      loss = step();
      recording = scope.stop();
    }
    recording.save((out / "step.json").string());
    const std::string summary = recording.summary();
    std::ofstream(out / "summary.txt") << summary;
    std::cout << summary << "\n";

    // The graph of a fresh forward pass (backward released the step's graph).
    const Tensor graph_loss = loss_fn(model(images), labels);
    needle::debug::write_graph_dot(graph_loss, (out / "graph.dot").string());
    std::cout << "loss " << loss.value().item().to<double>() << "; wrote " << (out / "step.json").string() << ", "
              << (out / "summary.txt").string() << " and " << (out / "graph.dot").string()
              << " (render: dot -Tsvg graph.dot -o graph.svg)\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "trace_step: " << e.what() << "\n";
    return 1;
  }
}
