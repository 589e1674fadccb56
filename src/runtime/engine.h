// Engine: an engine directory loaded onto a backend (weights in backend memory, limits, model config).
#pragma once
#include <map>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "build/engine_format.h"

namespace kiln {

class Engine {
 public:
  // Reads DIR/engine.json and DIR/rank0.safetensors; refuses an engine built for another target.
  static std::unique_ptr<Engine> load(const std::string& dir, int num_threads = 0);

  const EngineInfo& info() const { return info_; }
  const ModelConfig& model() const { return info_.model; }
  const EngineLimits& limits() const { return info_.limits; }
  const std::string& dir() const { return dir_; }
  Backend& backend() { return *backend_; }
  const Tensor& weight(const std::string& name) const;  // throws naming the tensor
  bool has_weight(const std::string& name) const { return weights_.count(name) != 0; }

 private:
  std::string dir_;
  EngineInfo info_;
  std::unique_ptr<Backend> backend_;
  std::map<std::string, Tensor> weights_;
};

}  // namespace kiln
