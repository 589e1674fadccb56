// Text datasets for calibration and evaluation: a plain text file (one document: the whole file) or JSONL (a file
// named *.jsonl: one {"text": ...} object per non-empty line, each a document).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::cli {

// The documents of `path`. Errors name `flag` and the file: missing, unreadable, empty (no text at all), or a JSONL
// line that is not an object with a string "text" (with its line number).
std::vector<std::string> read_text_dataset(const std::string& path, const std::string& flag);

// A pre-tokenized *.jsonl, whose first record has "input_ids": every record's ids, concatenated (each record must
// hold a list of non-negative integers "input_ids"). Nothing for any other file.
std::optional<std::vector<int32_t>> read_token_dataset(const std::string& path, const std::string& flag);

}  // namespace kiln::cli
