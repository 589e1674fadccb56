// Engine: an engine directory loaded onto a backend (weights in backend memory, limits, model config).
#pragma once
#include <map>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "build/engine_format.h"

namespace kiln {

struct EngineLoadOptions {
  int num_threads = 0;  // cpu backend threads (0: all cores)
  int64_t rank = 0;     // which rank of the engine's mapping this process loads
  int device = -1;      // device ordinal for the rank; -1: the mapping's (Mapping::device_ordinal)
};

class Engine {
 public:
  // Reads DIR/engine.json and DIR/rank{rank}.safetensors onto the rank's device. Refuses an engine built for another
  // target, one of more than one rank (until the parallelism issue), and one whose quantization needs a kernel the
  // target lacks (build/target_kernels.h).
  static std::unique_ptr<Engine> load(const std::string& dir, const EngineLoadOptions& opts);
  static std::unique_ptr<Engine> load(const std::string& dir, int num_threads = 0) {
    return load(dir, EngineLoadOptions{num_threads});
  }

  const EngineInfo& info() const { return info_; }
  const ModelConfig& model() const { return info_.model; }
  const EngineLimits& limits() const { return info_.limits; }
  const Mapping& mapping() const { return info_.model.mapping; }  // with this process's rank
  const std::string& dir() const { return dir_; }
  Backend& backend() const { return *backend_; }
  const Tensor& weight(const std::string& name) const;  // throws naming the tensor
  bool has_weight(const std::string& name) const { return weights_.count(name) != 0; }

 private:
  std::string dir_;
  EngineInfo info_;
  std::unique_ptr<Backend> backend_;
  std::map<std::string, Tensor> weights_;
};

}  // namespace kiln
