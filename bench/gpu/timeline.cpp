// Kernel timeline through CUPTI's activity API, for the decode profile: every kernel's start and end on the
// device (graph replays and programmatic dependent launches included), so that the gaps and overlaps between
// the kernels of a step can be read, which timing each op alone cannot show. libcupti is opened at run time
// (KILN_CUPTI names the library; default libcupti.so.13), so the benchmark does not depend on it.
#include "timeline.h"

#include <cupti_activity.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace kiln {
namespace {

struct Cupti {
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
};

struct Kernel {
  uint64_t start, end;
  std::string name;
  int grid, block, regs;
};

std::mutex g_mu;
std::vector<Kernel> g_kernels;
Cupti g_cupti;

constexpr size_t kBuffer = size_t(8) << 20;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBuffer));
  *size = kBuffer;
  *max_records = 0;
}

// A short kernel name: the function's name without namespaces, template arguments or parameters.
std::string short_name(const char* mangled_or_plain) {
  std::string n = mangled_or_plain ? mangled_or_plain : "?";
  const auto paren = n.find('(');
  if (paren != std::string::npos) n = n.substr(0, paren);
  const auto lt = n.find('<');
  if (lt != std::string::npos) n = n.substr(0, lt);
  const auto colon = n.rfind("::");
  if (colon != std::string::npos) n = n.substr(colon + 2);
  return n;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  std::lock_guard<std::mutex> lock(g_mu);
  while (g_cupti.next_record(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
    g_kernels.push_back({k->start, k->end, short_name(k->name), k->gridX * k->gridY * k->gridZ,
                         k->blockX * k->blockY * k->blockZ, int(k->registersPerThread)});
  }
  std::free(buffer);
}

bool load_cupti(std::string& why) {
  if (g_cupti.enable) return true;
  const char* lib = std::getenv("KILN_CUPTI");
  void* h = dlopen(lib ? lib : "libcupti.so.13", RTLD_NOW);
  if (!h) {
    why = std::string("CUPTI not loaded: ") + dlerror();
    return false;
  }
  Cupti c;
  c.enable = reinterpret_cast<decltype(c.enable)>(dlsym(h, "cuptiActivityEnable"));
  c.disable = reinterpret_cast<decltype(c.disable)>(dlsym(h, "cuptiActivityDisable"));
  c.register_callbacks = reinterpret_cast<decltype(c.register_callbacks)>(dlsym(h, "cuptiActivityRegisterCallbacks"));
  c.flush_all = reinterpret_cast<decltype(c.flush_all)>(dlsym(h, "cuptiActivityFlushAll"));
  c.next_record = reinterpret_cast<decltype(c.next_record)>(dlsym(h, "cuptiActivityGetNextRecord"));
  if (!c.enable || !c.disable || !c.register_callbacks || !c.flush_all || !c.next_record) {
    why = "CUPTI lacks the activity API";
    return false;
  }
  if (c.register_callbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS) {
    why = "cuptiActivityRegisterCallbacks failed";
    return false;
  }
  g_cupti = c;
  return true;
}

}  // namespace

nlohmann::json kernel_timeline(const std::function<void()>& run, const std::function<void()>& sync) {
  std::string why;
  if (!load_cupti(why)) return {{"error", why}};
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_kernels.clear();
  }
  if (g_cupti.enable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) return {{"error", "cannot enable kernel records"}};
  run();
  sync();
  g_cupti.flush_all(1);
  g_cupti.disable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<Kernel> ks = g_kernels;
  std::sort(ks.begin(), ks.end(), [](const Kernel& a, const Kernel& b) { return a.start < b.start; });
  // One row per kernel: name, start and duration (ns, from the first kernel's start), the gap (+) or overlap (-)
  // against the latest end of the kernels before it, grid, block, registers per thread.
  nlohmann::json rows = nlohmann::json::array();
  if (ks.empty()) return {{"error", "no kernel records"}};
  const uint64_t t0 = ks.front().start;
  uint64_t last_end = ks.front().start;
  for (const Kernel& k : ks) {
    rows.push_back({k.name, int64_t(k.start - t0), int64_t(k.end - k.start), int64_t(k.start) - int64_t(last_end),
                    k.grid, k.block, k.regs});
    last_end = std::max(last_end, k.end);
  }
  return {{"columns", {"kernel", "start_ns", "dur_ns", "gap_ns", "grid", "block", "regs"}},
          {"span_ns", int64_t(last_end - t0)},
          {"kernels", rows}};
}

}  // namespace kiln
