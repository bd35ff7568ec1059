// Data-parallel training over MPI (issue 14; src/dist/comm.cc): which process this is among the
// ranks of a job, and the few collectives training needs.
//
// A process started by mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE; PMI_RANK / PMIX_RANK for other
// launchers) initializes MPI and is rank r of N. Started any other way it is rank 0 of 1 and
// makes no MPI call at all, so the same binary runs alone without mpirun.
//
// Every collective is called by every rank in the same order; errors are MPI's default
// (MPI_ERRORS_ARE_FATAL): a failed or dead peer ends the job (mpirun then stops every rank). A
// rank that hits an error of its own calls Abort, which prints the message naming the rank and
// the host and makes mpirun stop the others.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace cgcn {

class Comm {
 public:
  // The process's communicator: MPI_COMM_WORLD under mpirun, else a single rank.
  static Comm& World();
  // Under a launcher: MPI_Init (once, from main before any thread starts). Idempotent.
  static void Init(int* argc, char*** argv);
  // MPI_Finalize when Init initialized MPI (at exit; idempotent).
  static void Finalize();

  uint32_t rank() const { return rank_; }
  uint32_t size() const { return size_; }
  bool distributed() const { return size_ > 1; }
  const std::string& host() const { return host_; }
  // "rank R of N (host H)", for messages.
  std::string Describe() const;

  // In place, element-wise sums over every rank.
  void AllreduceSum(std::span<float> values);
  void AllreduceSum(std::span<double> values);
  // Whether `mine` holds on every rank (MPI_Allreduce, logical and).
  bool AllAgree(bool mine);
  // Every rank's string, in rank order.
  std::vector<std::string> Allgather(const std::string& mine);
  // In place: rank r's rows [first_row[r], first_row[r] + rows[r]) of a [.. x width] float
  // array at `base` reach every rank (MPI_Allgatherv with a row datatype, so counts are rows).
  void AllgatherRows(float* base, uint32_t width, const std::vector<uint64_t>& first_row,
                     const std::vector<uint64_t>& rows);
  // Rank 0's bytes on every rank (resized to fit).
  void Broadcast(std::vector<std::byte>* bytes);
  // Prints "TOOL: RANK-DESCRIPTION: error: MESSAGE" to stderr and ends every rank of the job with
  // `code` (MPI_Abort); a single process just exits with it.
  [[noreturn]] void Abort(const std::string& tool, const std::string& message, int code);

  // Bytes and seconds spent in AllreduceSum since the last call (for the metrics).
  struct Traffic {
    uint64_t calls = 0, bytes = 0;
    double seconds = 0;
  };
  Traffic TakeTraffic();

 private:
  Comm();
  void SumInPlace(void* data, size_t count, bool doubles);  // MPI_Allreduce(MPI_SUM), timed
  uint32_t rank_ = 0, size_ = 1;
  std::string host_;
  Traffic traffic_;
};

}  // namespace cgcn
