// Host <-> device transfers of the cuda backend on its one stream: pinned staging slots for uploads (reused
// round-robin, each freed by an event once the device has read it), pinned read slots for asynchronous downloads
// (one event each), and the word-copy kernel (kernels.h UploadKParams) that moves a step's small arrays through
// the slots' device mappings instead of a copy-engine transfer per array.
//
// A small download is deferred: its copy joins the next upload_many's kernel (the next decode step's metadata),
// so that the stream runs one copy kernel between steps, not two. issue_pending() launches it alone; the backend
// calls it before any other work (flush), and wait_download calls it for its own ticket.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "backend/cuda/kernels.h"

namespace kiln::cuda {

class Transfers {
 public:
  struct Item {
    void* dst = nullptr;  // device memory
    const void* src = nullptr;
    size_t bytes = 0;
  };
  static constexpr size_t kStageSlot = size_t(1) << 20;      // 16 upload slots of 1 MiB
  static constexpr size_t kPackedUpload = size_t(64) << 10;  // upload_many's one-kernel path, up to this many bytes
  static constexpr size_t kReadSlot = size_t(1) << 16;       // 8 read slots of 64 KiB

  explicit Transfers(cudaStream_t stream);
  ~Transfers();
  Transfers(const Transfers&) = delete;
  Transfers& operator=(const Transfers&) = delete;

  // Queues a copy of `bytes` (at most kStageSlot) from host memory into device memory; the host does not wait.
  void upload(void* dst, const void* src, size_t bytes);
  // All items by one kernel (with a deferred download, if any); false (nothing done) if they do not fit its
  // path: more than its items, a size not a multiple of 4, or more than kPackedUpload in all.
  bool upload_many(const std::vector<Item>& items);
  // Queues a copy of `bytes` (at most kReadSlot) from device memory into a read slot; returns its ticket.
  uint64_t download_async(const void* src, size_t bytes);
  void wait_download(uint64_t ticket, void* dst);
  void issue_pending();  // the deferred download's kernel, now

 private:
  static constexpr int kStageSlots = 16, kReadSlots = 8;
  struct ReadSlot {
    void* host = nullptr;
    void* dev = nullptr;  // host's device mapping
    cudaEvent_t done = nullptr;
    uint64_t ticket = 0;  // 0: free
    size_t bytes = 0;
  };
  struct Deferred {
    const void* src;
    int slot;
  };
  int take_stage_slot();
  void record_read(int slot);
  void append_read(UploadKParams& k, const Deferred& d) const;

  cudaStream_t stream_;
  char* stage_ = nullptr;
  char* stage_dev_ = nullptr;  // the staging slots' device mapping
  cudaEvent_t stage_events_[kStageSlots] = {};
  int stage_next_ = 0;
  ReadSlot reads_[kReadSlots];
  uint64_t next_read_ = 1;
  std::optional<Deferred> deferred_;
};

}  // namespace kiln::cuda
