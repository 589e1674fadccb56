// A step's op list with its fusions decided explicitly (src/runtime/fusion_plan.h decides them; a backend runs
// them). Op i may be fused with op i + 1 only: a fusion is an edge between neighbours, so a new op placed between
// two ops that were fused separates them, and the plan (describe()) shows that it did.
#pragma once
#include <string>
#include <variant>
#include <vector>

#include "backend/backend.h"

namespace kiln {

using OpParams = std::variant<EmbeddingParams, NormParams, LinearParams, RopeKvParams, AttentionParams,
                              ActivationParams, MoeParams, GatherRowsParams, ArgmaxParams>;

// How op i joins op i + 1. Every output an op promises is still written when it is fused: a fusion changes the
// number of kernels, never what the ops compute.
enum class Fusion : uint8_t {
  None,
  ResidualAdd,    // linear -> norm whose `add` is the linear's output: the linear adds its output into the norm's
                  // residual as its epilogue; the norm then normalizes without its add
  NormPrologue,   // norm (RMSNorm, no add left to do) -> linear reading the norm's output: the norm is computed in
                  // the linear's prologue
  SiluGate,       // linear (gate | up) -> SiLU-gated activation of its output: the activation is its epilogue
  RopeAttention,  // rope_kv -> attention of the same qkv, layer, cache and step: the decode attention kernel rotates
                  // q and the new k and writes the new k, v into the cache itself
  Argmax,         // linear (F32 logits) -> argmax of its output: the greedy choice is the linear's epilogue
};
const char* fusion_name(Fusion f);

struct StepOp {
  OpParams params;
  Fusion next = Fusion::None;  // the fusion with op i + 1
  const char* label = "";      // for describe(): e.g. "linear(qkv)"
};

struct StepOps {
  std::vector<StepOp> ops;

  template <class P>
  void add(P p, const char* label) {
    ops.push_back({OpParams(std::move(p)), Fusion::None, label});
  }
  // One line per kernel group: ops joined by fusions are written "a >residual_add> b".
  std::string describe() const;
  int count(Fusion f) const;
};

// Runs one op unfused (the backend's op for its params).
void run_op(Backend& be, const OpParams& op);

}  // namespace kiln
