// SHA-256 against FIPS 180-4's example digests and coreutils' sha256sum at every length around the block and
// padding boundaries.
#include "eval/sha256.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>

#include "common/test_util.h"

namespace kiln::eval {
namespace {

TEST(Sha256, FipsExamples) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, MatchesSha256sumAcrossBlockBoundaries) {
  test::TempDir dir;
  for (size_t n : {1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000}) {
    std::string bytes;
    for (size_t i = 0; i < n; ++i) bytes += char((i * 131 + 7) & 0xFF);
    const std::string path = dir / ("f" + std::to_string(n));
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_TRUE(f);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
    FILE* p = ::popen(("sha256sum " + path).c_str(), "r");
    ASSERT_TRUE(p);
    std::array<char, 65> hex{};
    ASSERT_EQ(std::fread(hex.data(), 1, 64, p), 64u);
    ::pclose(p);
    EXPECT_EQ(sha256_file(path), std::string(hex.data(), 64)) << n << " bytes";
  }
}

}  // namespace
}  // namespace kiln::eval
