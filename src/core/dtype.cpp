#include "core/dtype.h"

#include "core/error.h"

namespace kiln {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}

namespace {
struct Names { DType t; std::string_view st, user; };
constexpr Names kNames[] = {
    {DType::F32, "F32", "float32"}, {DType::F16, "F16", "float16"}, {DType::BF16, "BF16", "bfloat16"},
    {DType::F64, "F64", "float64"}, {DType::I64, "I64", "int64"},   {DType::I32, "I32", "int32"},
    {DType::I16, "I16", "int16"},   {DType::I8, "I8", "int8"},       {DType::U8, "U8", "uint8"},
    {DType::BOOL, "BOOL", "bool"},
};
}  // namespace

std::string_view dtype_st_name(DType t) {
  for (auto& n : kNames) if (n.t == t) return n.st;
  return "?";
}
bool dtype_from_st_name(std::string_view s, DType* out) {
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

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16: { auto* s = static_cast<const uint16_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]); return; }
    case DType::BF16: { auto* s = static_cast<const uint16_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]); return; }
    default: fail("cannot convert {} to float32", dtype_name(t));
  }
}

void convert_from_f32(const float* src, DType t, void* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16: { auto* d = static_cast<uint16_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]); return; }
    case DType::BF16: { auto* d = static_cast<uint16_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]); return; }
    default: fail("cannot convert float32 to {}", dtype_name(t));
  }
}

}  // namespace kiln
