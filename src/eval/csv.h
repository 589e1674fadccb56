// CSV as the MMLU files use it (RFC 4180, what Python's csv module writes): fields separated by ',', a field in
// double quotes may hold commas, newlines and "" (one quote); records end at "\n" or "\r\n"; blank lines are
// skipped. Strict: a quote inside an unquoted field, text after a closing quote, or a quote left open at the end
// of the file is an error naming the file and line.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace kiln::eval {

struct CsvRecord {
  std::vector<std::string> fields;
  int line = 0;  // the line the record starts on (1-based)
};

// `name` is used in error messages ("FILE:LINE: ...").
std::vector<CsvRecord> parse_csv(std::string_view text, const std::string& name);
std::vector<CsvRecord> read_csv_file(const std::string& path);  // throws naming the file when it cannot be read

}  // namespace kiln::eval
