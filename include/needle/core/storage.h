// A reference-counted block of device memory. Views of one array share one Storage.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "needle/core/device.h"

namespace needle {

class Storage {
 public:
  // Bytes currently held by live Storage objects on devices of `device`'s type (all indices together).
  static std::size_t live_bytes(Device device);
  // Number of live Storage objects on devices of `device`'s type.
  static std::size_t live_count(Device device);
  // The most live_bytes(device) reached since reset_peak_bytes(device) (or since the process started).
  static std::size_t peak_bytes(Device device);
  // Restarts the peak at the current live bytes.
  static void reset_peak_bytes(Device device);

  // Allocates `nbytes` on `device` through its backend (throws RuntimeError if the device is disabled,
  // MemoryError when the memory cannot be had).
  static std::shared_ptr<Storage> allocate(Device device, std::size_t nbytes);

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Device address of the first byte (a host pointer only when device().is_host()).
  [[nodiscard]] void* data() const { return data_; }
  [[nodiscard]] std::size_t nbytes() const { return nbytes_; }
  [[nodiscard]] Device device() const { return device_; }

  // ---- versions: how autograd notices in-place writes ------------------------------------------
  // A number no other Storage of this process has had: a graph node that saved a tensor remembers its
  // storage's id, so a tensor whose value was replaced (Tensor::set_value) is told apart from one written
  // in place, even when a new block reuses a freed block's address.
  [[nodiscard]] std::uint64_t id() const { return id_; }
  // How many in-place writes (fill, setitem, optimizer updates, ...) reached this storage through any view:
  // 0 when allocated. Backward compares it with the version a node recorded when it saved the tensor.
  [[nodiscard]] std::uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  // Called by every function that writes into an existing array (NDArray::fill and assign, the fused
  // optimizer updates), never by the creation of a fresh one.
  void increment_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  Storage(Device device, void* data, std::size_t nbytes, std::uint64_t id)
      : device_(device), data_(data), nbytes_(nbytes), id_(id) {}

  Device device_;
  void* data_;
  std::size_t nbytes_;
  std::uint64_t id_;
  // Atomic because views of one storage may be written from several threads (disjoint slices); relaxed
  // because the counter orders nothing, it only has to count.
  std::atomic<std::uint64_t> version_{0};
};

}  // namespace needle
