// Components one at a time, on small tokenizer.json files written by the tests: split behaviours, Metaspace
// prepend schemes, added-token rules, byte fallback and unk, normalized added tokens, invalid UTF-8, and the
// streaming decoder against the whole-sequence decoder on random token sequences.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "core/error.h"
#include "tok_test_util.h"
#include "tokenizer/decoders.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace kiln {
namespace {

using nlohmann::json;

// Writes a tokenizer.json to a fresh temporary folder and loads it.
std::unique_ptr<Tokenizer> load_json(const json& j) {
  static int n = 0;
  auto dir = std::filesystem::temp_directory_path() / ("kiln_tok_components_" + std::to_string(::getpid()) + "_" +
                                                       std::to_string(n++));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << j.dump();
  return Tokenizer::load((dir / "tokenizer.json").string());
}

json bpe(json vocab, json merges = json::array()) {
  return {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
}

json added(const std::string& content, int id, json flags = json::object()) {
  json t = {{"content", content}, {"id", id}, {"special", false}, {"lstrip", false}, {"rstrip", false},
            {"normalized", false}, {"single_word", false}};
  for (auto it = flags.begin(); it != flags.end(); ++it) t[it.key()] = it.value();
  return t;
}

std::vector<std::string> split(const std::string& text, tok::SplitBehavior b, bool invert) {
  tok::Regex re("-", true);
  std::vector<tok::Span> m;
  re.find_all(text, m);
  std::vector<tok::Piece> out;
  tok::split_piece({text, true}, m, b, invert, out);
  std::vector<std::string> s;
  for (const auto& p : out) s.emplace_back(p.text);
  return s;
}

TEST(TokenizerComponents, SplitBehaviours) {
  using B = tok::SplitBehavior;
  using V = std::vector<std::string>;
  const std::string t = "the-final--countdown";
  EXPECT_EQ(split(t, B::Removed, false), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split(t, B::Isolated, false), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split(t, B::MergedWithPrevious, false), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split(t, B::MergedWithNext, false), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split(t, B::Contiguous, false), (V{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(split(t, B::Removed, true), (V{"-", "-", "-"}));
  EXPECT_EQ(split(t, B::MergedWithPrevious, true), (V{"the", "-final", "-", "-countdown"}));
}

TEST(TokenizerComponents, RegexMatchesOnigurumaWhitespace) {
  // U+0085 (NEL) is \s for Oniguruma (the library's regex engine) but not for plain PCRE2.
  tok::Regex re("\\s+", false);
  std::vector<tok::Span> m;
  re.find_all("a\xC2\x85 b", m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].start, 1u);
  EXPECT_EQ(m[0].end, 4u);
  EXPECT_EQ(tok::translate_pattern("[^\\s\\p{N}]|\\S").substr(0, 15), "[^\\s\\x{85}\\p{N}");
  EXPECT_NE(tok::translate_pattern("\\S").find("[^\\s\\x{85}]"), std::string::npos);
}

TEST(TokenizerComponents, RegexKnowsLettersNewerThanPcre2Tables) {
  // U+1E030 and U+31350 are letters since Unicode 15.0 (Oniguruma knows them; Debian 12's PCRE2 is 14.0).
  for (const char* s : {"\U0001E030", "\U00031350"}) {
    tok::Regex re("\\p{L}+", false);
    std::vector<tok::Span> m;
    re.find_all(s, m);
    ASSERT_EQ(m.size(), 1u) << s;
    EXPECT_EQ(m[0].end - m[0].start, 4u);
    tok::Regex neg("[^\\s\\p{L}\\p{N}]+", false);
    m.clear();
    neg.find_all(s, m);
    EXPECT_TRUE(m.empty()) << s;
  }
}

json metaspace_tokenizer(const std::string& scheme) {
  return {{"model", bpe({{"\u2581", 0}, {"a", 1}, {"b", 2}, {"\u2581a", 3}, {"<s>", 4}}, {"\u2581 a"})},
          {"added_tokens", {added("<s>", 4, {{"special", true}})}},
          {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", scheme}, {"split", true}}},
          {"decoder", {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", scheme}, {"split", true}}}};
}

TEST(TokenizerComponents, MetaspacePrependSchemes) {
  using V = std::vector<int32_t>;
  // "first" prepends only to the piece at the start of the input, not after an added token.
  EXPECT_EQ(load_json(metaspace_tokenizer("first"))->encode("a <s>a", false), (V{3, 0, 4, 1}));
  EXPECT_EQ(load_json(metaspace_tokenizer("always"))->encode("a <s>a", false), (V{3, 0, 4, 3}));
  EXPECT_EQ(load_json(metaspace_tokenizer("never"))->encode("a <s>a", false), (V{1, 0, 4, 1}));
  // Decoding drops the replacement of the first token only, unless the scheme is never.
  auto first = load_json(metaspace_tokenizer("first"));
  EXPECT_EQ(first->decode({3, 0, 3}), "a  a");
  EXPECT_EQ(load_json(metaspace_tokenizer("never"))->decode({3, 0, 3}), " a  a");
  EXPECT_EQ(testing::decode_incrementally(*first, {3, 0, 3}), "a  a");
}

json added_tokens_tokenizer() {
  return {{"model", bpe({{"a", 0}, {"b", 1}, {"c", 2}, {" ", 3}})},
          {"added_tokens",
           {added("<x>", 4, {{"lstrip", true}}), added("<y>", 5, {{"rstrip", true}}), added("ab", 6, {{"single_word", true}})}}};
}

TEST(TokenizerComponents, AddedTokensLstripRstripSingleWord) {
  using V = std::vector<int32_t>;
  auto t = load_json(added_tokens_tokenizer());
  EXPECT_EQ(t->encode("c  <x>  c"), (V{2, 4, 3, 3, 2}));
  EXPECT_EQ(t->encode("c <y>  c"), (V{2, 3, 5, 2}));
  EXPECT_EQ(t->encode("ab cab abc ab"), (V{6, 3, 2, 0, 1, 3, 0, 1, 2, 3, 6}));
  EXPECT_EQ(t->decode({6, 3, 4}), "ab   <x>");  // no decoder: tokens joined by spaces
}

TEST(TokenizerComponents, NormalizedAddedTokensMatchAfterNormalization) {
  using V = std::vector<int32_t>;
  json j = {{"model", bpe({{"a", 0}, {"b", 1}})},
            {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}}},
            {"added_tokens", {added("XY", 2, {{"normalized", true}}), added("<S>", 3, {{"special", true}})}}};
  auto t = load_json(j);
  EXPECT_EQ(t->encode("AxYB"), (V{0, 2, 1}));
  EXPECT_EQ(t->encode("A<S>b"), (V{0, 3, 1}));  // special tokens are found in the raw text
  EXPECT_TRUE(t->is_special(3));
  EXPECT_FALSE(t->is_special(2));
  EXPECT_EQ(t->decode({0, 2, 3}, true), "a XY");  // skip_special_tokens drops <S> only
}

TEST(TokenizerComponents, ByteFallbackUnkAndFuse) {
  using V = std::vector<int32_t>;
  json j = {{"model", {{"type", "BPE"}, {"vocab", {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}}},
                       {"merges", json::array()}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true}}},
            {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}}}};
  auto t = load_json(j);
  EXPECT_EQ(t->encode("a\u00e9\u20ac\u20aca"), (V{1, 2, 3, 0, 1}));  // é by its bytes; two € fused into one unk
  EXPECT_EQ(t->decode({1, 2, 3, 0, 1}), "a\u00e9<unk>a");
  EXPECT_EQ(t->decode({1, 2, 1}), "a\uFFFDa");  // a lone byte of a 2-byte sequence
  EXPECT_EQ(testing::decode_incrementally(*t, {1, 2, 3, 0, 1}), "a\u00e9<unk>a");
}

TEST(TokenizerComponents, IgnoreMergesAndDigits) {
  using V = std::vector<int32_t>;
  json model = bpe({{"1", 0}, {"2", 1}, {"3", 2}, {"12", 3}, {"123", 4}, {"23", 5}}, {"2 3", "1 2"});
  model["ignore_merges"] = true;
  json j = {{"model", model}};
  EXPECT_EQ(load_json(j)->encode("123"), (V{4}));  // in the vocabulary as a whole
  j["model"]["ignore_merges"] = false;
  EXPECT_EQ(load_json(j)->encode("123"), (V{0, 5}));  // "2 3" ranks first
  j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
  EXPECT_EQ(load_json(j)->encode("123"), (V{0, 1, 2}));
}

TEST(TokenizerComponents, InvalidUtf8IsReplacedNotFatal) {
  const Tokenizer* gpt2 = testing::reference_tokenizer("gpt2");
  ASSERT_NE(gpt2, nullptr);
  const std::string bad = std::string("ok\xC3") + "(" + "\xE2\x82" + "x\xFF";
  EXPECT_EQ(gpt2->decode(gpt2->encode(bad)), "ok\uFFFD(\uFFFDx\uFFFD");
  EXPECT_EQ(tok::utf8_lossy("\xF0\x9F\x98"), "\uFFFD");  // one maximal subpart, one U+FFFD
  EXPECT_EQ(tok::utf8_lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // surrogates are not UTF-8
}

TEST(TokenizerComponents, ByteLevelRawModeEqualsMappedMode) {
  // A ByteLevel followed by another step cannot use raw bytes; both paths must give the same ids.
  const Tokenizer* llama3 = testing::reference_tokenizer("llama3");
  ASSERT_NE(llama3, nullptr);
  json j = testing::read_json_file(testing::source_path("third_party/tokenizers/llama3/tokenizer.json"));
  j["pre_tokenizer"]["pretokenizers"].push_back({{"type", "Sequence"}, {"pretokenizers", json::array()}});
  auto mapped = load_json(j);
  for (const char* s : {"Hello world", "  x\n\n\ty", "\u4eca\u5929 \U0001F600!", "I'll 1234 <|eot_id|>"})
    EXPECT_EQ(mapped->encode(s), llama3->encode(s)) << s;
}

TEST(TokenizerComponents, ConcurrentEncodesAgree) {
  const Tokenizer* llama3 = testing::reference_tokenizer("llama3");
  ASSERT_NE(llama3, nullptr);
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i)
    texts.push_back("doc " + std::to_string(i) + ": the quick brown fox " + std::string(static_cast<size_t>(i % 7), ' ') +
                    "\u4eca\u5929 " + std::to_string(i * 7919) + " jumps<|eot_id|>");
  std::vector<std::vector<int32_t>> want;
  for (const auto& t : texts) want.push_back(llama3->encode(t));
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 3; ++rep)
        for (size_t i = 0; i < texts.size(); ++i) bad[static_cast<size_t>(k)] += llama3->encode(texts[i]) != want[i];
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
}

// The streaming decoder against the whole-sequence one, on random sequences of awkward tokens.
TEST(TokenizerComponents, StreamingDecodeEqualsWholeDecodeOnRandomTokens) {
  const std::vector<json> specs = {
      {{"type", "Sequence"},
       {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                     {{"type", "ByteFallback"}}, {{"type", "Fuse"}}, {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}},
      {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}},
      {{"type", "ByteLevel"}},
      {{"type", "Sequence"}, {"decoders", {{{"type", "Strip"}, {"content", " "}, {"start", 2}, {"stop", 2}}}}},
      {{"type", "Sequence"},
       {"decoders", {{{"type", "Fuse"}}, {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 2}},
                     {{"type", "Replace"}, {"pattern", {{"String", "ab"}}}, {"content", "X"}}}}},
      {{"type", "Sequence"},
       {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}},
                     {{"type", "Fuse"}}, {{"type", "Replace"}, {"pattern", {{"Regex", "a+b"}}}, {"content", "R"}}}}},
  };
  const std::vector<std::string> pool = {"\u2581", "\u2581a", "b", "ab", "a", "<0xE4>", "<0xBD>", "<0xA0>", "<0x41>",
                                         "<0xFF>", " ", "  ", "\u0120", "\u00e9", "\u2581\u2581", "a\u2581", "<0x20>",
                                         "\u00c3", "\u00a9", "\u00e2\u0124", ""};
  std::mt19937 rng(7);
  for (const json& sj : specs) {
    tok::DecoderSpec spec = tok::make_decoder(sj);
    for (int iter = 0; iter < 3000; ++iter) {
      std::vector<std::string> toks(rng() % 12);
      for (auto& t : toks) t = pool[rng() % pool.size()];
      std::string whole = tok::decode_tokens(spec, toks);
      tok::DecodeStream st(spec);
      std::string streamed;
      for (const auto& t : toks) {
        std::string piece = st.push(t);
        ASSERT_TRUE(tok::utf8_valid(piece));
        streamed += piece;
      }
      streamed += st.finish();
      std::string joined;
      for (const auto& t : toks) joined += "[" + t + "]";
      ASSERT_EQ(streamed, whole) << sj.dump() << " tokens " << joined;
    }
  }
}

}  // namespace
}  // namespace kiln
