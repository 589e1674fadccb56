// Bad inputs through the CLI: each gives one clear error line naming what was wrong, a non-zero exit,
// and no output directory (not even a half-written one).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace kiln::test {
namespace {

// A writable copy of a fixture model folder.
std::string copy_model(const TempDir& tmp, const std::string& name) {
  std::string dst = tmp / ("hf-" + name);
  fs::copy(model_dir(name), dst, fs::copy_options::recursive);
  for (auto& e : fs::recursive_directory_iterator(dst)) fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  return dst;
}

// Rewrites model.safetensors of `dir` through `edit`, which may drop, rename or reshape tensors.
void rewrite_weights(const std::string& dir, const std::function<void(SafetensorsWriter&, const TensorView&)>& edit) {
  SafetensorsWriter w;
  {
    SafetensorsFile f(dir + "/model.safetensors");
    for (auto& [name, t] : f.tensors()) edit(w, t);
  }
  w.write(dir + "/model.safetensors");
}

std::string leftovers(const std::string& parent) {
  std::string s;
  for (auto& e : fs::directory_iterator(parent))
    if (e.path().filename().string().find(".tmp") != std::string::npos) s += e.path().string() + " ";
  return s;
}

// Expects failure with exactly one "error:" line that mentions every string in `names`, and no output.
void expect_clean_failure(const CmdResult& r, const std::vector<std::string>& names, const std::string& output,
                          const std::string& parent) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  int lines = 0;
  for (size_t p = 0; (p = r.out.find('\n', p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 1) << "expected a single error line, got:\n" << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  for (auto& n : names) EXPECT_NE(r.out.find(n), std::string::npos) << "error should name '" << n << "': " << r.out;
  EXPECT_FALSE(fs::exists(output)) << "partial output left at " << output;
  EXPECT_EQ(leftovers(parent), "");
}

TEST(BadInput, TruncatedSafetensors) {
  TempDir tmp;
  auto hf = copy_model(tmp, "llama");
  fs::resize_file(hf + "/model.safetensors", fs::file_size(hf + "/model.safetensors") - 1000);
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
  expect_clean_failure(r, {"model.safetensors", "truncated"}, tmp / "ck", tmp.path());
}

TEST(BadInput, TruncatedHeader) {
  TempDir tmp;
  auto hf = copy_model(tmp, "llama");
  fs::resize_file(hf + "/model.safetensors", 100);
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
  expect_clean_failure(r, {"model.safetensors", "truncated"}, tmp / "ck", tmp.path());
}

// Replaces the first occurrence of `from` in the header of `file` by `to` (same length keeps offsets valid).
void patch_header(const std::string& file, const std::string& from, const std::string& to) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  std::string h(n, '\0');
  f.read(h.data(), std::streamsize(n));
  auto p = h.find(from);
  ASSERT_NE(p, std::string::npos) << from;
  ASSERT_EQ(from.size(), to.size());
  h.replace(p, from.size(), to);
  f.seekp(8);
  f.write(h.data(), std::streamsize(n));
}

TEST(BadInput, HeaderLiesAboutShape) {
  TempDir tmp;
  auto hf = copy_model(tmp, "llama");
  // model.norm.weight is [128]; claim [256] with the same byte range.
  patch_header(hf + "/model.safetensors", "\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[128]",
               "\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[256]");
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
  expect_clean_failure(r, {"model.safetensors", "model.norm.weight", "bytes"}, tmp / "ck", tmp.path());
}

TEST(BadInput, HeaderOffsetsOverlap) {
  TempDir tmp;
  auto hf = copy_model(tmp, "llama");
  // Re-write with a header whose second tensor starts inside the first.
  std::string file = hf + "/model.safetensors";
  {
    SafetensorsWriter w;
    std::vector<uint8_t> a(16, 1), b(16, 2);
    w.add("a", DType::F32, {4}, a);
    w.add("b", DType::F32, {4}, b);
    w.write(file);
  }
  patch_header(file, "\"data_offsets\":[16,32]", "\"data_offsets\":[ 8,24]");
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
  expect_clean_failure(r, {"model.safetensors", "'a'", "'b'", "overlap"}, tmp / "ck", tmp.path());
}

TEST(BadInput, OffsetsPastEnd) {
  TempDir tmp;
  auto hf = copy_model(tmp, "llama");
  std::string file = hf + "/model.safetensors";
  {
    SafetensorsWriter w;
    std::vector<uint8_t> a(16, 1);
    w.add("a", DType::F32, {4}, a);
    w.write(file);
  }
  patch_header(file, "\"data_offsets\":[0,16],\"dtype\":\"F32\",\"shape\":[4]",
               "\"data_offsets\":[0,32],\"dtype\":\"F32\",\"shape\":[8]");
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
  expect_clean_failure(r, {"model.safetensors", "'a'", "past the end"}, tmp / "ck", tmp.path());
}

TEST(BadInput, MissingTensor) {
  TempDir tmp;
  auto hf = copy_model(tmp, "llama");
  rewrite_weights(hf, [](SafetensorsWriter& w, const TensorView& t) {
    if (t.name != "model.layers.1.mlp.up_proj.weight") w.add(t.name, t.dtype, t.shape, t.data, t.nbytes);
  });
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
  expect_clean_failure(r, {"model.layers.1.mlp.up_proj.weight", "missing"}, tmp / "ck", tmp.path());
}

TEST(BadInput, WrongShape) {
  TempDir tmp;
  auto hf = copy_model(tmp, "qwen2");
  rewrite_weights(hf, [](SafetensorsWriter& w, const TensorView& t) {
    if (t.name == "model.layers.0.self_attn.k_proj.weight") {
      std::vector<uint8_t> bytes(t.nbytes / 2);
      w.add(t.name, t.dtype, {t.shape[0] / 2, t.shape[1]}, bytes);
    } else {
      w.add(t.name, t.dtype, t.shape, t.data, t.nbytes);
    }
  });
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
  expect_clean_failure(r, {"model.layers.0.self_attn.k_proj.weight", "[16, 96]", "[32, 96]"}, tmp / "ck", tmp.path());
}

// Replaces element `index` of tensor `name` in safetensors `file` (a float tensor) by `value`.
void poison(const std::string& file, const std::string& name, int64_t index, float value) {
  SafetensorsWriter w;
  {
    SafetensorsFile f(file);
    for (auto& [n, t] : f.tensors()) {
      std::vector<uint8_t> bytes(static_cast<const uint8_t*>(t.data), static_cast<const uint8_t*>(t.data) + t.nbytes);
      if (n == name) convert_from_f32(&value, t.dtype, bytes.data() + size_t(index) * dtype_size(t.dtype), 1);
      w.add(n, t.dtype, t.shape, std::move(bytes));
    }
  }
  w.write(file);
}

// NaN or infinite weights (or ones that overflow the dtype converted to) are refused by convert and by build,
// naming the tensor and the first bad element, instead of a run failing later with "every logit is -inf".
TEST(BadInput, NonFiniteWeights) {
  TempDir tmp;
  const std::string down = "model.layers.1.mlp.down_proj.weight";  // [128, 256] in the llama fixture
  for (float v : {std::nanf(""), INFINITY, -INFINITY}) {
    SCOPED_TRACE(v);
    auto hf = copy_model(tmp, "llama");
    poison(hf + "/model.safetensors", down, 300, v);  // row 1, column 44
    auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
    expect_clean_failure(r, {"hf-llama", down, "[1, 44]", "flat index 300", "non-finite"}, tmp / "ck",
                         tmp.path());
    fs::remove_all(hf);
  }
  auto hf = copy_model(tmp, "llama");
  poison(hf + "/model.safetensors", down, 5, 1e5f);  // finite in bfloat16 and float32, +inf in float16
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck") + " --dtype float16");
  expect_clean_failure(r, {down, "[0, 5]", "overflows float16"}, tmp / "ck", tmp.path());
  // A checkpoint edited afterwards: build refuses it.
  ASSERT_EQ(run_kiln("convert --model " + hf + " --output " + (tmp / "ck")).exit_code, 0);
  poison(tmp / "ck/rank0.safetensors", "layers.0.attention.qkv.weight", 1000, std::nanf(""));
  r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en"));
  expect_clean_failure(r, {"rank0.safetensors", "layers.0.attention.qkv.weight", "[7, 104]", "non-finite"},
                       tmp / "en", tmp.path());
}

TEST(BadInput, UnknownArchitecture) {
  TempDir tmp;
  auto hf = copy_model(tmp, "llama");
  auto cfg = read_json_file(hf + "/config.json");
  cfg["architectures"] = {"FalconForCausalLM"};
  write_json_file(hf + "/config.json", cfg);
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
  expect_clean_failure(r, {"config.json", "FalconForCausalLM"}, tmp / "ck", tmp.path());
}

TEST(BadInput, MissingConfigField) {
  TempDir tmp;
  auto hf = copy_model(tmp, "mistral");
  auto cfg = read_json_file(hf + "/config.json");
  cfg.erase("num_hidden_layers");
  write_json_file(hf + "/config.json", cfg);
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
  expect_clean_failure(r, {"config.json", "num_hidden_layers"}, tmp / "ck", tmp.path());
}

// Sizes in a config are bounded before anything is allocated from them: a num_hidden_layers of 10^9 made convert
// build a list of 9 billion tensors (gigabytes) before any tensor was found missing.
TEST(BadInput, HugeConfigSizes) {
  TempDir tmp;
  auto hf = copy_model(tmp, "llama");
  const auto orig = read_json_file(hf + "/config.json");
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"num_hidden_layers", {"num_hidden_layers", "1000000000", "4096"}},
      {"hidden_size", {"hidden_size", "1000000000", "262144"}},
      {"vocab_size", {"vocab_size", "1000000000", "16777216"}},
      {"intermediate_size", {"intermediate_size", "1000000000", "1048576"}},
      {"max_position_embeddings", {"max_position_embeddings", "1000000000", "16777216"}},
  };
  for (auto& [field, names] : cases) {
    SCOPED_TRACE(field);
    auto cfg = orig;
    cfg[field] = 1000000000;
    write_json_file(hf + "/config.json", cfg);
    auto r = run_kiln_capped("convert --model " + hf + " --output " + (tmp / "ck"), 1 << 20);
    auto want = names;
    want.push_back("config.json");
    expect_clean_failure(r, want, tmp / "ck", tmp.path());
  }
  auto cfg = orig;
  cfg["rms_norm_eps"] = -1.0;
  write_json_file(hf + "/config.json", cfg);
  expect_clean_failure(run_kiln("convert --model " + hf + " --output " + (tmp / "ck")), {"config.json", "norm_eps"},
                       tmp / "ck", tmp.path());
}

TEST(BadInput, MalformedConfig) {
  TempDir tmp;
  auto hf = copy_model(tmp, "llama");
  std::ofstream(hf + "/config.json") << "{\"architectures\": [\"LlamaForCausalLM\"";
  auto r = run_kiln("convert --model " + hf + " --output " + (tmp / "ck"));
  expect_clean_failure(r, {"config.json", "malformed"}, tmp / "ck", tmp.path());
}

TEST(BadInput, OutputExists) {
  TempDir tmp;
  fs::create_directory(tmp / "ck");
  std::ofstream(tmp / "ck/keep.txt") << "user data";
  auto r = run_kiln("convert --model " + model_dir("llama") + " --output " + (tmp / "ck"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("already exists"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(tmp / "ck/keep.txt")) << "existing output must be left untouched";
  EXPECT_EQ(leftovers(tmp.path()), "");
}

// An output path that is a directory: refused before any work, naming the flag, and no PATH.tmp left beside it
// (write_json_file used to leave DIR.tmp when its rename onto the directory failed).
TEST(BadInput, OutputPathIsADirectory) {
  TempDir tmp;
  ASSERT_EQ(run_kiln("convert --model " + model_dir("llama") + " --output " + (tmp / "ck/")).exit_code, 0)
      << "a trailing '/' names the directory to create";
  ASSERT_EQ(run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en")).exit_code, 0);
  fs::create_directory(tmp / "out");
  std::ofstream(tmp / "req.jsonl") << R"({"input_ids": [1, 2], "max_new_tokens": 2})" << "\n";
  const std::string run = "run --engine " + (tmp / "en") + " ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {run + "--input-ids 1,2 --max-new-tokens 2 --output-file " + (tmp / "out"), "--output-file"},
      {run + "--input-file " + (tmp / "req.jsonl") + " --output-file " + (tmp / "out"), "--output-file"},
      {run + "--input-ids 1,2 --max-new-tokens 2 --logits-out " + (tmp / "out"), "--logits-out"},
      {"bench --engine " + (tmp / "en") + " --num-requests 1 --input-len 2 --output-len 2 --json-out " + (tmp / "out"),
       "--json-out"},
      {run + "--input-ids 1,2 --max-new-tokens 2 --output-file " + (tmp / "missing/x.json"), "does not exist"},
  };
  for (auto& [args, flag] : cases) {
    SCOPED_TRACE(args);
    auto r = run_kiln(args);
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find(flag), std::string::npos) << r.out;
    EXPECT_EQ(leftovers(tmp.path()), "");
    EXPECT_TRUE(fs::is_empty(tmp / "out"));
  }
  // An existing file as the output directory: left as it was, nothing beside it.
  std::ofstream(tmp / "file") << "user data";
  auto r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "file"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("already exists"), std::string::npos) << r.out;
  EXPECT_EQ(read_text_file(tmp / "file"), "user data");
  EXPECT_EQ(leftovers(tmp.path()), "");
}

TEST(BadInput, LimitsTheModelCannotHold) {
  TempDir tmp;
  ASSERT_EQ(run_kiln("convert --model " + model_dir("gpt2") + " --output " + (tmp / "ck")).exit_code, 0);
  auto r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en") + " --max-seq-len 4096");
  expect_clean_failure(r, {"--max-seq-len", "128"}, tmp / "en", tmp.path());
  r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en") + " --max-seq-len 64 --max-input-len 100");
  expect_clean_failure(r, {"--max-input-len"}, tmp / "en", tmp.path());
  r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en") + " --max-batch-size 0");
  expect_clean_failure(r, {"--max-batch-size"}, tmp / "en", tmp.path());
  // Huge limits: named with their bound (B x S used to overflow into "--max-num-tokens 0").
  r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en") + " --max-batch-size 4611686018427387904");
  expect_clean_failure(r, {"--max-batch-size 4611686018427387904", "65536"}, tmp / "en", tmp.path());
  r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en") + " --max-beam-width 100000");
  expect_clean_failure(r, {"--max-beam-width 100000", "--max-batch-size 8"}, tmp / "en", tmp.path());
  r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en") + " --max-num-tokens 100000000000");
  expect_clean_failure(r, {"--max-num-tokens 100000000000", "1048576"}, tmp / "en", tmp.path());
}

// --batch-invariant on the cuda target for a model its invariant attention cannot run (5 query heads per kv head):
// refused before anything is measured, so also on a machine without a GPU.
TEST(BadInput, BatchInvariantModelTheCudaTargetCannotRun) {
#ifndef KILN_WITH_CUDA
  GTEST_SKIP() << "kiln built without CUDA";
#endif
  TempDir tmp;
  std::ofstream(tmp / "config.json") << R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 320,
    "intermediate_size": 512, "num_hidden_layers": 1, "num_attention_heads": 10, "num_key_value_heads": 2,
    "vocab_size": 1000, "max_position_embeddings": 256, "torch_dtype": "float16"})";
  auto r = run_kiln("build --synthetic " + (tmp / "config.json") + " --output " + (tmp / "en") +
                    " --target cuda --batch-invariant");
  expect_clean_failure(r, {"--batch-invariant", "5 attention heads per kv head"}, tmp / "en", tmp.path());
}

TEST(BadInput, RequestsOverTheEngineLimits) {
  TempDir tmp;
  ASSERT_EQ(run_kiln("convert --model " + model_dir("llama") + " --output " + (tmp / "ck")).exit_code, 0);
  ASSERT_EQ(run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en") +
                     " --max-seq-len 32 --max-input-len 8").exit_code, 0);
  auto r = run_kiln("run --engine " + (tmp / "en") + " --input-ids 1,2,3,4,5,6,7,8,9 --max-new-tokens 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("max_input_len"), std::string::npos) << r.out;
  r = run_kiln("run --engine " + (tmp / "en") + " --input-ids 1,2,3 --max-new-tokens 30");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("max_seq_len"), std::string::npos) << r.out;
  r = run_kiln("run --engine " + (tmp / "en") + " --input-ids 1,x,3 --max-new-tokens 3");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--input-ids"), std::string::npos) << r.out;
  r = run_kiln("run --engine " + (tmp / "en") + " --input-ids 1,99999,3 --max-new-tokens 3");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("99999"), std::string::npos) << r.out;
}

TEST(BadInput, BadFlags) {
  auto r = run_kiln("convert --model x --output y --dtype float8");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--dtype"), std::string::npos) << r.out;
  r = run_kiln("build --checkpoint x --output y --target tpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--target"), std::string::npos) << r.out;
  r = run_kiln("convert --model /nonexistent/model --output /tmp/never-written");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("/nonexistent/model"), std::string::npos) << r.out;
}

// An engine.json (or checkpoint config.json) edited so that it no longer describes its weight file: refused at load
// (and build), naming the tensor. A num_layers lowered from 2 to 1 used to run the first layer alone.
TEST(BadInput, ConfigThatDoesNotMatchItsWeights) {
  TempDir tmp;
  ASSERT_EQ(run_kiln("convert --model " + model_dir("llama") + " --output " + (tmp / "ck")).exit_code, 0);
  ASSERT_EQ(run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en")).exit_code, 0);
  const auto ej = read_json_file(tmp / "en/engine.json");
  const std::string run = "run --engine " + (tmp / "en") + " --input-ids 1,2 --max-new-tokens 2";
  ASSERT_EQ(run_kiln(run).exit_code, 0);
  auto expect_refused = [&](const std::vector<std::string>& names) {
    auto r = run_kiln(run);
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    for (auto& n : names) EXPECT_NE(r.out.find(n), std::string::npos) << "should name '" << n << "': " << r.out;
  };
  auto edited = ej;
  edited["model"]["num_layers"] = 1;
  write_json_file(tmp / "en/engine.json", edited);
  expect_refused({"rank0.safetensors", "'layers.1.", "not part of the model", "(1 layers;"});
  edited["model"]["num_layers"] = 3;
  write_json_file(tmp / "en/engine.json", edited);
  expect_refused({"rank0.safetensors", "missing tensor 'layers.2."});
  edited = ej;
  edited["model"]["intermediate_size"] = 512;
  write_json_file(tmp / "en/engine.json", edited);
  expect_refused({"'layers.0.mlp.gate_up.weight'", "[512, 128]", "[1024, 128]"});
  // An extra tensor in the weight file.
  write_json_file(tmp / "en/engine.json", ej);
  {
    SafetensorsWriter w;
    {
      SafetensorsFile f(tmp / "en/rank0.safetensors");
      for (auto& [n, t] : f.tensors()) w.add(n, t.dtype, t.shape, t.data, t.nbytes);
    }
    std::vector<float> x(4, 1.0f);
    w.add_f32("layers.9.extra.weight", {4}, x.data());
    w.write(tmp / "en/rank0.safetensors");
  }
  expect_refused({"'layers.9.extra.weight'", "not part of the model"});
  // Limits edited beyond what the build allows (a max_seq_len of 10^12 sized the runtime's block tables).
  edited = ej;
  edited["limits"]["max_seq_len"] = 1000000000000;
  write_json_file(tmp / "en/engine.json", edited);
  expect_refused({"engine.json: limits:", "max-seq-len 1000000000000", "rebuild the engine"});
  edited = ej;
  edited["limits"]["max_batch_size"] = 0;
  write_json_file(tmp / "en/engine.json", edited);
  expect_refused({"engine.json: limits.max_batch_size 0"});
  // The same at build, from a checkpoint whose config.json was edited.
  auto cj = read_json_file(tmp / "ck/config.json");
  cj["num_layers"] = 1;
  write_json_file(tmp / "ck/config.json", cj);
  auto r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en2"));
  expect_clean_failure(r, {"rank0.safetensors", "'layers.1.", "not part of the model"}, tmp / "en2", tmp.path());
}

TEST(BadInput, EngineForAnotherTargetOrVersion) {
  TempDir tmp;
  ASSERT_EQ(run_kiln("convert --model " + model_dir("llama") + " --output " + (tmp / "ck")).exit_code, 0);
  ASSERT_EQ(run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "en")).exit_code, 0);
  auto ej = read_json_file(tmp / "en/engine.json");
  ej["format_version"] = 999;
  write_json_file(tmp / "en/engine.json", ej);
  auto r = run_kiln("run --engine " + (tmp / "en") + " --input-ids 1,2 --max-new-tokens 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("format version 999"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kiln::test
