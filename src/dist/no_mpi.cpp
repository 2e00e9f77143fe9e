// A build without MPI: one-process groups only.
#include "dist/groups.h"
#include "needle/core/error.h"

namespace needle::dist::detail {

std::unique_ptr<ProcessGroup> make_mpi_group() {
  throw RuntimeError(
      "needle.distributed: this process was started by an MPI launcher, but Needle was built without MPI "
      "(install OpenMPI's development files, e.g. Debian's libopenmpi-dev, and rebuild)");
}
bool built_with_mpi() { return false; }
void mpi_abort_if_initialized(int /*exit_code*/) {}
void mpi_finalize_if_initialized() {}

}  // namespace needle::dist::detail
