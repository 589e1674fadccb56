#include "core/finite.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/thread_pool.h"

namespace kiln {
namespace {

TEST(Finite, FirstNonFinite) {
  std::vector<float> v{0.f, -1.f, 3e38f, -3e38f, 65504.f};
  EXPECT_EQ(first_non_finite(v.data(), v.size()), -1);
  for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    v[2] = bad;
    EXPECT_EQ(first_non_finite(v.data(), v.size()), 2);
    v[2] = 1.f;
  }
  EXPECT_EQ(first_non_finite(v.data(), 0), -1);
}

// The overflow thresholds agree with the conversions: a value is refused for a dtype exactly when it rounds to
// infinity there.
TEST(Finite, OverflowWhenStoredAs) {
  for (DType t : {DType::F16, DType::BF16}) {
    const float big = t == DType::F16 ? 65504.f : 3.3895314e38f;  // the largest finite value of t
    for (float x = big; std::isfinite(x); x = std::nextafter(x, INFINITY)) {
      uint16_t h;
      convert_from_f32(&x, t, &h, 1);
      float back;
      convert_to_f32(t, &h, &back, 1);
      for (float s : {x, -x}) EXPECT_EQ(first_non_finite(&s, 1, t) >= 0, !std::isfinite(back)) << s;
      if (!std::isfinite(back)) break;  // the first value that overflows was checked
    }
  }
  float x = 1e5f;
  EXPECT_EQ(first_non_finite(&x, 1, DType::F16), 0);
  EXPECT_EQ(first_non_finite(&x, 1, DType::BF16), -1);
  EXPECT_EQ(first_non_finite(&x, 1, DType::F32), -1);
}

TEST(Finite, IndexStr) {
  EXPECT_EQ(index_str(300, {128, 256}), "[1, 44]");
  EXPECT_EQ(index_str(7, {2, 2, 2}), "[1, 1, 1]");
  EXPECT_EQ(index_str(3, {5}), "[3]");
}

TEST(ThreadPoolLimit, RefusesAbsurdCounts) {
  EXPECT_THROW(ThreadPool(kMaxThreads + 1), Error);
  ThreadPool ok(2);
  EXPECT_EQ(ok.size(), 2);
}

}  // namespace
}  // namespace kiln
