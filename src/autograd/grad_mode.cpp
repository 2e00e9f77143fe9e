#include "needle/autograd/grad_mode.h"

namespace needle {

namespace {
// Per thread, so a data-loading thread never changes the training thread's mode.
thread_local bool grad_mode_enabled = true;
}  // namespace

bool grad_enabled() { return grad_mode_enabled; }

void set_grad_enabled(bool enabled) { grad_mode_enabled = enabled; }

}  // namespace needle
