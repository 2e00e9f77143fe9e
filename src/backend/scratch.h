// Device memory for the temporaries of the Backend base class's composed kernels (fused_defaults.cpp and
// its siblings), returned to the backend when it goes out of scope.
#pragma once

#include <cstddef>
#include <cstdint>

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

}  // namespace needle::kernels
