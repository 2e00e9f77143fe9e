// A tour of Needle's array layer from C++: views that share memory, kernels on two devices, and the
// errors bad input produces. Build with -DNEEDLE_BUILD_EXAMPLES=ON and run build/.../arrays_demo.
#include <needle/needle.h>

#include <iostream>

using needle::IndexItem;
using needle::NDArray;

namespace {

void print(const char* label, const NDArray& a) {
  std::cout << label << ": " << a.describe() << " strides=" << needle::shape_str(a.strides()) << " values=[";
  const std::vector<float> values = a.astype(needle::DType::Float32).to_vector<float>();
  for (std::size_t i = 0; i < values.size(); ++i) std::cout << (i > 0 ? ", " : "") << values[i];
  std::cout << "]\n";
}

}  // namespace

int main() {
  for (const needle::Device device : {needle::ref_device(), needle::cpu_device()}) {
    std::cout << "== device " << device << " ==\n";
    const NDArray a = NDArray::arange(6, needle::DType::Float32, device).reshape({2, 3});
    print("a", a);
    const NDArray t = a.permute({1, 0});  // a view: no data moves
    print("a.T (view)", t);
    std::cout << "a.T shares storage with a: " << std::boolalpha << t.shares_storage_with(a) << "\n";
    print("a @ a.T", needle::matmul(a, t));
    print("sum over axis 1", needle::sum(a, {1}));
    print("exp(a[:, 1:])", needle::exp(a.index({IndexItem::range(), IndexItem::range(1)})));
  }
  try {
    (void)needle::matmul(NDArray::ones({2, 3}), NDArray::ones({2, 3}));
  } catch (const needle::ValueError& e) {
    std::cout << "bad input gives a clear error: " << e.what() << "\n";
  }
  return 0;
}
