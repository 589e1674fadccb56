// What `kiln tokenize` and `kiln detokenize` print (tools/kiln/cmd_tokenize.cpp wires these to the CLI).
#include "tokenizer/cli_io.h"

#include <charconv>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "kiln/tokenizer.h"

namespace kiln::tok {

std::vector<int32_t> parse_id_list(std::string_view s) {
  std::vector<int32_t> ids;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
  };
  skip_ws();
  if (i == s.size()) return ids;
  while (true) {
    skip_ws();
    size_t b = i;
    while (i < s.size() && s[i] != ',') ++i;
    std::string_view item = s.substr(b, i - b);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t' || item.back() == '\n')) item.remove_suffix(1);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < 0 || v > INT32_MAX)
      fail("--ids: '{}' is not a token id (expected comma-separated non-negative integers)", std::string(item));
    ids.push_back(static_cast<int32_t>(v));
    if (i == s.size()) break;
    ++i;  // ','
  }
  return ids;
}

std::string tokenize_json(const std::string& tokenizer_path, std::string_view text, bool add_special_tokens) {
  auto tok = Tokenizer::load(tokenizer_path);
  std::vector<int32_t> ids = tok->encode(text, add_special_tokens);
  std::string out = "{\"ids\": [";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(ids[i]);
  }
  out += "]}";
  return out;
}

std::string detokenize_json(const std::string& tokenizer_path, std::string_view ids_csv) {
  std::vector<int32_t> ids = parse_id_list(ids_csv);
  auto tok = Tokenizer::load(tokenizer_path);
  std::string text = tok->decode(ids, /*skip_special_tokens=*/false);
  return "{\"text\": " + nlohmann::json(text).dump() + "}";
}

}  // namespace kiln::tok
