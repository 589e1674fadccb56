// tiny-code's own tokenizer against transformers' goldens (tests/data/models/tiny-code): each prompt
// encodes (with special tokens: a BOS) to the first prompt_len ids of tokens_{i} in golden.safetensors, and the
// 48 generated ids decode, whole and incrementally, to the recorded completion.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "tok_test_util.h"

namespace kiln {
namespace {

const std::string kDir = testing::source_path("tests/data/models/tiny-code");

// tokens_{i} from golden.safetensors (8-byte little-endian header length, JSON header, data).
std::vector<int32_t> golden_tokens(int i) {
  std::ifstream f(kDir + "/golden.safetensors", std::ios::binary);
  EXPECT_TRUE(f.good());
  uint8_t len_bytes[8];
  f.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | len_bytes[k];
  std::string header(n, '\0');
  f.read(header.data(), static_cast<std::streamsize>(n));
  nlohmann::json h = nlohmann::json::parse(header);
  const auto& t = h.at("tokens_" + std::to_string(i));
  EXPECT_EQ(t.at("dtype"), "I32");
  size_t b = t.at("data_offsets")[0], e = t.at("data_offsets")[1];
  std::vector<int32_t> ids((e - b) / 4);
  f.seekg(static_cast<std::streamoff>(8 + n + b));
  f.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(e - b));
  return ids;  // little-endian on the machines kiln runs on
}

TEST(TinyCodeTokenizer, PromptsEncodeAndCompletionsDecodeAsTransformers) {
  auto tok = Tokenizer::load(kDir);  // the folder: tokenizer.json + tokenizer_config.json + generation_config.json
  EXPECT_EQ(tok->vocab_size(), 4096u);
  EXPECT_EQ(tok->bos_id(), 0);
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_EQ(tok->stop_ids(), std::vector<int32_t>{1});
  nlohmann::json golden = testing::read_json_file(kDir + "/golden.json");
  const auto& samples = golden.at("samples");
  ASSERT_EQ(samples.size(), 5u);
  for (size_t i = 0; i < samples.size(); ++i) {
    const std::string prompt = samples[i]["prompt"];
    const size_t plen = samples[i]["prompt_len"];
    std::vector<int32_t> all = golden_tokens(static_cast<int>(i));
    ASSERT_EQ(all.size(), plen + 48) << i;
    std::vector<int32_t> want_prompt(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(plen));
    EXPECT_EQ(tok->encode(prompt, true), want_prompt) << "prompt " << i;
    EXPECT_EQ(tok->encode(prompt, false),
              std::vector<int32_t>(want_prompt.begin() + 1, want_prompt.end())) << "prompt " << i;
    std::vector<int32_t> gen(all.begin() + static_cast<std::ptrdiff_t>(plen), all.end());
    EXPECT_EQ(tok->decode(gen), samples[i]["completion"].get<std::string>()) << "completion " << i;
    EXPECT_EQ(testing::decode_incrementally(*tok, gen), samples[i]["completion"].get<std::string>());
    EXPECT_EQ(tok->decode(all, true), prompt + samples[i]["completion"].get<std::string>());
  }
}

}  // namespace
}  // namespace kiln
