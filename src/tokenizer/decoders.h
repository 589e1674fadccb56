// Decoders of tokenizer.json: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence; none at
// all joins tokens with a space, as the library does. Anything else is a kiln::Error naming the type.
//
// Two implementations of the same semantics: decode_tokens() follows the library's decode_chain step by step
// over whole token lists; DecodeStream takes one token at a time and emits text as soon as no later token
// can change it. Tests hold the two equal.
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace kiln::tok {

struct DecoderStep {
  enum class Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace } kind;
  // Replace
  std::string pattern, content;
  std::shared_ptr<Regex> regex;  // set for a Regex pattern; a String pattern is matched literally
  // Strip
  uint32_t strip_char = 0;
  size_t start = 0, stop = 0;
  // Metaspace
  std::string replacement;
  bool prepend = true;  // prepend_scheme != never: the first token loses its replacement characters
};

struct DecoderSpec {
  bool none = true;  // no decoder: tokens joined with " "
  std::vector<DecoderStep> steps;
};

DecoderSpec make_decoder(const nlohmann::json& j);

// ByteFallback's reading of a token: the byte of "<0xAB>", or -1.
int byte_fallback_value(std::string_view token);
// Replace's rewrite of one whole token.
std::string replace_for_decoder(const DecoderStep& st, std::string_view s);

// Whole-sequence decode (the library's Decoder::decode).
std::string decode_tokens(const DecoderSpec& spec, std::vector<std::string> tokens);

// Streaming decode over the same steps.
class DecodeStream {
 public:
  explicit DecodeStream(const DecoderSpec& spec);
  ~DecodeStream();
  // Feeds one whole token; returns the text that became final.
  std::string push(std::string_view token);
  // Ends the stream; returns the rest.
  std::string finish();

  struct Stage;  // one streaming step (decode_stream.cpp)

 private:
  std::vector<std::unique_ptr<Stage>> stages_;
  bool none_;
  bool first_ = true;
  bool finished_ = false;
};

}  // namespace kiln::tok
