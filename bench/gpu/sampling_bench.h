// kiln_gpu_bench sampling: the time of one Backend::sample call on the cuda backend (src/backend/cuda/sampling.cu)
// per filter setting, for one and for 64 rows of a Llama-3-sized vocabulary.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>

namespace kiln {

// reps timings of 20 back-to-back calls each (after a warm-up call) per (rows, setting); the median per call.
nlohmann::json sampling_bench(int64_t reps);

}  // namespace kiln
