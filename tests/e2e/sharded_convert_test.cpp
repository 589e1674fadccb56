// A sharded HF checkpoint (model.safetensors.index.json + several files) converts to the same kiln checkpoint
// as the single-file one.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/test_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace kiln::test {
namespace {

TEST(ShardedConvert, SameCheckpointAsSingleFile) {
  TempDir tmp;
  const std::string src = model_dir("qwen3"), hf = tmp / "hf";
  fs::create_directory(hf);
  fs::copy_file(src + "/config.json", hf + "/config.json");
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  {
    SafetensorsFile f(src + "/model.safetensors");
    SafetensorsWriter shards[3];
    int i = 0;
    for (auto& [name, t] : f.tensors()) {
      int s = i++ % 3;
      shards[s].add(name, t.dtype, t.shape, t.data, t.nbytes);
      index["weight_map"][name] = "model-0000" + std::to_string(s + 1) + "-of-00003.safetensors";
    }
    for (int s = 0; s < 3; ++s) shards[s].write(hf + "/model-0000" + std::to_string(s + 1) + "-of-00003.safetensors");
  }
  write_json_file(hf + "/model.safetensors.index.json", index);
  ASSERT_EQ(run_kiln("convert --model " + src + " --output " + (tmp / "a")).exit_code, 0);
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "b"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  SafetensorsFile a(tmp / "a/rank0.safetensors"), b(tmp / "b/rank0.safetensors");
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (auto& [name, t] : a.tensors()) {
    const auto& u = b.get(name);
    ASSERT_EQ(t.shape, u.shape) << name;
    ASSERT_EQ(std::memcmp(t.data, u.data, t.nbytes), 0) << name;
  }
  EXPECT_EQ(read_json_file(tmp / "a/config.json"), read_json_file(tmp / "b/config.json"));
}

}  // namespace
}  // namespace kiln::test
