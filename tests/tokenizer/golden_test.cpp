// Every case of the tokenizers-library golden file (tests/data/tokenizers/tokenizer_golden.json): ids with
// and without special tokens, the decoded text, and incremental decoding token by token.
#include <gtest/gtest.h>

#include <set>

#include "tok_test_util.h"
#include "tokenizer/unicode.h"

namespace kiln {
namespace {

using testing::reference_tokenizer;

const nlohmann::json& golden() {
  static const nlohmann::json j = testing::read_json_file(testing::source_path("tests/data/tokenizers/tokenizer_golden.json"));
  return j;
}

TEST(TokenizerGolden, HasAllFourTokenizers) {
  std::set<std::string> names;
  for (const auto& c : golden()["cases"]) names.insert(c["tokenizer"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"llama3", "qwen3", "llama2", "gpt2"}));
  EXPECT_GE(golden()["cases"].size(), 128u);
}

TEST(TokenizerGolden, EncodeMatchesEveryCase) {
  int checked = 0;
  for (const auto& c : golden()["cases"]) {
    const Tokenizer* tok = reference_tokenizer(c["tokenizer"]);
    ASSERT_NE(tok, nullptr);
    const std::string text = c["text"];
    const bool special = c["add_special_tokens"];
    EXPECT_EQ(tok->encode(text, special), c["ids"].get<std::vector<int32_t>>())
        << c["tokenizer"] << " special=" << special << " text=" << nlohmann::json(text).dump();
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(golden()["cases"].size()));
}

TEST(TokenizerGolden, DecodeMatchesEveryCase) {
  for (const auto& c : golden()["cases"]) {
    const Tokenizer* tok = reference_tokenizer(c["tokenizer"]);
    ASSERT_NE(tok, nullptr);
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->decode(ids), c["decoded"].get<std::string>())
        << c["tokenizer"] << " ids for " << nlohmann::json(c["text"]).dump();
  }
}

TEST(TokenizerGolden, IncrementalDecodeEqualsWholeDecodeTokenByToken) {
  for (const auto& c : golden()["cases"]) {
    const Tokenizer* tok = reference_tokenizer(c["tokenizer"]);
    ASSERT_NE(tok, nullptr);
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    for (bool skip : {false, true}) {
      IncrementalDecoder dec(*tok, skip);
      std::string so_far;
      for (size_t i = 0; i < ids.size(); ++i) {
        std::string piece = dec.push(ids[i]);
        EXPECT_TRUE(tok::utf8_valid(piece)) << "push emitted incomplete UTF-8";
        so_far += piece;
        // What has been emitted is always a prefix of the whole decode of what was pushed.
        std::vector<int32_t> prefix(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        std::string whole_prefix = tok->decode(prefix, skip);
        EXPECT_EQ(whole_prefix.compare(0, so_far.size(), so_far), 0)
            << c["tokenizer"] << " after token " << i << ": emitted " << nlohmann::json(so_far).dump()
            << " but decode gives " << nlohmann::json(whole_prefix).dump();
      }
      so_far += dec.flush();
      EXPECT_EQ(so_far, tok->decode(ids, skip)) << c["tokenizer"] << " " << nlohmann::json(c["text"]).dump();
    }
  }
}

}  // namespace
}  // namespace kiln
