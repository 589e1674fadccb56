// engine.json: format version, kiln version, target, limits, model config (with its mapping and quantization, as
// in the checkpoint's config.json), tactics.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

namespace kiln {

constexpr int kEngineFormatVersion = 1;
constexpr const char* kKilnVersion = "0.1.0";

struct EngineLimits {
  int64_t max_batch_size = 8;
  int64_t max_input_len = 0;   // 0 at build time: derived from the model
  int64_t max_seq_len = 0;
  int64_t max_num_tokens = 0;
  int64_t max_beam_width = 1;
};

struct EngineInfo {
  std::string target;        // "cpu" or "cuda"
  std::string gpu_arch;      // "sm_90" for cuda engines; empty for cpu
  DType compute_dtype = DType::F32;
  EngineLimits limits;
  ModelConfig model;
  nlohmann::json tactics = nlohmann::json::object();  // backend-specific (cuBLASLt algorithms, ...)
  bool synthetic = false;  // no weight file: weights are generated at load (Backend::random_weight, fixed seeds)
  // kiln build --batch-invariant: a request's outputs must not depend on the rest of its batch, on chunking, on
  // preemption or on prefix reuse (cuda: one GEMM algorithm per shape, one attention kernel for every query row;
  // docs/ARCHITECTURE.md). The cpu backend is batch-invariant whatever this says.
  bool batch_invariant = false;
};

nlohmann::json engine_info_to_json(const EngineInfo& e);
EngineInfo engine_info_from_json(const nlohmann::json& j, const std::string& source);
// Fills defaults for zero limits and checks every limit against the model; errors name the flag.
void resolve_limits(EngineLimits& l, const ModelConfig& m);

}  // namespace kiln
