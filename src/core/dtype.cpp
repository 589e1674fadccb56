#include "core/dtype.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace kiln {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
    case DType::F8_E4M3: case DType::F8_E5M2: case DType::I4X2: return 1;
  }
  return 0;
}

namespace {
struct Names { DType t; std::string_view st, user; };
constexpr Names kNames[] = {
    {DType::F32, "F32", "float32"}, {DType::F16, "F16", "float16"}, {DType::BF16, "BF16", "bfloat16"},
    {DType::F64, "F64", "float64"}, {DType::I64, "I64", "int64"},   {DType::I32, "I32", "int32"},
    {DType::I16, "I16", "int16"},   {DType::I8, "I8", "int8"},       {DType::U8, "U8", "uint8"},
    {DType::BOOL, "BOOL", "bool"},   {DType::F8_E4M3, "F8_E4M3", "float8_e4m3fn"},
    {DType::F8_E5M2, "F8_E5M2", "float8_e5m2"}, {DType::I4X2, "", "int4x2"},
};
}  // namespace

std::string_view dtype_st_name(DType t) {
  for (auto& n : kNames) if (n.t == t) return n.st;
  return "?";
}
bool dtype_from_st_name(std::string_view s, DType* out) {
  if (s.empty()) return false;
  for (auto& n : kNames) if (n.st == s) { *out = n.t; return true; }
  return false;
}
std::string_view dtype_name(DType t) {
  for (auto& n : kNames) if (n.t == t) return n.user;
  return "?";
}
DType dtype_from_name(std::string_view s) {
  for (auto& n : kNames) if (n.user == s) return n.t;
  fail("unknown dtype '{}' (expected float32, float16 or bfloat16)", s);
}
bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
bool is_fp8(DType t) { return t == DType::F8_E4M3 || t == DType::F8_E5M2; }

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: renormalize
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) { man <<= 1; --exp; }
      man &= 0x3ff;
      u = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00);  // NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // overflow -> inf (65520 rounds up)
  if (a < 0x38800000u) {  // subnormal or zero in fp16
    if (a < 0x33000000u) return uint16_t(sign);
    uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;  // 113 - e + 13
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = a - 0x38000000u;  // rebias exponent 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);
  return uint16_t(sign | (r >> 13));
}

namespace {

// An fp8 format: M mantissa bits, exponent bias, the largest finite code, and the codes of overflow and NaN.
struct Fp8Format {
  int man_bits;
  int bias;
  uint8_t max_finite;  // 0x7e (e4m3: 448), 0x7b (e5m2: 57344)
  uint8_t overflow;    // what Fp8Overflow::Cast gives past the largest finite value: NaN (e4m3) or inf (e5m2)
  uint8_t nan;
};
constexpr Fp8Format kE4M3{3, 7, 0x7e, 0x7f, 0x7f};
constexpr Fp8Format kE5M2{2, 15, 0x7b, 0x7c, 0x7f};

uint8_t f32_to_fp8(float f, const Fp8Format& fmt, Fp8Overflow overflow) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint8_t sign = uint8_t((u >> 24) & 0x80);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | fmt.nan;
  const uint8_t past_max = overflow == Fp8Overflow::Saturate ? fmt.max_finite : fmt.overflow;
  if (a == 0x7f800000u) return sign | past_max;
  if (a < 0x00800000u) return sign;  // fp32 subnormals (< 2^-126) are far below half the smallest fp8 subnormal
  // |f| = mant * 2^(e - 23) with mant in [2^23, 2^24). The fp8 value keeps M bits after the leading one, fewer
  // below the smallest normal exponent (1 - bias), where its unit is 2^(1 - bias - M).
  const int e = int(a >> 23) - 127, min_exp = 1 - fmt.bias, M = fmt.man_bits;
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  const int shift = 23 - M + (e < min_exp ? min_exp - e : 0);
  if (shift > 24) return sign;  // below half the smallest subnormal
  uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // to nearest, ties to even
  // q counts units of the value's binade (normal: q in [2^M, 2^(M+1)]; a carry to 2^(M+1) moves the code to the
  // next exponent, as the sum below does) or of the subnormal range (q in [0, 2^M]; 2^M is the smallest normal).
  const uint32_t code = e >= min_exp ? (uint32_t(e + fmt.bias) << M) + q - (1u << M) : q;
  if (code > fmt.max_finite) return sign | past_max;
  return uint8_t(sign | code);
}

float fp8_to_f32(uint8_t v, const Fp8Format& fmt, bool has_inf) {
  const int M = fmt.man_bits, E = 7 - M;
  const int exp = (v >> M) & ((1 << E) - 1), man = v & ((1 << M) - 1);
  const float s = (v & 0x80) ? -1.0f : 1.0f;
  if (has_inf && exp == (1 << E) - 1)
    return man == 0 ? s * std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  if (!has_inf && (v & 0x7f) == 0x7f) return std::numeric_limits<float>::quiet_NaN();
  if (exp == 0) return s * std::ldexp(float(man), 1 - fmt.bias - M);
  return s * std::ldexp(float((1 << M) + man), exp - fmt.bias - M);
}

}  // namespace

float f8e4m3_to_f32(uint8_t v) { return fp8_to_f32(v, kE4M3, false); }
float f8e5m2_to_f32(uint8_t v) { return fp8_to_f32(v, kE5M2, true); }
uint8_t f32_to_f8e4m3(float f, Fp8Overflow o) { return f32_to_fp8(f, kE4M3, o); }
uint8_t f32_to_f8e5m2(float f, Fp8Overflow o) { return f32_to_fp8(f, kE5M2, o); }

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16: { auto* s = static_cast<const uint16_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]); return; }
    case DType::BF16: { auto* s = static_cast<const uint16_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]); return; }
    case DType::F8_E4M3: { auto* s = static_cast<const uint8_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = f8e4m3_to_f32(s[i]); return; }
    case DType::F8_E5M2: { auto* s = static_cast<const uint8_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = f8e5m2_to_f32(s[i]); return; }
    default: fail("cannot convert {} to float32", dtype_name(t));
  }
}

void convert_from_f32(const float* src, DType t, void* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16: { auto* d = static_cast<uint16_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]); return; }
    case DType::BF16: { auto* d = static_cast<uint16_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]); return; }
    case DType::F8_E4M3: { auto* d = static_cast<uint8_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = f32_to_f8e4m3(src[i]); return; }
    case DType::F8_E5M2: { auto* d = static_cast<uint8_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = f32_to_f8e5m2(src[i]); return; }
    default: fail("cannot convert float32 to {}", dtype_name(t));
  }
}

}  // namespace kiln
