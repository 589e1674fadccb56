// fp8 (e4m3fn, e5m2) <-> fp32 and int4 packing against closed-form expectations: the value of every code from
// its sign/exponent/mantissa fields, exact values, ties to even at every midpoint between neighbours (subnormals
// included), overflow (torch's cast: NaN for e4m3fn, inf for e5m2; saturation: the largest finite value).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace kiln {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The closed form of a code: (-1)^s * 2^(e - bias) * (1 + m / 2^M) for e > 0, (-1)^s * 2^(1 - bias) * m / 2^M for
// e == 0, computed in double with pow.
double closed_form(uint8_t c, int E, int M) {
  const int bias = (1 << (E - 1)) - 1;
  const int s = c >> 7, e = (c >> M) & ((1 << E) - 1), m = c & ((1 << M) - 1);
  const double mag = e == 0 ? std::pow(2.0, 1 - bias) * m / std::pow(2.0, M)
                            : std::pow(2.0, e - bias) * (1.0 + m / std::pow(2.0, M));
  return s ? -mag : mag;
}

struct Fmt {
  const char* name;
  int E, M;
  float (*decode)(uint8_t);
  uint8_t (*encode)(float, Fp8Overflow);
  bool is_special(uint8_t c) const {  // NaN (e4m3fn: S.1111.111) or inf/NaN (e5m2: exponent all ones)
    return E == 4 ? (c & 0x7f) == 0x7f : ((c >> 2) & 0x1f) == 0x1f;
  }
};
const Fmt kE4M3{"e4m3fn", 4, 3, f8e4m3_to_f32, f32_to_f8e4m3};
const Fmt kE5M2{"e5m2", 5, 2, f8e5m2_to_f32, f32_to_f8e5m2};

TEST(Fp8, DecodeEveryCodeMatchesTheClosedForm) {
  for (const Fmt* f : {&kE4M3, &kE5M2}) {
    for (int c = 0; c < 256; ++c) {
      const float v = f->decode(uint8_t(c));
      if (f->is_special(uint8_t(c))) continue;
      ASSERT_EQ(double(v), closed_form(uint8_t(c), f->E, f->M)) << f->name << " code " << c;
      // every finite value converts back to its code (+0 and -0 keep their sign)
      ASSERT_EQ(f->encode(v, Fp8Overflow::Cast), c) << f->name << " code " << c;
    }
  }
}

TEST(Fp8, SpecialCodes) {
  for (uint8_t c : {0x7f, 0xff}) EXPECT_TRUE(std::isnan(f8e4m3_to_f32(c)));  // e4m3fn: no inf
  EXPECT_EQ(f8e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(f8e4m3_to_f32(0xfe), -448.0f);
  EXPECT_EQ(f8e4m3_to_f32(0x78), 256.0f);  // exponent 15 is an ordinary binade in e4m3fn
  EXPECT_EQ(f8e5m2_to_f32(0x7c), kInf);
  EXPECT_EQ(f8e5m2_to_f32(0xfc), -kInf);
  for (uint8_t c : {0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff}) EXPECT_TRUE(std::isnan(f8e5m2_to_f32(c)));
  EXPECT_EQ(f8e5m2_to_f32(0x7b), 57344.0f);
}

TEST(Fp8, ExactValues) {
  EXPECT_EQ(f32_to_f8e4m3(1.0f), 0x38);
  EXPECT_EQ(f32_to_f8e4m3(-2.0f), 0xc0);
  EXPECT_EQ(f32_to_f8e4m3(0.0f), 0x00);
  EXPECT_EQ(f32_to_f8e4m3(-0.0f), 0x80);
  EXPECT_EQ(f32_to_f8e4m3(448.0f), 0x7e);
  EXPECT_EQ(f32_to_f8e4m3(std::ldexp(1.0f, -6)), 0x08);  // smallest normal
  EXPECT_EQ(f32_to_f8e4m3(std::ldexp(1.0f, -9)), 0x01);  // smallest subnormal
  EXPECT_EQ(f32_to_f8e4m3(std::ldexp(7.0f, -9)), 0x07);  // largest subnormal
  EXPECT_EQ(f32_to_f8e5m2(1.0f), 0x3c);
  EXPECT_EQ(f32_to_f8e5m2(-1.5f), 0xbe);
  EXPECT_EQ(f32_to_f8e5m2(57344.0f), 0x7b);
  EXPECT_EQ(f32_to_f8e5m2(std::ldexp(1.0f, -14)), 0x04);  // smallest normal
  EXPECT_EQ(f32_to_f8e5m2(std::ldexp(1.0f, -16)), 0x01);  // smallest subnormal
}

TEST(Fp8, HalfwayTiesGoToEven) {
  // e4m3: 1 + 2^-4 lies halfway between 1 (0x38, even) and 1.125 (0x39): -> 1; 1.1875 between 1.125 (odd) and 1.25.
  EXPECT_EQ(f32_to_f8e4m3(1.0625f), 0x38);
  EXPECT_EQ(f32_to_f8e4m3(1.1875f), 0x3a);
  EXPECT_EQ(f32_to_f8e4m3(std::nextafter(1.0625f, 2.0f)), 0x39);  // just above the midpoint: up
  // subnormal ties: 2^-10 between 0 and 2^-9 -> 0; 3 * 2^-10 between 1 and 2 units -> 2 units.
  EXPECT_EQ(f32_to_f8e4m3(std::ldexp(1.0f, -10)), 0x00);
  EXPECT_EQ(f32_to_f8e4m3(std::ldexp(3.0f, -10)), 0x02);
  EXPECT_EQ(f32_to_f8e4m3(-std::ldexp(3.0f, -10)), 0x82);
  // the largest subnormal's upper neighbour is the smallest normal: 7.5 * 2^-9 ties to 0x08 (even)
  EXPECT_EQ(f32_to_f8e4m3(std::ldexp(15.0f, -10)), 0x08);
  // e5m2: 1.125 between 1 (0x3c) and 1.25 (0x3d) -> 1; 1.375 between 1.25 (odd) and 1.5 -> 1.5
  EXPECT_EQ(f32_to_f8e5m2(1.125f), 0x3c);
  EXPECT_EQ(f32_to_f8e5m2(1.375f), 0x3e);
  EXPECT_EQ(f32_to_f8e5m2(std::ldexp(1.0f, -17)), 0x00);
  EXPECT_EQ(f32_to_f8e5m2(std::ldexp(3.0f, -17)), 0x02);
}

// Every midpoint between neighbouring finite values (from the closed form) goes to the even code; a float just
// below or above it goes to the nearer neighbour. Negative values mirror.
TEST(Fp8, EveryMidpointRoundsToNearestEven) {
  for (const Fmt* f : {&kE4M3, &kE5M2}) {
    std::vector<uint8_t> codes;  // positive finite codes in increasing value order
    for (int c = 0; c < 128; ++c)
      if (!f->is_special(uint8_t(c))) codes.push_back(uint8_t(c));
    for (size_t i = 0; i + 1 < codes.size(); ++i) {
      const uint8_t lo = codes[i], hi = codes[i + 1];
      const double a = closed_form(lo, f->E, f->M), b = closed_form(hi, f->E, f->M);
      const float mid = float((a + b) / 2);  // exact: fp8 values have few significant bits
      ASSERT_EQ(double(mid), (a + b) / 2);
      const uint8_t even = (lo & 1) ? hi : lo;
      for (float sign : {1.0f, -1.0f}) {
        const uint8_t s = sign < 0 ? 0x80 : 0;
        ASSERT_EQ(f->encode(sign * mid, Fp8Overflow::Cast), even | s) << f->name << " between " << a << ", " << b;
        ASSERT_EQ(f->encode(sign * std::nextafter(mid, 0.0f), Fp8Overflow::Cast), lo | s) << f->name << " " << a;
        ASSERT_EQ(f->encode(sign * std::nextafter(mid, kInf), Fp8Overflow::Cast), hi | s) << f->name << " " << b;
      }
    }
  }
}

TEST(Fp8, OverflowNaNAndInfinityFollowTorchsCasts) {
  // e4m3fn: 464 is halfway between 448 and the 480 the format lacks: ties to 448 (even); above it -> NaN.
  EXPECT_EQ(f32_to_f8e4m3(464.0f), 0x7e);
  EXPECT_EQ(f32_to_f8e4m3(std::nextafter(464.0f, kInf)), 0x7f);
  EXPECT_EQ(f32_to_f8e4m3(-500.0f), 0xff);
  EXPECT_EQ(f32_to_f8e4m3(1e30f), 0x7f);
  EXPECT_EQ(f32_to_f8e4m3(kInf), 0x7f);
  EXPECT_EQ(f32_to_f8e4m3(-kInf), 0xff);
  EXPECT_EQ(f32_to_f8e4m3(kNaN), 0x7f);
  EXPECT_EQ(f32_to_f8e4m3(-kNaN), 0xff);
  // e5m2: 61440 is halfway between 57344 (odd mantissa) and 65536 = inf: -> inf; just below it -> 57344.
  EXPECT_EQ(f32_to_f8e5m2(61440.0f), 0x7c);
  EXPECT_EQ(f32_to_f8e5m2(std::nextafter(61440.0f, 0.0f)), 0x7b);
  EXPECT_EQ(f32_to_f8e5m2(-1e30f), 0xfc);
  EXPECT_EQ(f32_to_f8e5m2(kInf), 0x7c);
  EXPECT_EQ(f32_to_f8e5m2(-kInf), 0xfc);
  EXPECT_TRUE(std::isnan(f8e5m2_to_f32(f32_to_f8e5m2(kNaN))));
  EXPECT_EQ(f32_to_f8e5m2(kNaN) & 0x7f, 0x7f);
  // Saturation: overflow and inf clamp to the largest finite value of the sign; NaN stays NaN.
  EXPECT_EQ(f32_to_f8e4m3(1000.0f, Fp8Overflow::Saturate), 0x7e);
  EXPECT_EQ(f32_to_f8e4m3(-kInf, Fp8Overflow::Saturate), 0xfe);
  EXPECT_EQ(f32_to_f8e4m3(kNaN, Fp8Overflow::Saturate), 0x7f);
  EXPECT_EQ(f32_to_f8e4m3(440.0f, Fp8Overflow::Saturate), 0x7e);  // in range: rounds as the cast does
  EXPECT_EQ(f32_to_f8e5m2(1e6f, Fp8Overflow::Saturate), 0x7b);
  EXPECT_EQ(f32_to_f8e5m2(-kInf, Fp8Overflow::Saturate), 0xfb);
  EXPECT_TRUE(std::isnan(f8e5m2_to_f32(f32_to_f8e5m2(kNaN, Fp8Overflow::Saturate))));
  // Far below the smallest subnormal, fp32 subnormals included: signed zero.
  EXPECT_EQ(f32_to_f8e4m3(1e-30f), 0x00);
  EXPECT_EQ(f32_to_f8e4m3(-std::numeric_limits<float>::denorm_min()), 0x80);
  EXPECT_EQ(f32_to_f8e5m2(std::ldexp(1.0f, -18)), 0x00);
}

TEST(Fp8, BulkConversionsAndNames) {
  const std::vector<float> x = {1.0f, -0.3f, 448.0f, 1e-4f};  // [4]
  std::vector<uint8_t> q(x.size());
  convert_from_f32(x.data(), DType::F8_E4M3, q.data(), x.size());
  std::vector<float> back(x.size());
  convert_to_f32(DType::F8_E4M3, q.data(), back.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(q[i], f32_to_f8e4m3(x[i]));
    EXPECT_EQ(back[i], f8e4m3_to_f32(q[i]));
  }
  convert_from_f32(x.data(), DType::F8_E5M2, q.data(), x.size());
  convert_to_f32(DType::F8_E5M2, q.data(), back.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(back[i], f8e5m2_to_f32(f32_to_f8e5m2(x[i])));
  DType t;
  ASSERT_TRUE(dtype_from_st_name("F8_E4M3", &t));
  EXPECT_EQ(t, DType::F8_E4M3);
  ASSERT_TRUE(dtype_from_st_name("F8_E5M2", &t));
  EXPECT_EQ(t, DType::F8_E5M2);
  EXPECT_EQ(dtype_st_name(DType::F8_E5M2), "F8_E5M2");
  EXPECT_EQ(dtype_name(DType::F8_E4M3), "float8_e4m3fn");
  EXPECT_EQ(dtype_size(DType::F8_E4M3), 1u);
  EXPECT_FALSE(is_float(DType::F8_E4M3)) << "fp8 is a quantized storage type, not a compute dtype";
  EXPECT_TRUE(is_fp8(DType::F8_E5M2));
  // Packed int4 has no safetensors spelling: it is stored as U8 with its packing recorded.
  EXPECT_EQ(dtype_st_name(DType::I4X2), "");
  EXPECT_FALSE(dtype_from_st_name("", &t));
  EXPECT_EQ(dtype_size(DType::I4X2), 1u);
  EXPECT_THROW(convert_to_f32(DType::I8, q.data(), back.data(), 1), Error);
}

TEST(Int4x2, PacksLowNibbleFirst) {
  EXPECT_EQ(pack_int4x2(1, -1), 0xf1);
  EXPECT_EQ(pack_int4x2(-8, 7), 0x78);
  EXPECT_EQ(pack_int4x2(0, 0), 0x00);
  EXPECT_EQ(pack_int4x2(-1, -8), 0x8f);
  for (int lo = -8; lo <= 7; ++lo)
    for (int hi = -8; hi <= 7; ++hi) {
      const uint8_t b = pack_int4x2(lo, hi);
      ASSERT_EQ(int4x2_lo(b), lo);
      ASSERT_EQ(int4x2_hi(b), hi);
      ASSERT_EQ(b, uint8_t((lo & 0xf) + 16 * (hi & 0xf)));  // two's complement nibbles, lo + 16 hi
    }
}

}  // namespace
}  // namespace kiln
