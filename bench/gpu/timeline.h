// Kernel timeline of device work through CUPTI, opened at run time (see timeline.cpp).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>

namespace kiln {

// Runs `run`, then `sync` (waits for the device), recording every kernel the device ran in between. Returns
// {"columns", "span_ns", "kernels": [[name, start_ns, dur_ns, gap_ns, grid, block, regs], ...]} in start order, or
// {"error": why} where CUPTI cannot be loaded.
nlohmann::json kernel_timeline(const std::function<void()>& run, const std::function<void()>& sync);

}  // namespace kiln
