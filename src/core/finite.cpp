#include "core/finite.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace kiln {

namespace {

// The smallest magnitude that rounds to infinity in `t` (round to nearest even).
float overflow_threshold(DType t) {
  switch (t) {
    case DType::F16: return 65520.0f;          // halfway between 65504 (the largest float16) and 65536
    case DType::BF16: {  // halfway between the largest bfloat16 (0x7f7f) and infinity; a tie rounds up (to even)
      const uint32_t bits = 0x7f7f8000u;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    default: return std::numeric_limits<float>::infinity();
  }
}

}  // namespace

int64_t first_non_finite(const float* v, size_t n, DType stored_as) {
  const float limit = overflow_threshold(stored_as);
  for (size_t i = 0; i < n; ++i)
    if (!(std::fabs(v[i]) < limit)) return int64_t(i);  // NaN fails every comparison
  return -1;
}

std::string index_str(int64_t i, const std::vector<int64_t>& shape) {
  std::vector<int64_t> c(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    const int64_t n = shape[d] > 0 ? shape[d] : 1;
    c[d] = i % n;
    i /= n;
  }
  std::string s = "[";
  for (size_t d = 0; d < c.size(); ++d) s += (d ? ", " : "") + std::to_string(c[d]);
  return s + "]";
}

}  // namespace kiln
