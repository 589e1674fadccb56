// Element types and conversions between them (fp16/bf16 <-> fp32, round-to-nearest-even).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kiln {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
// safetensors spelling: "F32", "F16", "BF16", ...
std::string_view dtype_st_name(DType t);
bool dtype_from_st_name(std::string_view s, DType* out);
// user-facing spelling: "float32", "float16", "bfloat16"
std::string_view dtype_name(DType t);
DType dtype_from_name(std::string_view s);  // throws kiln::Error on unknown names

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of a float type (F32/F16/BF16) to fp32.
void convert_to_f32(DType src_type, const void* src, float* dst, size_t n);
// Converts n fp32 values to a float type (F32/F16/BF16).
void convert_from_f32(const float* src, DType dst_type, void* dst, size_t n);
bool is_float(DType t);

}  // namespace kiln
