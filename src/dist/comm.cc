#include "cgcn/comm.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cgcn {
namespace {

bool g_initialized = false;  // by Comm::Init (not by someone else)

// Whether a launcher started this process as part of a job.
bool LaunchedByMpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

bool MpiActive() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

Comm::Comm() {
  char name[256] = {0};
  if (::gethostname(name, sizeof name - 1) != 0) std::snprintf(name, sizeof name, "unknown host");
  host_ = name;
  if (MpiActive()) {
    int r = 0, n = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    rank_ = static_cast<uint32_t>(r);
    size_ = static_cast<uint32_t>(n);
  }
}

void Comm::Init(int* argc, char*** argv) {
  if (g_initialized || !LaunchedByMpirun() || MpiActive()) return;
  MPI_Init(argc, argv);
  g_initialized = true;
  std::atexit(&Comm::Finalize);
}

void Comm::Finalize() {
  if (g_initialized && MpiActive()) MPI_Finalize();
}

Comm& Comm::World() {
  static Comm world;  // after Init: main calls Init first
  return world;
}

std::string Comm::Describe() const {
  return "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + " (host " + host_ + ")";
}

void Comm::AllreduceSum(std::span<float> values) {
  if (size_ < 2 || values.empty()) return;
  SumInPlace(values.data(), values.size(), false);
}

void Comm::AllreduceSum(std::span<double> values) {
  if (size_ < 2 || values.empty()) return;
  SumInPlace(values.data(), values.size(), true);
}

void Comm::SumInPlace(void* data, size_t count, bool doubles) {
  const double t0 = Now();
  MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), doubles ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  traffic_.calls += 1;
  traffic_.bytes += count * (doubles ? sizeof(double) : sizeof(float));
  traffic_.seconds += Now() - t0;
}

bool Comm::AllAgree(bool mine) {
  if (size_ < 2) return mine;
  int v = mine ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
  return v != 0;
}

std::vector<std::string> Comm::Allgather(const std::string& mine) {
  if (size_ < 2) return {mine};
  const int len = static_cast<int>(mine.size());
  std::vector<int> lens(size_), offsets(size_);
  MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD);
  int total = 0;
  for (uint32_t i = 0; i < size_; ++i) offsets[i] = total, total += lens[i];
  std::string all(static_cast<size_t>(total), '\0');
  MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR, MPI_COMM_WORLD);
  std::vector<std::string> out(size_);
  for (uint32_t i = 0; i < size_; ++i) out[i] = all.substr(offsets[i], lens[i]);
  return out;
}

void Comm::AllgatherRows(float* base, uint32_t width, const std::vector<uint64_t>& first_row,
                         const std::vector<uint64_t>& rows) {
  if (size_ < 2 || width == 0) return;
  MPI_Datatype row;
  MPI_Type_contiguous(static_cast<int>(width), MPI_FLOAT, &row);
  MPI_Type_commit(&row);
  std::vector<int> counts(size_), displs(size_);
  for (uint32_t r = 0; r < size_; ++r) {
    counts[r] = static_cast<int>(rows[r]);
    displs[r] = static_cast<int>(first_row[r]);
  }
  MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, base, counts.data(), displs.data(), row, MPI_COMM_WORLD);
  MPI_Type_free(&row);
}

void Comm::Broadcast(std::vector<std::byte>* bytes) {
  if (size_ < 2) return;
  uint64_t n = bytes->size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  bytes->resize(n);
  // In pieces below 2^31 bytes (MPI counts are int).
  constexpr uint64_t kPiece = uint64_t{1} << 30;
  for (uint64_t off = 0; off < n; off += kPiece)
    MPI_Bcast(bytes->data() + off, static_cast<int>(std::min(kPiece, n - off)), MPI_BYTE, 0, MPI_COMM_WORLD);
}

void Comm::Abort(const std::string& tool, const std::string& message, int code) {
  std::fflush(stdout);
  std::fprintf(stderr, "%s: %s: error: %s\n", tool.c_str(), Describe().c_str(), message.c_str());
  std::fflush(stderr);
  if (MpiActive() && size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

Comm::Traffic Comm::TakeTraffic() {
  Traffic t = traffic_;
  traffic_ = {};
  return t;
}

}  // namespace cgcn
