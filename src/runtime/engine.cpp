#include "runtime/engine.h"

#include <cmath>
#include <filesystem>

#include "build/target_kernels.h"
#include "core/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/weight_file.h"
#include "model/weights.h"
#include "runtime/backend_factory.h"

namespace fs = std::filesystem;

namespace kiln {

std::unique_ptr<Engine> Engine::load(const std::string& dir, const EngineLoadOptions& o) {
  if (!fs::is_directory(dir)) fail("--engine {}: not a directory", dir);
  const std::string ej = (fs::path(dir) / "engine.json").string();
  if (!fs::exists(ej)) fail("{}: missing (not a kiln engine?)", ej);
  auto e = std::unique_ptr<Engine>(new Engine());
  e->dir_ = dir;
  e->info_ = engine_info_from_json(read_json_file(ej), ej);
  Mapping& m = e->info_.model.mapping;
  if (!e->info_.synthetic) check_rank_files(dir, m);
  require_one_rank(m, "engine " + dir);
  m.rank = o.rank;
  m.validate(ej);
  require_quant_kernels(e->info_.target, e->info_.model.quant, "engine " + dir);
  e->backend_ = make_backend(e->info_.target, o.num_threads, o.device >= 0 ? o.device : m.device_ordinal());
  e->backend_->configure(backend_config(e->info_));  // refuses an engine this backend/device cannot run
  if (e->info_.synthetic) {
    // Random weights made on the backend: seed from the tensor name, scale 1/sqrt(fan-in) for matrices.
    for (auto& spec : expected_weights(e->info_.model)) {
      uint64_t seed = 0xcbf29ce484222325ull;  // FNV-1a
      for (char ch : spec.name) seed = (seed ^ uint8_t(ch)) * 0x100000001b3ull;
      const bool is_norm = spec.name.find("norm.weight") != std::string::npos;
      const float scale = spec.shape.size() >= 2 ? float(1.0 / std::sqrt(double(spec.shape.back())))
                          : is_norm                ? 1.0f
                                                   : 0.02f;
      e->weights_[spec.name] = e->backend_->random_weight(spec.shape, seed, scale);
    }
    return e;
  }
  // Exactly the tensors the config describes (none missing, none extra, shapes and dtypes right) before any weight
  // is loaded: an engine.json whose num_layers was edited is refused.
  const WeightFile f((fs::path(dir) / rank_file_name(m.rank)).string(), e->info_.model);
  for (auto& spec : f.specs()) e->weights_[spec.name] = e->backend_->load_weight(weight_view(f.get(spec.name)));
  return e;
}

const Tensor& Engine::weight(const std::string& name) const {
  auto it = weights_.find(name);
  if (it == weights_.end()) fail("engine {}: missing weight '{}'", dir_, name);
  return it->second;
}

}  // namespace kiln
