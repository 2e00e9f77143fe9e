// The CPU thread pool's size: set_num_threads, get_num_threads.
#include "bindings.h"
#include "needle/core/threads.h"

namespace needle::python {

void bind_threads(nb::module_& m) {
  m.def(
      "set_num_threads", [](int n) { set_num_threads(n); }, nb::arg("n"),
      "Sets how many threads the cpu kernels use, the calling thread included (1 to 1024; ValueError "
      "otherwise). The default comes from the NEEDLE_NUM_THREADS environment variable, else the number of "
      "hardware threads.");
  m.def("get_num_threads", &get_num_threads, "The number of threads the cpu kernels use.");
}

}  // namespace needle::python
