// Mapping: rank -> (tp_rank, pp_rank) in TensorRT-LLM's layout, the device ordinal, the config.json block, and the
// one-rank refusal.
#include "parallel/mapping.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "core/error.h"

using json = nlohmann::json;

namespace kiln {
namespace {

using test::error_of;

TEST(Mapping, RanksAndDevices) {
  Mapping m{.tp_size = 4, .pp_size = 2};
  EXPECT_EQ(m.world_size(), 8);
  // rank = pp_rank * tp_size + tp_rank
  const int expect[8][2] = {{0, 0}, {1, 0}, {2, 0}, {3, 0}, {0, 1}, {1, 1}, {2, 1}, {3, 1}};
  for (int r = 0; r < 8; ++r) {
    m.rank = r;
    EXPECT_EQ(m.tp_rank(), expect[r][0]) << r;
    EXPECT_EQ(m.pp_rank(), expect[r][1]) << r;
    EXPECT_EQ(m.device_ordinal(), r) << "one process per GPU of an 8-GPU host";
  }
  m.gpus_per_node = 4;
  m.rank = 6;
  EXPECT_EQ(m.device_ordinal(), 2) << "rank 6 is the third GPU of the second host";
  EXPECT_EQ(rank_file_name(0), "rank0.safetensors");
  EXPECT_EQ(rank_file_name(13), "rank13.safetensors");
}

TEST(Mapping, Validate) {
  EXPECT_NE(error_of([] { Mapping{.tp_size = 0}.validate("c.json"); }).find("mapping.tp_size 0"), std::string::npos);
  EXPECT_NE(error_of([] { Mapping{.pp_size = -1}.validate("c.json"); }).find("mapping.pp_size -1"), std::string::npos);
  EXPECT_NE(error_of([] { Mapping{.tp_size = 2, .rank = 2}.validate("c.json"); }).find("rank 2 is outside"),
            std::string::npos);
  EXPECT_EQ(error_of([] { Mapping{.tp_size = 2, .rank = 1}.validate("c.json"); }), "");
}

TEST(Mapping, Json) {
  Mapping m{.tp_size = 2, .pp_size = 3};
  const json j = mapping_to_json(m);
  EXPECT_EQ(j, json::parse(R"({"tp_size": 2, "pp_size": 3, "world_size": 6})"));
  EXPECT_EQ(mapping_from_json(j, "c.json"), m);
  EXPECT_EQ(mapping_from_json(json::object(), "c.json"), Mapping{});
  EXPECT_EQ(mapping_from_json(json::parse(R"({"tp_size": null})"), "c.json"), Mapping{});
  EXPECT_NE(error_of([] { mapping_from_json(json::parse(R"({"tp_size": 2, "world_size": 3})"), "c.json"); })
                .find("c.json: mapping.world_size 3 is not tp_size 2 x pp_size 1"),
            std::string::npos);
  EXPECT_NE(error_of([] { mapping_from_json(json::parse(R"({"cp_size": 2})"), "c.json"); })
                .find("c.json: mapping.cp_size: unknown field"),
            std::string::npos);
  EXPECT_NE(error_of([] { mapping_from_json(json::parse(R"({"tp_size": "2"})"), "c.json"); })
                .find("mapping.tp_size must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of([] { mapping_from_json(json::parse(R"({"tp_size": 0})"), "c.json"); }).find("tp_size 0"),
            std::string::npos);
  EXPECT_NE(error_of([] { mapping_from_json(json::array(), "c.json"); }).find("'mapping' must be an object"),
            std::string::npos);
}

TEST(Mapping, MoreThanOneRankIsRefused) {
  EXPECT_EQ(error_of([] { require_one_rank(Mapping{}, "checkpoint ck"); }), "");
  EXPECT_EQ(error_of([] { require_one_rank(Mapping{.tp_size = 2}, "checkpoint ck"); }),
            "checkpoint ck has tp_size 2: tensor parallelism is not supported yet (one rank only)");
  EXPECT_EQ(error_of([] { require_one_rank(Mapping{.pp_size = 4}, "engine e"); }),
            "engine e has pp_size 4: pipeline parallelism is not supported yet (one rank only)");
}

}  // namespace
}  // namespace kiln
