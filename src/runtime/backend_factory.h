// The runtime's side of the backends: the backend for an engine's target, the engine's description and weights
// in the backend interface's own types (backend/backend_config.h), and the planner a target's engine build needs.
// This is where the backends meet the build and io layers; the backends depend on neither.
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"
#include "build/engine_builder.h"
#include "build/engine_format.h"
#include "io/safetensors.h"

namespace kiln {

// target: "cpu" or "cuda" (refused where this kiln was built without CUDA). Not configured yet. device: the cuda
// device ordinal (the rank's, Mapping::device_ordinal); the cpu backend has no devices and takes 0 only.
std::unique_ptr<Backend> make_backend(const std::string& target, int num_threads = 0, int device = 0);

// engine.json as Backend::configure takes it.
BackendConfig backend_config(const EngineInfo& info);
// A tensor of an engine's weight file as Backend::load_weight takes it (it points into `t`'s mapping).
WeightView weight_view(const TensorView& t);

// BuildOptions::plan for a target: the cuda planner (backend/cuda/cuda_planner.h) for "cuda" where this kiln has
// the cuda backend; empty otherwise (the cpu target needs no plan; build_engine refuses cuda without one).
decltype(BuildOptions::plan) target_planner(const std::string& target);

}  // namespace kiln
