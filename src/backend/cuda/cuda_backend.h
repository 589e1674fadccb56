// The cuda backend (Hopper, sm_90a first): fp16/bf16 compute, GEMMs through cuBLASLt with the algorithms the
// engine build measured (plus a bandwidth-bound GEMV for a few rows), own kernels for everything else, and CUDA
// graphs for decode steps. This header has no CUDA types: g++-only code includes it.
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"

namespace kiln {

// `compute` (F16 or BF16) holds until configure() sets the engine's. `device`: the CUDA device ordinal the backend
// runs on (the rank's; bind_thread() makes it current on another thread). Throws when that device is not usable.
std::unique_ptr<Backend> make_cuda_backend(DType compute = DType::BF16, int device = 0);

// CUDA devices usable here: 0 without a driver or a device (never throws).
int cuda_device_count();
// "sm_90" etc. for a device ordinal; throws when there is no such device.
std::string cuda_device_arch(int device = 0);
std::string cuda_device_name(int device = 0);

}  // namespace kiln
