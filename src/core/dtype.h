// Element types and conversions between them (fp16/bf16/fp8 <-> fp32, round-to-nearest-even), and the packing of
// int4 pairs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kiln {

// F8_E4M3: fp8 1-4-3, bias 7, no infinity (torch's float8_e4m3fn): max 448, NaN 0x7f / 0xff.
// F8_E5M2: fp8 1-5-2, bias 15, IEEE-like (torch's float8_e5m2): max 57344, inf 0x7c / 0xfc.
// I4X2: one byte holding two signed (two's complement) int4 values, the even-indexed one in the low nibble;
// a tensor of I4X2 counts bytes, so an int4 matrix [N, K] packed along K is I4X2 [N, K / 2]. It has no
// safetensors dtype: files store it as U8 and record the packing (src/model/weight_file.h).
enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2, I4X2 };

size_t dtype_size(DType t);  // bytes per element (I4X2: 1, a byte of two int4)
// safetensors spelling: "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", ...; empty for I4X2 (no safetensors dtype)
std::string_view dtype_st_name(DType t);
bool dtype_from_st_name(std::string_view s, DType* out);
// user-facing spelling: "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2", "int4x2", ...
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

// fp8 <-> fp32. Conversions to fp8 round to nearest, ties to even (subnormals included). Overflow follows torch's
// casts (Fp8Overflow::Cast): a value that rounds past the largest finite one becomes NaN (e4m3, keeping the
// sign: 0x7f / 0xff) or infinity (e5m2); inf becomes NaN (e4m3) or inf (e5m2); NaN stays NaN (0x7f | sign).
// Fp8Overflow::Saturate (what quantizers and CUDA's __NV_SATFINITE do) clamps overflow and inf to the largest
// finite value of the sign instead (448, 57344); NaN stays NaN.
enum class Fp8Overflow { Cast, Saturate };
float f8e4m3_to_f32(uint8_t v);
float f8e5m2_to_f32(uint8_t v);
uint8_t f32_to_f8e4m3(float f, Fp8Overflow overflow = Fp8Overflow::Cast);
uint8_t f32_to_f8e5m2(float f, Fp8Overflow overflow = Fp8Overflow::Cast);

// Signed int4 pairs: pack_int4x2(lo, hi) with lo, hi in [-8, 7]; the unpacked values are sign-extended.
inline uint8_t pack_int4x2(int lo, int hi) { return uint8_t((unsigned(lo) & 0xfu) | ((unsigned(hi) & 0xfu) << 4)); }
inline int int4x2_lo(uint8_t b) { return int(b & 0xf) - ((b & 0x8) ? 16 : 0); }
inline int int4x2_hi(uint8_t b) { return int4x2_lo(uint8_t(b >> 4)); }

// Converts n elements of a float type (F32/F16/BF16, or fp8 F8_E4M3/F8_E5M2) to fp32.
void convert_to_f32(DType src_type, const void* src, float* dst, size_t n);
// Converts n fp32 values to a float type (F32/F16/BF16, or fp8 with Fp8Overflow::Cast).
void convert_from_f32(const float* src, DType dst_type, void* dst, size_t n);
// The float types weights and activations are computed in: F32, F16, BF16 (not fp8, a quantized storage type).
bool is_float(DType t);
bool is_fp8(DType t);

}  // namespace kiln
