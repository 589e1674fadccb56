// What the op interface takes from an engine, in its own types: the backend's configuration
// (Backend::configure) and a weight in host memory (Backend::load_weight). The runtime makes them from engine.json
// and the engine's weight file (runtime/backend_factory.h), so that backends depend on neither the build layer nor
// the io layer.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"

namespace kiln {

// The engine's limits a backend sizes its workspaces for (EngineLimits, less what only the runtime checks).
struct BackendLimits {
  int64_t max_batch_size = 8;
  int64_t max_seq_len = 0;
  int64_t max_num_tokens = 0;
  int64_t max_beam_width = 1;
};

struct BackendConfig {
  std::string target;    // the engine's target: "cpu" or "cuda"
  std::string gpu_arch;  // the GPU architecture the engine was built for ("sm_90"); empty for cpu
  DType compute_dtype = DType::F32;
  ModelConfig model;
  BackendLimits limits;
  nlohmann::json tactics = nlohmann::json::object();  // backend-specific kernel choices measured at build time
  bool batch_invariant = false;  // outputs independent of the batch (docs/ARCHITECTURE.md, batch-invariant mode)
};

// A weight in host memory as the engine stores it: row-major, `data` valid during the load_weight call.
struct WeightView {
  std::string name;  // the engine's tensor name (for errors)
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

}  // namespace kiln
