// libFuzzer target over encode -> decode. The first input byte picks a tokenizer, the rest is the text.
//   - byte-level tokenizers (llama3, gpt2, tiny-code; qwen3 up to its NFC normalizer) give back valid UTF-8
//     input exactly, and invalid input as its U+FFFD-replaced form (the defined behaviour of encode);
//   - every tokenizer (llama2 too) decodes incrementally to exactly the whole decode;
//   - nothing crashes or trips ASan/UBSan.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kiln/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

struct Entry {
  std::unique_ptr<kiln::Tokenizer> tok;
  bool byte_level;
  bool nfc;
};
std::vector<Entry> g_toks;

void add(const std::string& rel, bool byte_level, bool nfc) {
  std::string p = std::string(KILN_SOURCE_DIR) + "/" + rel;
  if (!std::filesystem::exists(p)) {
    std::fprintf(stderr, "tokenizer_fuzz: %s is missing: run scripts/fetch-tokenizers.sh\n", p.c_str());
    std::abort();
  }
  g_toks.push_back({kiln::Tokenizer::load(p), byte_level, nfc});
}

[[noreturn]] void die(const char* what, const std::string& text) {
  std::fprintf(stderr, "tokenizer_fuzz: %s (input of %zu bytes)\n", what, text.size());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  add("third_party/tokenizers/llama3/tokenizer.json", true, false);
  add("third_party/tokenizers/gpt2/vocab.json", true, false);
  add("tests/data/models/tiny-code/tokenizer.json", true, false);
  add("third_party/tokenizers/qwen3/tokenizer.json", true, true);
  add("third_party/tokenizers/llama2/tokenizer.json", false, false);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Entry& e = g_toks[data[0] % g_toks.size()];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  // Round trip without the post-processor's special tokens; with them, the same checks but the text itself.
  for (bool special : {false, true}) {
    std::vector<int32_t> ids = e.tok->encode(text, special);
    for (int32_t id : ids)
      if (id < 0 || static_cast<size_t>(id) >= e.tok->vocab_size())
        die("encode produced an id outside the vocabulary", text);
    std::string decoded = e.tok->decode(ids);
    if (!kiln::tok::utf8_valid(decoded)) die("decode produced invalid UTF-8", text);
    if (e.byte_level && !special) {
      std::string expect = kiln::tok::utf8_lossy(text);
      if (e.nfc) kiln::tok::normalize(kiln::tok::NormForm::NFC, expect);
      if (decoded != expect) die("byte-level round trip differs", text);
    }
    for (bool skip : {false, true}) {
      kiln::IncrementalDecoder dec(*e.tok, skip);
      std::string streamed;
      for (int32_t id : ids) {
        std::string piece = dec.push(id);
        if (!kiln::tok::utf8_valid(piece)) die("incremental decode emitted invalid UTF-8", text);
        streamed += piece;
      }
      streamed += dec.flush();
      if (streamed != e.tok->decode(ids, skip)) die("incremental decode differs from decode", text);
    }
  }
  return 0;
}
