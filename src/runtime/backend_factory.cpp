#include "backend/backend.h"

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

#ifdef KILN_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace kiln {

std::unique_ptr<Backend> make_backend(const std::string& target, int num_threads, int device) {
  if (target == "cpu") {
    if (device != 0) fail("target 'cpu': device {}: the cpu backend has no device ordinals (one rank runs on 0)", device);
    return std::make_unique<CpuBackend>(num_threads);
  }
  if (target == "cuda") {
#ifdef KILN_WITH_CUDA
    return make_cuda_backend(DType::BF16, device);
#else
    fail("target 'cuda': this kiln was built without CUDA");
#endif
  }
  fail("unknown target '{}' (expected cpu or cuda)", target);
}

}  // namespace kiln
