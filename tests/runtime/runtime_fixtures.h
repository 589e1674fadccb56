// Engines and request helpers shared by the runtime tests. Engines are converted and built in-process from the
// fixture models, once per (model, limits) for the whole test binary, and loaded once.
#pragma once
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "build/engine_builder.h"
#include "common/test_util.h"
#include "convert/convert.h"
#include "io/json_file.h"
#include "kiln/executor.h"
#include "runtime/backend_factory.h"
#include "runtime/engine.h"
#include "runtime/outcome.h"

namespace kiln::test {

inline const std::vector<std::string>& fixture_models() {
  static const std::vector<std::string> m{"llama", "llama31", "qwen2", "qwen3", "mistral", "gpt2", "mixtral", "tiny-code"};
  return m;
}

struct TestEngineLimits {
  int64_t max_batch_size = 16;
  int64_t max_seq_len = 128;
  int64_t max_input_len = 0;  // 0: max_seq_len
  int64_t max_beam_width = 4;
  // The target: cpu (float32 weights), or cuda (built on this machine's GPU; needs one) in `dtype`.
  std::string target = "cpu";
  std::string dtype = "float16";  // cuda compute dtype
  int64_t max_num_tokens = 0;     // 0: the build's default
  bool batch_invariant = false;   // kiln build --batch-invariant
};

// The engine directory for `model` built with `lim`.
inline const std::string& engine_dir(const std::string& model, const TestEngineLimits& lim = {}) {
  struct Built {
    TempDir dir;
    std::string path;
  };
  static std::map<std::string, std::unique_ptr<Built>> cache;
  const std::string key = model + "/" + std::to_string(lim.max_batch_size) + "/" + std::to_string(lim.max_seq_len) +
                          "/" + std::to_string(lim.max_input_len) + "/" + std::to_string(lim.max_beam_width) +
                          "/" + lim.target + "/" +
                          (lim.target == "cpu" ? "" : lim.dtype) + "/" + std::to_string(lim.max_num_tokens) +
                          (lim.batch_invariant ? "/invariant" : "");
  auto& b = cache[key];
  if (!b) {
    b = std::make_unique<Built>();
    ConvertOptions co;
    co.model_dir = model_dir(model);
    co.output_dir = b->dir / "ckpt";
    if (lim.target == "cpu") co.dtype = DType::F32;
    co.progress = false;
    convert_checkpoint(co);
    BuildOptions bo;
    bo.checkpoint_dir = co.output_dir;
    bo.output_dir = b->dir / "engine";
    bo.limits.max_batch_size = lim.max_batch_size;
    bo.limits.max_seq_len = lim.max_seq_len;
    bo.limits.max_input_len = lim.max_input_len;
    bo.limits.max_beam_width = lim.max_beam_width;
    bo.limits.max_num_tokens = lim.max_num_tokens;
    bo.batch_invariant = lim.batch_invariant;
    bo.target = lim.target;
    if (lim.target != "cpu") bo.dtype = dtype_from_name(lim.dtype);
    bo.plan = target_planner(lim.target);
    build_engine(bo);
    b->path = bo.output_dir;
  }
  return b->path;
}

// The loaded engine (shared: only one executor may use it at a time).
inline Engine& engine_for(const std::string& model, const TestEngineLimits& lim = {}) {
  static std::map<std::string, std::unique_ptr<Engine>> cache;
  const std::string& dir = engine_dir(model, lim);
  auto& e = cache[dir];
  if (!e) e = Engine::load(dir);
  return *e;
}

// Waits for the final response of every id (60 s at most each round) and returns their outcomes.
inline std::map<RequestId, Outcome> collect(Executor& ex, const std::vector<RequestId>& ids) {
  std::map<RequestId, Outcome> out;
  size_t finals = 0;
  for (auto id : ids) out[id];
  while (finals < ids.size()) {
    auto rs = ex.await_responses(std::chrono::milliseconds(60000));
    if (rs.empty()) {
      ADD_FAILURE() << "no response within 60 s (" << finals << " of " << ids.size() << " finished)";
      break;
    }
    for (auto& r : rs) {
      auto it = out.find(r.request_id);
      if (it == out.end()) {
        ADD_FAILURE() << "response for an unknown id " << r.request_id;
        continue;
      }
      absorb(it->second, r);
      finals += r.is_final;
    }
  }
  return out;
}

inline Outcome run_one(Executor& ex, const Request& r) {
  RequestId id = ex.enqueue(r);
  return collect(ex, {id})[id];
}

inline std::vector<int32_t> random_ids(std::mt19937& rng, int64_t n, int64_t vocab) {
  std::uniform_int_distribution<int32_t> d(0, int32_t(vocab - 1));
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace kiln::test
