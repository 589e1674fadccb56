// The fusion rules: which neighbouring ops of a step may run as one kernel. A
// rule proposes a fusion from the data flow of ops i and i + 1 alone (op i + 1
// reads what op i wrote, in the way the fusion needs); the backend then accepts
// or refuses it (Backend::can_fuse: its kernels, tactics and sizes). Ops that
// are not neighbours are never fused, so an op inserted between two fused ops
// separates them unless a rule fuses it too.
#pragma once
#include "backend/step_ops.h"

namespace kiln {

// The fusion a rule proposes between ops i and i + 1 (earlier fusions of the
// plan decided), or Fusion::None.
Fusion propose_fusion(const StepOps& plan, size_t i);
// Decides every fusion of the plan, first to last: propose_fusion, then
// be.can_fuse.
void plan_fusions(StepOps& plan, const Backend& be);

}  // namespace kiln
