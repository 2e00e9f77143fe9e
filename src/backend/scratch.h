// Device memory for the temporaries of the Backend base class's composed kernels (fused_defaults.cpp and
// its siblings), returned to the backend when it goes out of scope.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "needle/backend/backend.h"

namespace needle::kernels {

// Device memory for a temporary, returned to the backend when it goes out of scope.
class Scratch {
 public:
  Scratch(Backend& backend, std::int64_t elements, DType dtype)
      : backend_(backend), nbytes_(static_cast<std::size_t>(elements) * itemsize(dtype)) {
    data_ = backend_.allocate(nbytes_);
  }
  ~Scratch() { backend_.deallocate(data_, nbytes_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Scratch(Scratch&&) = delete;
  Scratch& operator=(Scratch&&) = delete;

  [[nodiscard]] void* data() const { return data_; }

 private:
  Backend& backend_;
  std::size_t nbytes_;
  void* data_ = nullptr;
};

// Scalars written once to device memory and read back as `n`-element arrays by a zero stride: the
// hyper-parameters a composed kernel feeds to element-wise primitives. at(i) is the i-th value.
class BroadcastConstants {
 public:
  BroadcastConstants(Backend& backend, DType dtype, std::int64_t n, std::initializer_list<double> values)
      : scratch_(backend, static_cast<std::int64_t>(values.size()), dtype), dtype_(dtype), n_(n) {
    std::int64_t i = 0;
    for (const double value : values) backend.fill({element(i++), dtype_, {1}, {1}}, Scalar(value));
  }

  [[nodiscard]] StridedView at(std::int64_t i) const { return {element(i), dtype_, {n_}, {0}}; }

 private:
  [[nodiscard]] void* element(std::int64_t i) const {
    return static_cast<char*>(scratch_.data()) + i * static_cast<std::int64_t>(itemsize(dtype_));
  }

  Scratch scratch_;
  DType dtype_;
  std::int64_t n_;
};

}  // namespace needle::kernels
