#include "eval/csv.h"

#include "core/error.h"
#include "io/json_file.h"

namespace kiln::eval {

std::vector<CsvRecord> parse_csv(std::string_view text, const std::string& name) {
  std::vector<CsvRecord> out;
  size_t i = 0;
  int line = 1;
  while (i < text.size()) {
    if (text[i] == '\n' || (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) {  // blank line
      i += text[i] == '\r' ? 2 : 1;
      ++line;
      continue;
    }
    CsvRecord rec;
    rec.line = line;
    for (;;) {  // one field per iteration
      std::string field;
      if (i < text.size() && text[i] == '"') {
        const int open_line = line;
        ++i;
        for (;;) {
          if (i >= text.size()) fail("{}:{}: a quoted field is not closed before the end of the file", name, open_line);
          const char c = text[i++];
          if (c == '"') {
            if (i < text.size() && text[i] == '"') {
              field += '"';
              ++i;
              continue;
            }
            break;
          }
          if (c == '\n') ++line;
          field += c;
        }
        if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
          fail("{}:{}: text after a closing quote (a field with quotes must be quoted whole, quotes doubled)", name,
               line);
      } else {
        while (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          if (text[i] == '"')
            fail("{}:{}: a quote inside an unquoted field (quote the field, double its quotes)", name, line);
          field += text[i++];
        }
      }
      rec.fields.push_back(std::move(field));
      if (i < text.size() && text[i] == ',') {
        ++i;
        continue;
      }
      if (i < text.size() && text[i] == '\r') {
        if (i + 1 >= text.size() || text[i + 1] != '\n') fail("{}:{}: a carriage return outside quotes", name, line);
        ++i;
      }
      if (i < text.size() && text[i] == '\n') {
        ++i;
        ++line;
      }
      break;
    }
    out.push_back(std::move(rec));
  }
  return out;
}

std::vector<CsvRecord> read_csv_file(const std::string& path) { return parse_csv(read_text_file(path), path); }

}  // namespace kiln::eval
