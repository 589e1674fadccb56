// Communicator: the collectives the sharded forward pass and the rank-0 step plan need, over one group of ranks.
// Implementations: MPI (cpu target: tensors in host memory), NCCL (cuda target: tensors in device memory,
// bootstrapped over MPI, one process per GPU), and in-process (threads of one process, for tests of sharding
// without mpirun). Every rank of the group calls each collective in the same order with tensors of the same dtype
// and shape. A collective that does not complete within the timeout (a rank died or diverged) throws kiln::Error
// naming the operation, the group and the peers it waited for, on every rank that waits: never a hang.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace kiln {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;  // "mpi", "nccl", "in-process"
  virtual int rank() const = 0;          // this process's rank in the group, 0 <= rank < size
  virtual int size() const = 0;

  // t <- sum over ranks of t, element-wise (F32, F16, BF16; sums in F32 for the 16-bit types on cpu).
  virtual void all_reduce_sum(Tensor& t) = 0;
  // out [size * n, ...] <- every rank's in [n, ...] concatenated along dim 0 in rank order.
  virtual void all_gather(const Tensor& in, Tensor& out) = 0;
  // out [n / size, ...] <- rows [rank * n / size, (rank + 1) * n / size) of the sum over ranks of in [n, ...].
  virtual void reduce_scatter_sum(const Tensor& in, Tensor& out) = 0;
  // t <- root's t.
  virtual void broadcast(Tensor& t, int root) = 0;
  // Point to point (pipeline stages): matched by (peer, order of calls).
  virtual void send(const Tensor& t, int peer) = 0;
  virtual void recv(Tensor& t, int peer) = 0;
  // Host bytes from root to every rank (the step plan); the receivers' vectors are resized.
  virtual void broadcast_bytes(std::vector<uint8_t>& bytes, int root) = 0;
  // Waits until every rank has arrived.
  virtual void barrier() = 0;
  // A sub-group of the ranks that pass the same color, ordered by key (MPI_Comm_split); a collective call of
  // every rank of this group.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
};

}  // namespace kiln
