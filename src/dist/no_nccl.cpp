// A build without NCCL: collectives on CUDA memory are refused.
#include "dist/groups.h"
#include "needle/core/error.h"

namespace needle::dist::detail {

std::unique_ptr<DeviceCollectives> make_nccl_collectives(int /*rank*/, int /*size*/, int /*device_index*/,
                                                         BytesBroadcast /*broadcast_from_root*/, void* /*context*/) {
  throw RuntimeError(
      "needle.distributed: collectives on CUDA arrays need NCCL, and Needle was built without it (build with "
      "NEEDLE_ENABLE_CUDA=ON and a CUDA toolkit that ships NCCL)");
}
bool built_with_nccl() { return false; }

}  // namespace needle::dist::detail
