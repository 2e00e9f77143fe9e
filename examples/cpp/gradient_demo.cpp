// Computes a gradient with Needle's autograd from C++ and checks it against a finite difference.
//   loss = sum(relu(x @ w + b) ** 2) / n,   d loss / d w = ?
#include <needle/needle.h>

#include <iostream>

using needle::NDArray;
using needle::Scalar;
using needle::Tensor;
namespace ops = needle::ops;

namespace {

Tensor loss_of(const Tensor& x, const Tensor& w, const Tensor& b) {
  const Tensor hidden = ops::relu(ops::matmul(x, w) + b);
  return ops::summation(ops::power_scalar(hidden, Scalar(2))) / Scalar(static_cast<double>(x.shape()[0]));
}

}  // namespace

int main() {
  needle::Generator generator(7);
  const auto f64 = needle::DType::Float64;
  const Tensor x(needle::randn({4, 3}, 0.0, 1.0, f64, needle::cpu_device(), &generator));
  const Tensor w(needle::randn({3, 2}, 0.0, 1.0, f64, needle::cpu_device(), &generator), /*requires_grad=*/true);
  const Tensor b(NDArray::full({2}, 0.1, f64), /*requires_grad=*/true);

  const Tensor loss = loss_of(x, w, b);
  std::cout << "loss = " << loss.value().item().to<double>() << "  " << loss.describe() << "\n";
  loss.backward();  // fills w.grad() and b.grad(), then releases the graph
  const std::vector<double> grad = w.grad().value().to_vector<double>();
  std::cout << "d loss / d w =";
  for (double g : grad) std::cout << " " << g;
  std::cout << "\n";

  // Central difference on w[0, 0].
  const double eps = 1e-6;
  auto loss_with_w00 = [&](double delta) {
    needle::NoGradGuard no_grad;
    NDArray shifted = w.value().copy();
    shifted.assign(
        {needle::IndexItem::at(0), needle::IndexItem::at(0)},
        Scalar(w.value().index({needle::IndexItem::at(0), needle::IndexItem::at(0)}).item().to<double>() + delta));
    return loss_of(x, Tensor(shifted), b).value().item().to<double>();
  };
  const double numeric = (loss_with_w00(eps) - loss_with_w00(-eps)) / (2 * eps);
  std::cout << "finite difference for w[0, 0] = " << numeric << " (autograd: " << grad[0] << ")\n";
  return std::abs(numeric - grad[0]) < 1e-6 ? 0 : 1;
}
