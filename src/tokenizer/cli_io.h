// The output of `kiln tokenize` / `kiln detokenize`, as functions the CLI and the tests share.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::tok {

// "1, 2,3" -> {1, 2, 3}; "" -> {}. Anything else is a kiln::Error naming the bad item.
std::vector<int32_t> parse_id_list(std::string_view s);

// {"ids": [...]} for `text` encoded by the tokenizer at `tokenizer_path`.
std::string tokenize_json(const std::string& tokenizer_path, std::string_view text, bool add_special_tokens);

// {"text": "..."} (JSON-escaped) for the ids, special tokens kept.
std::string detokenize_json(const std::string& tokenizer_path, std::string_view ids_csv);

}  // namespace kiln::tok
