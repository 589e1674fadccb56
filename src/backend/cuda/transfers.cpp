#include "backend/cuda/transfers.h"

#include <cuda_runtime.h>

#include <cstring>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace kiln::cuda {

namespace {

bool overlaps(const void* a, size_t an, const void* b, size_t bn) {
  const auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return x < y + bn && y < x + an;
}

}  // namespace

Transfers::Transfers(cudaStream_t stream) : stream_(stream) {
  KILN_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&stage_), kStageSlot * kStageSlots, cudaHostAllocMapped));
  KILN_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&stage_dev_), stage_, 0));
  for (auto& e : stage_events_) KILN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  for (auto& r : reads_) {
    KILN_CUDA_CHECK(cudaHostAlloc(&r.host, kReadSlot, cudaHostAllocMapped));
    KILN_CUDA_CHECK(cudaHostGetDevicePointer(&r.dev, r.host, 0));
    KILN_CUDA_CHECK(cudaEventCreateWithFlags(&r.done, cudaEventDisableTiming));
  }
}

Transfers::~Transfers() {
  cudaStreamSynchronize(stream_);
  for (auto& e : stage_events_) cudaEventDestroy(e);
  for (auto& r : reads_) {
    cudaEventDestroy(r.done);
    cudaFreeHost(r.host);
  }
  cudaFreeHost(stage_);
}

// The next pinned staging slot, once the device has read what it last held (record stage_events_[i] after the
// work that reads it).
int Transfers::take_stage_slot() {
  const int i = stage_next_;
  stage_next_ = (stage_next_ + 1) % kStageSlots;
  KILN_CUDA_CHECK(cudaEventSynchronize(stage_events_[i]));
  return i;
}

void Transfers::upload(void* dst, const void* src, size_t bytes) {
  issue_pending();
  const int i = take_stage_slot();
  char* slot = stage_ + size_t(i) * kStageSlot;
  std::memcpy(slot, src, bytes);
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst, slot, bytes, cudaMemcpyHostToDevice, stream_));
  KILN_CUDA_CHECK(cudaEventRecord(stage_events_[i], stream_));
}

bool Transfers::upload_many(const std::vector<Item>& items) {
  const auto padded = [](size_t b) { return (b + 15) / 16 * 16; };  // items start 16-byte aligned in the slot
  size_t total = 0;
  bool fits = items.size() <= size_t(kUploadItems);
  for (const Item& u : items) {
    fits = fits && u.bytes % 4 == 0;
    total += padded(u.bytes);
  }
  if (!fits || total > kPackedUpload) return false;
  // The deferred download joins this kernel unless it would read what an item writes, or the items fill it.
  bool join = deferred_ && items.size() < size_t(kUploadItems);
  for (const Item& u : items)
    if (join && overlaps(u.dst, u.bytes, deferred_->src, reads_[deferred_->slot].bytes)) join = false;
  if (!join) issue_pending();
  const int i = take_stage_slot();
  UploadKParams k;
  size_t off = size_t(i) * kStageSlot;
  for (const Item& u : items) {
    if (u.bytes == 0) continue;
    std::memcpy(stage_ + off, u.src, u.bytes);
    k.src[k.n] = stage_dev_ + off;
    k.dst[k.n] = u.dst;
    k.bytes[k.n] = int64_t(u.bytes);
    ++k.n;
    off += padded(u.bytes);
  }
  std::optional<Deferred> d;
  if (join) {
    d.swap(deferred_);
    append_read(k, *d);
  }
  invoke(k, stream_);
  KILN_CUDA_CHECK(cudaEventRecord(stage_events_[i], stream_));  // the slot is free once the kernel has read it
  if (d) record_read(d->slot);
  return true;
}

void Transfers::record_read(int slot) { KILN_CUDA_CHECK(cudaEventRecord(reads_[slot].done, stream_)); }

// A deferred download as one more item of the word-copy kernel, writing through the read slot's device mapping.
void Transfers::append_read(UploadKParams& k, const Deferred& d) const {
  k.src[k.n] = d.src;
  k.dst[k.n] = reads_[d.slot].dev;
  k.bytes[k.n] = int64_t(reads_[d.slot].bytes);
  ++k.n;
}

uint64_t Transfers::download_async(const void* src, size_t bytes) {
  issue_pending();
  if (bytes > kReadSlot) fail("download_async: {} bytes (at most {})", bytes, kReadSlot);
  const uint64_t ticket = next_read_++;
  const int slot = int(ticket % kReadSlots);
  ReadSlot& r = reads_[slot];
  if (r.ticket) fail("download_async: more than {} copies outstanding", kReadSlots);
  r.ticket = ticket;
  r.bytes = bytes;
  if (bytes % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 4 == 0) {  // by the word-copy kernel, deferred
    deferred_ = Deferred{src, slot};
  } else {
    KILN_CUDA_CHECK(cudaMemcpyAsync(r.host, src, bytes, cudaMemcpyDeviceToHost, stream_));
    record_read(slot);
  }
  return ticket;
}

void Transfers::issue_pending() {
  if (!deferred_) return;
  const Deferred d = *deferred_;
  deferred_.reset();
  UploadKParams k;
  append_read(k, d);
  invoke(k, stream_);
  record_read(d.slot);
}

void Transfers::wait_download(uint64_t ticket, void* dst) {
  ReadSlot& r = reads_[ticket % kReadSlots];
  if (r.ticket != ticket) fail("wait_download: unknown ticket {}", ticket);
  if (deferred_ && deferred_->slot == int(ticket % kReadSlots)) issue_pending();
  KILN_CUDA_CHECK(cudaEventSynchronize(r.done));
  std::memcpy(dst, r.host, r.bytes);
  r.ticket = 0;
}

}  // namespace kiln::cuda
