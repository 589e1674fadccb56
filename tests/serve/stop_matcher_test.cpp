// StopMatcher: text that could begin a stop string is held back; a stop string split over several pieces is found
// and cut with everything after it; the earliest stop string wins.
#include <gtest/gtest.h>

#include "serve/completion.h"

namespace kiln::serve {
namespace {

// Feeds the pieces and returns what was released, with finish() at the end.
std::string run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces, bool* stopped) {
  StopMatcher m(stops);
  std::string out;
  for (const auto& p : pieces) out += m.push(p);
  out += m.finish();
  *stopped = m.stopped();
  return out;
}

TEST(StopMatcher, NoStopStringsReleasesEverythingAtOnce) {
  StopMatcher m({});
  EXPECT_EQ(m.push("abc"), "abc");
  EXPECT_EQ(m.push(""), "");
  EXPECT_EQ(m.finish(), "");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, HoldsBackAPossibleBeginningAndReleasesItWhenItIsNot) {
  StopMatcher m({"\n\ndef"});
  EXPECT_EQ(m.push("x = 1\n"), "x = 1");  // "\n" may begin the stop string
  EXPECT_EQ(m.push("\nd"), "");           // "\n\nd" still may
  EXPECT_EQ(m.push("o"), "\n\ndo");       // "\n\ndo" may not
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, FindsAStopStringSplitAcrossPiecesAndCutsIt) {
  bool stopped = false;
  EXPECT_EQ(run({"return"}, {"  ret", "ur", "n x\n", "more"}, &stopped), "  ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(run({"END"}, {"abcE", "N", "Dxyz"}, &stopped), "abc");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcher, TheEarliestStopStringWins) {
  bool stopped = false;
  EXPECT_EQ(run({"world", "lo w"}, {"hello world"}, &stopped), "hel");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcher, NothingAfterTheStop) {
  StopMatcher m({"#"});
  EXPECT_EQ(m.push("a#b"), "a");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("c"), "");
  EXPECT_EQ(m.finish(), "");
}

TEST(StopMatcher, HeldTextIsReleasedAtTheEnd) {
  bool stopped = false;
  EXPECT_EQ(run({"abc"}, {"xyz a", "b"}, &stopped), "xyz ab");
  EXPECT_FALSE(stopped);
}

TEST(StopMatcher, MultiByteCharacters) {
  bool stopped = false;
  EXPECT_EQ(run({"é!"}, {"café", "!", " ok"}, &stopped), "caf");
  EXPECT_TRUE(stopped);
}

}  // namespace
}  // namespace kiln::serve
