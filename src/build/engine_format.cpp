#include "build/engine_format.h"

#include <algorithm>

#include "core/error.h"

using json = nlohmann::json;

namespace kiln {

json engine_info_to_json(const EngineInfo& e) {
  return json{{"format", "kiln-engine"},
              {"format_version", kEngineFormatVersion},
              {"kiln_version", kKilnVersion},
              {"target", e.target},
              {"gpu_arch", e.gpu_arch},
              {"compute_dtype", dtype_name(e.compute_dtype)},
              {"limits",
               {{"max_batch_size", e.limits.max_batch_size},
                {"max_input_len", e.limits.max_input_len},
                {"max_seq_len", e.limits.max_seq_len},
                {"max_num_tokens", e.limits.max_num_tokens},
                {"max_beam_width", e.limits.max_beam_width}}},
              {"model", config_to_json(e.model)},
              {"tactics", e.tactics},
              {"synthetic", e.synthetic},
              {"batch_invariant", e.batch_invariant}};
}

EngineInfo engine_info_from_json(const json& j, const std::string& src) {
  if (!j.is_object() || j.value("format", "") != "kiln-engine") fail("{}: not a kiln engine (format != kiln-engine)", src);
  int v = j.value("format_version", -1);
  if (v != kEngineFormatVersion)
    fail("{}: engine format version {} is not supported by this kiln (expects {}); rebuild the engine", src, v,
         kEngineFormatVersion);
  EngineInfo e;
  try {
    e.target = j.at("target").get<std::string>();
    e.gpu_arch = j.value("gpu_arch", "");
    e.compute_dtype = dtype_from_name(j.at("compute_dtype").get<std::string>());
    auto& l = j.at("limits");
    e.limits.max_batch_size = l.at("max_batch_size").get<int64_t>();
    e.limits.max_input_len = l.at("max_input_len").get<int64_t>();
    e.limits.max_seq_len = l.at("max_seq_len").get<int64_t>();
    e.limits.max_num_tokens = l.at("max_num_tokens").get<int64_t>();
    e.limits.max_beam_width = l.at("max_beam_width").get<int64_t>();
    e.tactics = j.value("tactics", json::object());
    e.synthetic = j.value("synthetic", false);
    e.batch_invariant = j.value("batch_invariant", false);
  } catch (const json::exception& ex) {
    fail("{}: malformed engine.json: {}", src, ex.what());
  }
  if (!j.contains("model")) fail("{}: missing field 'model'", src);
  e.model = config_from_json(j["model"], src);
  // The limits as kiln build would have resolved them (an edited engine.json's max_seq_len of 10^12 would size
  // the runtime's block tables): every limit positive, within its bound and consistent with the model.
  const EngineLimits& l = e.limits;
  for (auto [name, v] : {std::pair{"max_batch_size", l.max_batch_size}, {"max_input_len", l.max_input_len},
                         {"max_seq_len", l.max_seq_len}, {"max_num_tokens", l.max_num_tokens},
                         {"max_beam_width", l.max_beam_width}})
    if (v < 1) fail("{}: limits.{} {}: must be at least 1", src, name, v);
  EngineLimits resolved = l;
  try {
    resolve_limits(resolved, e.model);
  } catch (const Error& ex) {
    fail("{}: limits: {} (rebuild the engine)", src, ex.what());
  }
  return e;
}

void resolve_limits(EngineLimits& l, const ModelConfig& m) {
  const int64_t max_pos = m.max_position_embeddings;
  // Upper bounds before anything is sized from them (and before B x S could overflow).
  constexpr int64_t kMaxBatchSize = 65536, kMaxNumTokens = int64_t(1) << 20;
  if (l.max_batch_size <= 0 || l.max_batch_size > kMaxBatchSize)
    fail("--max-batch-size {}: must be in [1, {}]", l.max_batch_size, kMaxBatchSize);
  if (l.max_beam_width <= 0 || l.max_beam_width > l.max_batch_size)
    fail("--max-beam-width {}: must be in [1, --max-batch-size {}] (a beam search's beams run in one step)",
         l.max_beam_width, l.max_batch_size);
  if (l.max_seq_len < 0 || l.max_input_len < 0 || l.max_num_tokens < 0) fail("limits must not be negative");
  if (l.max_num_tokens > kMaxNumTokens) fail("--max-num-tokens {}: at most {}", l.max_num_tokens, kMaxNumTokens);
  if (l.max_seq_len == 0) l.max_seq_len = max_pos;
  if (l.max_seq_len > max_pos)
    fail("--max-seq-len {}: the model holds at most {} positions (max_position_embeddings)", l.max_seq_len, max_pos);
  if (l.max_input_len == 0) l.max_input_len = l.max_seq_len;
  if (l.max_input_len > l.max_seq_len)
    fail("--max-input-len {}: exceeds --max-seq-len {}", l.max_input_len, l.max_seq_len);
  if (l.max_num_tokens == 0) l.max_num_tokens = std::min<int64_t>(8192, l.max_batch_size * l.max_seq_len);
  if (l.max_num_tokens < l.max_batch_size)
    fail("--max-num-tokens {}: must be at least --max-batch-size {} (one generation token per sequence)",
         l.max_num_tokens, l.max_batch_size);
}

}  // namespace kiln
