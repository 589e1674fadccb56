// Mapping: how a model is split over ranks (TensorRT-LLM's layout). world_size = tp_size * pp_size processes,
// one per device; rank r is tensor-parallel rank r % tp_size of pipeline stage r / tp_size. A checkpoint's or
// engine's config.json records tp_size and pp_size (`mapping`); each rank's weights are in rank{r}.safetensors.
//
// Until the parallelism issue lands, kiln runs one rank: a mapping of more than one rank is refused by convert,
// build and engine load (require_one_rank), never built or run from rank 0 alone.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace kiln {

struct Mapping {
  int64_t tp_size = 1;
  int64_t pp_size = 1;
  int64_t rank = 0;  // this process's rank; not stored in config.json (every rank reads the same file)
  // GPUs per host: a rank runs on device rank % gpus_per_node of its host (one process per GPU). Not stored.
  int64_t gpus_per_node = 8;

  int64_t world_size() const { return tp_size * pp_size; }
  int64_t tp_rank() const { return rank % tp_size; }
  int64_t pp_rank() const { return rank / tp_size; }
  int device_ordinal() const { return int(rank % gpus_per_node); }
  // Checks positive sizes and 0 <= rank < world_size; errors name `source` and the field.
  void validate(const std::string& source) const;
  bool operator==(const Mapping&) const = default;
};

// "rank{N}.safetensors": the weight file of rank N in a checkpoint or engine directory.
std::string rank_file_name(int64_t rank);

// {"tp_size": T, "pp_size": P, "world_size": T * P}.
nlohmann::json mapping_to_json(const Mapping& m);
// Reads a `mapping` block: tp_size and pp_size (default 1); world_size, when present, must be their product.
// Any other field is refused by name (kiln does not know what it would mean). rank is 0.
Mapping mapping_from_json(const nlohmann::json& j, const std::string& source);

// Throws "<what> has tp_size 2: tensor parallelism is not supported yet (one rank only)" (or pp_size: pipeline
// parallelism) for a mapping of more than one rank. `what` names the checkpoint or engine ("checkpoint DIR").
void require_one_rank(const Mapping& m, const std::string& what);

}  // namespace kiln
