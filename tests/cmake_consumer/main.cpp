// Links against an installed libneedle and checks one computation end to end.
#include <needle/needle.h>

#include <iostream>

int main() {
  const needle::NDArray a = needle::NDArray::arange(4, needle::DType::Float32).reshape({2, 2});
  const double total = needle::sum(needle::matmul(a, a)).item().to<double>();
  std::cout << "sum(a @ a) = " << total << "\n";
  return total == 2 + 3 + 6 + 11 ? 0 : 1;  // [[2, 3], [6, 11]]
}
