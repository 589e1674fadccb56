// The cuda backend's transfers (src/backend/cuda/transfers.cpp): upload_many through the word-copy kernel, and
// download_async deferred into the next upload_many's kernel, which must keep the stream's order: a download
// sees the data as it was when it was queued, also when the next upload overwrites its source (then it is not
// merged), and every ticket gets its own bytes, whether the download ran alone, merged, or by copy engine.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "backend_cuda/cuda_test_util.h"
#include "core/error.h"

namespace kiln::test {
namespace {

class CudaTransfers : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
    be = cuda_backend(DType::BF16);
  }
  std::vector<int32_t> seq(int n, int from) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    std::iota(v.begin(), v.end(), from);
    return v;
  }
  std::vector<int32_t> read(const Tensor& t, int n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    be->download(v.data(), t, size_t(n) * 4);
    return v;
  }
  std::unique_ptr<Backend> be;
};

TEST_F(CudaTransfers, DownloadMergedIntoTheNextUpload) {
  const auto a = seq(100, 1000), b = seq(37, 5), c = seq(3000, 7);
  Tensor x = put_i32(*be, a), y = be->alloc(DType::I32, {37}), z = be->alloc(DType::I32, {3000});
  const uint64_t t = be->download_async(x, 400);
  be->upload_many({{&y, b.data(), 148}, {&z, c.data(), 12000}});  // the download joins this kernel
  std::vector<int32_t> got(100);
  be->wait_download(t, got.data());
  EXPECT_EQ(got, a);
  EXPECT_EQ(read(y, 37), b);
  EXPECT_EQ(read(z, 3000), c);
}

TEST_F(CudaTransfers, DownloadSeesItsSourceBeforeAnUploadOverwritesIt) {
  const auto a = seq(64, 1), b = seq(64, 500);
  Tensor x = put_i32(*be, a);
  const uint64_t t = be->download_async(x, 256);
  be->upload_many({{&x, b.data(), 256}});  // overlaps the download's source: not merged, the download goes first
  std::vector<int32_t> got(64);
  be->wait_download(t, got.data());
  EXPECT_EQ(got, a);
  EXPECT_EQ(read(x, 64), b);
}

TEST_F(CudaTransfers, EveryTicketGetsItsOwnBytes) {
  const auto a = seq(10, 100), b = seq(10, 200), c = seq(10, 300);
  Tensor x = put_i32(*be, a), y = put_i32(*be, b), w = be->alloc(DType::I32, {10});
  const uint64_t t1 = be->download_async(x, 40);  // issued alone when the next one is queued
  const uint64_t t2 = be->download_async(y, 40);  // merged into the upload below
  be->upload_many({{&w, c.data(), 40}});
  const uint64_t t3 = be->download_async(w, 40);  // waited for before any upload: issued by wait_download
  const uint64_t t4 = be->download_async(x, 6);   // not whole words: a copy-engine transfer
  std::vector<int32_t> g1(10), g2(10), g3(10);
  int16_t g4[3] = {};
  be->wait_download(t3, g3.data());
  be->wait_download(t1, g1.data());
  be->wait_download(t4, g4);
  be->wait_download(t2, g2.data());
  EXPECT_EQ(g1, a);
  EXPECT_EQ(g2, b);
  EXPECT_EQ(g3, c);
  int16_t want[3];
  std::memcpy(want, a.data(), 6);
  EXPECT_EQ(std::vector<int16_t>(g4, g4 + 3), std::vector<int16_t>(want, want + 3));
  EXPECT_THROW(be->wait_download(t2, g2.data()), Error);  // a ticket is used once
}

}  // namespace
}  // namespace kiln::test
