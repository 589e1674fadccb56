// Finding non-finite weights (NaN, ±inf, or values that overflow the dtype they are stored in), so that convert
// and build refuse them by name instead of a run failing later with -inf or NaN logits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace kiln {

// The index of the first of v[0, n) that is NaN or infinite, or that becomes infinite when rounded to
// `stored_as` (F32, F16 or BF16: a float32 above 65504 is +inf in float16); -1 when there is none.
int64_t first_non_finite(const float* v, size_t n, DType stored_as = DType::F32);

// "[2, 17]": the coordinates of flat (row-major) index i in a tensor of `shape`.
std::string index_str(int64_t i, const std::vector<int64_t>& shape);

}  // namespace kiln
