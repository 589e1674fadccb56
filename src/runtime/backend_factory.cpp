#include "runtime/backend_factory.h"

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

#ifdef KILN_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_planner.h"
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

BackendConfig backend_config(const EngineInfo& info) {
  BackendConfig c;
  c.target = info.target;
  c.gpu_arch = info.gpu_arch;
  c.compute_dtype = info.compute_dtype;
  c.model = info.model;
  c.limits.max_batch_size = info.limits.max_batch_size;
  c.limits.max_seq_len = info.limits.max_seq_len;
  c.limits.max_num_tokens = info.limits.max_num_tokens;
  c.limits.max_beam_width = info.limits.max_beam_width;
  c.tactics = info.tactics;
  c.batch_invariant = info.batch_invariant;
  return c;
}

WeightView weight_view(const TensorView& t) {
  WeightView v;
  v.name = t.name;
  v.dtype = t.dtype;
  v.shape = t.shape;
  v.data = t.data;
  return v;
}

decltype(BuildOptions::plan) target_planner(const std::string& target) {
#ifdef KILN_WITH_CUDA
  if (target == "cuda") {
    return [](const EngineInfo& info, std::optional<DType> dtype) {
      const CudaPlan p = plan_cuda_engine(backend_config(info), dtype);
      TargetPlan t;
      t.weight_dtype = p.weight_dtype;
      t.compute_dtype = p.compute_dtype;
      t.gpu_arch = p.gpu_arch;
      t.tactics = p.tactics;
      return t;
    };
  }
#endif
  (void)target;
  return {};
}

}  // namespace kiln
