// ModelRunner: the decoder graph, written once over backend ops and configured by ModelConfig.
// One step runs a packed batch: some sequences in their context phase (a prompt chunk), some generating.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/step_ops.h"
#include "runtime/engine.h"

namespace kiln {

struct SeqStep {
  std::vector<int32_t> tokens;              // the new tokens of this step (a prompt chunk, or one token)
  int32_t num_cached = 0;                   // tokens of this sequence already in the KV cache
  const std::vector<int32_t>* block_table;  // blocks covering num_cached + tokens.size() positions
  bool want_logits = true;                  // false for a context chunk that does not end the prompt
  bool all_logits = false;                  // logits for every new token instead of the last only
};

class ModelRunner {
 public:
  ModelRunner(Engine& engine, KvCacheDesc cache);
  // Runs one step. Returns F32 logits [R, V] in backend memory, one row per requested logit, in the order
  // of `seqs` (all_logits sequences contribute one row per new token). Valid until the next step.
  // ids_from_sample: every sequence brings one token, the one step_greedy chose for its row of the previous
  // step (sequence i = row i): the ids stay on the device, so the host can queue this step before it knows them.
  // The tokens given in `seqs` are then ignored.
  Tensor step(const std::vector<SeqStep>& seqs, bool ids_from_sample = false);
  // step() with the greedy choice on the device for each row of its logits, made inside the step (and its graph,
  // where a backend may fuse it into the logits' GEMV): the choices I32 [R] in backend memory, valid until the
  // next step_greedy; the logits (F32 [R, V], into *logits if given) stay valid until the next step.
  Tensor step_greedy(const std::vector<SeqStep>& seqs, bool ids_from_sample = false, Tensor* logits = nullptr);
  const KvCacheDesc& cache() const { return cache_; }
  // The op list of the latest step that ran its ops (not a graph replay), with its fusions.
  const StepOps& last_plan() const { return plan_; }
  Engine& engine() { return engine_; }
  // Calibration (src/quantize): with an observer set, a step runs its ops one by one, unfused and without step
  // graphs, and calls the observer after each op with the op's params (its inputs still intact: no op overwrites
  // its input, except rope_kv, whose qkv then holds the rotated k and v as written to the cache). Empty: none.
  void set_op_observer(std::function<void(const StepOp&)> observer) { observer_ = std::move(observer); }

 private:
  void ensure_capacity(int64_t tokens, int64_t seqs, int64_t rows);

  Engine& engine_;
  Backend& be_;
  const ModelConfig& cfg_;
  KvCacheDesc cache_;
  int64_t cap_tokens_ = 0, cap_seqs_ = 0, cap_rows_ = 0;
  // workspace, sized for cap_tokens_ rows
  Tensor residual_, normed_, qkv_, attn_, proj_, mlp_in_, mlp_act_, mlp_out_;  // [T, *]
  Tensor selected_, logits_;                                                    // [R, H], [R, V]
  Tensor ids_buf_, rows_buf_, pos_buf_, seq_buf_, offsets_buf_, cached_buf_, tables_buf_, slots_buf_;
  Tensor sampled_;  // I32 [cap_rows_]: step_greedy's choices
  StepMeta meta_;
  std::map<std::string, QuantScheme> quant_;  // the quantized linear layers by module name (src/model/weights.h)
  // Decode-only steps (one new token per sequence) recorded per batch size, on backends with step graphs
  // (null: seen once, recorded at the next), keyed by 4 * batch size + 2 * greedy + ids_from_sample. They hold
  // the addresses of the buffers above, so any reallocation drops them.
  std::map<int64_t, std::unique_ptr<StepGraph>> graphs_;
  Tensor run_step(const std::vector<SeqStep>& seqs, bool ids_from_sample, bool greedy);
  // rows_identity: logits for every token, in order (a decode step): the final norm's output is the lm_head's
  // input, with no gather between (one kernel less, and a fused norm prologue where the backend has one).
  void run_layers(int64_t T, int64_t R, const Tensor& ids, const Tensor& rows, bool rows_identity, bool greedy);
  // The step's ops, in order (fusions not yet decided).
  void build_ops(StepOps& ops, int64_t T, int64_t R, const Tensor& ids, const Tensor& rows, bool rows_identity,
                 bool greedy) const;
  StepOps plan_;
  std::function<void(const StepOp&)> observer_;
};

}  // namespace kiln
