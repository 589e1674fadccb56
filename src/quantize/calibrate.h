// Calibration: kiln's own forward pass (a cpu engine of the float checkpoint) over calibration token sequences,
// observing what each linear layer reads and what each layer writes into its KV cache.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace kiln {

// What one linear layer read, over every calibration token.
struct LinearStats {
  int64_t K = 0;
  int64_t rows = 0;                 // tokens seen
  std::vector<float> amax;          // [K] max |x[:, k]|
  std::vector<double> abs_sum;      // [K] sum |x[:, k]|
  std::vector<float> samples;       // [S, K] input rows kept for searches (AWQ), evenly spread over the data
  float tensor_amax() const;
};

struct CalibStats {
  std::map<std::string, LinearStats> linears;  // by module name (src/model/weights.h)
  std::vector<std::array<float, 2>> kv_amax;   // [layers] max |k|, max |v| as written to the cache (after RoPE)
  int64_t sequences = 0, tokens = 0;
};

struct CalibOptions {
  int64_t rows_kept = 512;  // per linear layer, for the searches
  bool progress = true;
};

// Runs every sequence (one at a time, each a whole prompt) through the engine. The MoE experts' inputs are not
// observed (the routing is inside the op): their gate_up sees the layer's input, their down nothing.
CalibStats calibrate(Engine& engine, const std::vector<std::vector<int32_t>>& sequences, const CalibOptions& o);

}  // namespace kiln
