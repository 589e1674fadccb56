// The strict CSV reader: what Python's csv module writes reads back field for field; malformed lines are errors
// naming the file and line.
#include "eval/csv.h"

#include <gtest/gtest.h>

#include "common/test_util.h"

namespace kiln::eval {
namespace {

using test::error_of;

TEST(Csv, QuotedFieldsHoldCommasNewlinesAndQuotes) {
  // As csv.writer writes ['x, y', 'two\nlines', 'say "hi"', ''] and ['plain', 'B'].
  const auto r = parse_csv("\"x, y\",\"two\nlines\",\"say \"\"hi\"\"\",\r\n\nplain,B\n", "f.csv");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].fields, (std::vector<std::string>{"x, y", "two\nlines", "say \"hi\"", ""}));
  EXPECT_EQ(r[0].line, 1);
  EXPECT_EQ(r[1].fields, (std::vector<std::string>{"plain", "B"}));
  EXPECT_EQ(r[1].line, 4);  // the quoted newline and the blank line count
}

TEST(Csv, LastRecordWithoutNewline) {
  const auto r = parse_csv("a,b", "f.csv");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].fields, (std::vector<std::string>{"a", "b"}));
}

TEST(Csv, MalformedLinesAreErrorsNamingTheLine) {
  EXPECT_EQ(error_of([] { parse_csv("a,b\n\"open,c\n", "f.csv"); }),
            "f.csv:2: a quoted field is not closed before the end of the file");
  EXPECT_EQ(error_of([] { parse_csv("a,b\nx,\"q\"tail\n", "f.csv"); }),
            "f.csv:2: text after a closing quote (a field with quotes must be quoted whole, quotes doubled)");
  EXPECT_EQ(error_of([] { parse_csv("a,b\n\nx,y\"z\n", "f.csv"); }),
            "f.csv:3: a quote inside an unquoted field (quote the field, double its quotes)");
  EXPECT_EQ(error_of([] { parse_csv("a,b\rc\n", "f.csv"); }), "f.csv:1: a carriage return outside quotes");
}

}  // namespace
}  // namespace kiln::eval
