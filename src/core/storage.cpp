#include "needle/core/storage.h"

#include "needle/backend/backend.h"

namespace needle {

std::shared_ptr<Storage> Storage::allocate(Device device, std::size_t nbytes) {
  Backend& backend = backend_for(device);  // throws for a disabled device
  void* data = backend.allocate(nbytes);
  // The constructor is private, so std::make_shared cannot be used.
  return std::shared_ptr<Storage>(new Storage(device, data, nbytes));
}

Storage::~Storage() { backend_for(device_).deallocate(data_, nbytes_); }

}  // namespace needle
