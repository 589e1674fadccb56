#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/test_util.h"
#include "core/error.h"
#include "io/json_file.h"

namespace kiln {
namespace {

using test::TempDir;

TEST(Safetensors, WriteReadRoundTrip) {
  TempDir tmp;
  SafetensorsWriter w;
  std::vector<float> a{1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b{0x3f80, 0x4000};
  w.add_f32("a", {2, 3}, a.data());
  w.add("b", DType::BF16, {2}, b.data(), 4);
  w.add("empty", DType::F32, {0, 4}, nullptr, 0);
  w.set_metadata("format", "pt");
  w.write(tmp / "x.safetensors");
  EXPECT_FALSE(std::filesystem::exists(tmp / "x.safetensors.tmp"));

  SafetensorsFile f(tmp / "x.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const auto& ta = f.get("a");
  EXPECT_EQ(ta.dtype, DType::F32);
  EXPECT_EQ(ta.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(static_cast<const float*>(ta.data)[5], 6.0f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ta.data) % 8, 0u) << "data section is 8-byte aligned";
  EXPECT_EQ(static_cast<const uint16_t*>(f.get("b").data)[1], 0x4000);
  EXPECT_EQ(f.get("empty").numel(), 0);
  EXPECT_THROW(f.get("nope"), Error);
}

TEST(Safetensors, WriterRejectsInconsistentInput) {
  SafetensorsWriter w;
  std::vector<uint8_t> bytes(12);
  EXPECT_THROW(w.add("x", DType::F32, {2, 2}, bytes), Error);
  w.add("x", DType::F32, {3}, bytes);
  EXPECT_THROW(w.add("x", DType::F32, {3}, bytes), Error);
}

void write_raw(const std::string& path, const std::string& header, size_t data_bytes) {
  std::ofstream f(path, std::ios::binary);
  uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header;
  f << std::string(data_bytes, '\0');
}

std::string error_of(const std::string& path) {
  try {
    SafetensorsFile f(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, ValidatesHeader) {
  TempDir tmp;
  std::string p = tmp / "bad.safetensors";
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 8);
  EXPECT_EQ(error_of(p), "");
  write_raw(p, R"({"t": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}})", 8);
  EXPECT_NE(error_of(p).find("unknown dtype"), std::string::npos);
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  EXPECT_NE(error_of(p).find("needs 12 bytes"), std::string::npos);
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8);
  EXPECT_NE(error_of(p).find("reversed"), std::string::npos);
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4);
  EXPECT_NE(error_of(p).find("past the end"), std::string::npos);
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8);
  EXPECT_NE(error_of(p).find("bad dimension"), std::string::npos);
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "u": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8);
  EXPECT_NE(error_of(p).find("overlap"), std::string::npos);
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [2]}})", 8);
  EXPECT_NE(error_of(p).find("data_offsets"), std::string::npos);
  write_raw(p, R"({"t": )", 8);
  EXPECT_NE(error_of(p).find("malformed header"), std::string::npos);
  {
    std::ofstream f(p, std::ios::binary);
    f << "abc";
  }
  EXPECT_NE(error_of(p).find("truncated"), std::string::npos);
  write_raw(p, std::string(100, ' '), 0);
  {  // header length larger than the file
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t n = 1000;
    f.write(reinterpret_cast<const char*>(&n), 8);
  }
  EXPECT_NE(error_of(p).find("truncated"), std::string::npos);
  EXPECT_NE(error_of(tmp / "missing.safetensors").find("cannot open"), std::string::npos);
}

TEST(Safetensors, ShardedIndex) {
  TempDir tmp;
  std::vector<float> a{1, 2}, b{3};
  SafetensorsWriter w1, w2;
  w1.add_f32("a", {2}, a.data());
  w2.add_f32("b", {1}, b.data());
  w1.write(tmp / "model-00001-of-00002.safetensors");
  w2.write(tmp / "model-00002-of-00002.safetensors");
  write_json_file(tmp / "model.safetensors.index.json",
                  {{"weight_map", {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}});
  SafetensorsSet s(tmp.path());
  EXPECT_EQ(static_cast<const float*>(s.get("b").data)[0], 3.0f);
  EXPECT_EQ(s.names().size(), 2u);
  // A shard the index names but that is missing.
  write_json_file(tmp / "model.safetensors.index.json",
                  {{"weight_map", {{"a", "model-00001-of-00002.safetensors"}, {"c", "model-00003.safetensors"}}}});
  try {
    SafetensorsSet bad(tmp.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00003.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln
