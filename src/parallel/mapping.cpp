#include "parallel/mapping.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

using json = nlohmann::json;

namespace kiln {

void Mapping::validate(const std::string& src) const {
  if (tp_size < 1) fail("{}: mapping.tp_size {} must be at least 1", src, tp_size);
  if (pp_size < 1) fail("{}: mapping.pp_size {} must be at least 1", src, pp_size);
  if (gpus_per_node < 1) fail("{}: gpus per node {} must be at least 1", src, gpus_per_node);
  if (rank < 0 || rank >= world_size())
    fail("{}: rank {} is outside the mapping's {} ranks (tp_size {} x pp_size {})", src, rank, world_size(), tp_size,
         pp_size);
}

std::string rank_file_name(int64_t rank) { return fmt::format("rank{}.safetensors", rank); }

json mapping_to_json(const Mapping& m) {
  return json{{"tp_size", m.tp_size}, {"pp_size", m.pp_size}, {"world_size", m.world_size()}};
}

Mapping mapping_from_json(const json& j, const std::string& src) {
  if (!j.is_object()) fail("{}: 'mapping' must be an object, not {}", src, j.dump());
  Mapping m;
  auto size = [&](const char* k, int64_t def) -> int64_t {
    if (!j.contains(k) || j[k].is_null()) return def;
    if (!j[k].is_number_integer()) fail("{}: mapping.{} must be an integer, not {}", src, k, j[k].dump());
    return j[k].get<int64_t>();
  };
  for (auto& [k, v] : j.items())
    if (k != "tp_size" && k != "pp_size" && k != "world_size")
      fail("{}: mapping.{}: unknown field (kiln reads tp_size, pp_size and world_size)", src, k);
  m.tp_size = size("tp_size", 1);
  m.pp_size = size("pp_size", 1);
  m.validate(src);
  const int64_t world = size("world_size", m.world_size());
  if (world != m.world_size())
    fail("{}: mapping.world_size {} is not tp_size {} x pp_size {}", src, world, m.tp_size, m.pp_size);
  return m;
}

void require_one_rank(const Mapping& m, const std::string& what) {
  if (m.tp_size > 1)
    fail("{} has tp_size {}: tensor parallelism is not supported yet (one rank only)", what, m.tp_size);
  if (m.pp_size > 1)
    fail("{} has pp_size {}: pipeline parallelism is not supported yet (one rank only)", what, m.pp_size);
}

}  // namespace kiln
