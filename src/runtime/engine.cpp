#include "runtime/engine.h"

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
  SafetensorsFile f((fs::path(dir) / "rank0.safetensors").string());
  for (auto& spec : expected_weights(e->info_.model)) {
    const TensorView& t = f.get(spec.name);
    if (t.shape != spec.shape) fail("{}: tensor '{}' has shape {}, expected another", f.path(), spec.name, t.shape_str());
    e->weights_[spec.name] = e->backend_->load_weight(t);
  }
  return e;
}

const Tensor& Engine::weight(const std::string& name) const {
  auto it = weights_.find(name);
  if (it == weights_.end()) fail("engine {}: missing weight '{}'", dir_, name);
  return it->second;
}

}  // namespace kiln
