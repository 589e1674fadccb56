// The tokenizer and generation files of a model: carried from the Hugging Face folder through the kiln checkpoint
// into the engine (kiln convert and kiln build copy those present). Null-terminated.
#pragma once

namespace kiln {

inline constexpr const char* kCarriedFiles[] = {
    "tokenizer.json", "tokenizer_config.json",   "generation_config.json", "vocab.json",
    "merges.txt",     "special_tokens_map.json", "tokenizer.model",        nullptr};

}  // namespace kiln
