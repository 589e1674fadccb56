// The MoE layer of the cuda backend (Backend::moe): router GEMM (F32 logits), routing, gate/up as a grouped GEMM
// over the routed rows, the SiLU gate, down as a grouped GEMM (F32), the weighted combine. Workspaces sized once
// (reserve, at configure) so that recording a step graph never allocates.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/backend.h"
#include "backend/cuda/device_memory.h"
#include "backend/cuda/gemm.h"

namespace kiln::cuda {

class MoeRunner {
 public:
  // Workspaces for up to T tokens, hidden H, expert width I, E experts, top-k K.
  void reserve(int64_t T, int64_t H, int64_t I, int64_t E, int64_t K, bool capturing);
  // p as Backend::moe; dt: the compute dtype; gemm runs the router GEMM.
  void run(const MoeParams& p, DType dt, GemmRunner& gemm, bool capturing, cudaStream_t s);

 private:
  DeviceBuffer logits_, w_, e_, off_, slot_token_, token_slot_, gu_, act_, y_;
};

}  // namespace kiln::cuda
