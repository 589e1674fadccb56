#include "runtime/engine.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/weights.h"

namespace fs = std::filesystem;

namespace kiln {

std::unique_ptr<Engine> Engine::load(const std::string& dir, int num_threads) {
  if (!fs::is_directory(dir)) fail("--engine {}: not a directory", dir);
  const std::string ej = (fs::path(dir) / "engine.json").string();
  if (!fs::exists(ej)) fail("{}: missing (not a kiln engine?)", ej);
  auto e = std::unique_ptr<Engine>(new Engine());
  e->dir_ = dir;
  e->info_ = engine_info_from_json(read_json_file(ej), ej);
  e->backend_ = make_backend(e->info_.target, num_threads);
  e->backend_->configure(e->info_);  // refuses an engine this backend/device cannot run
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
  SafetensorsFile f((fs::path(dir) / "rank0.safetensors").string());
  const auto specs = expected_weights(e->info_.model);
  check_weight_set(f, specs, ej);  // before any weight is loaded
  for (auto& spec : specs) e->weights_[spec.name] = e->backend_->load_weight(f.get(spec.name));
  return e;
}

const Tensor& Engine::weight(const std::string& name) const {
  auto it = weights_.find(name);
  if (it == weights_.end()) fail("engine {}: missing weight '{}'", dir_, name);
  return it->second;
}

}  // namespace kiln
