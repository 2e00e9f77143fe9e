// Random fills: element i (row-major) takes sample number offset + i of the counter-based generator.
#include "backend/element_ops.h"
#include "backend/ref/ref_kernels.h"
#include "backend/strided_loop.h"

namespace needle::ref {

void random(RandomDistribution dist, const StridedView& out, double p0, double p1, std::uint64_t seed,
            std::uint64_t offset) {
  dispatch_dtype(out.dtype, [&]<typename T>() {
    T* o = out.ptr<T>();
    std::uint64_t counter = offset;
    // Outputs are contiguous in practice; walking strides costs nothing here and keeps any view valid.
    kernels::for_each_offset(out.shape, {&out.strides}, [&](const kernels::Offsets<1>& at) {
      o[at[0]] = kernels::random_sample<T>(dist, p0, p1, seed, counter++);
    });
  });
}

}  // namespace needle::ref
