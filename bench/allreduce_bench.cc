// Benchmark (not a test): the gradient allreduce cgcn-train does once per step (Comm::AllreduceSum,
// MPI_Allreduce of floats, in place), timed alone for a range of sizes, so that the alpha-beta
// model of bench/mpi_projection.py rests on measured constants. Run under mpirun:
//   mpirun -n 2 build/bin/cgcn-allreduce-bench [--reps 200]
// Rank 0 prints one JSON line per size: ranks, bytes, microseconds per call, algorithm bandwidth.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <vector>

#include "cgcn/comm.h"

int main(int argc, char** argv) {
  cgcn::Comm::Init(&argc, &argv);
  CLI::App app{"Times Comm::AllreduceSum (MPI_Allreduce of floats) for sizes from 4 KiB to 16 MiB",
               "cgcn-allreduce-bench"};
  int reps = 200;
  app.add_option("--reps", reps, "allreduce calls timed per size (after 10 untimed ones)");
  CLI11_PARSE(app, argc, argv);
  cgcn::Comm& comm = cgcn::Comm::World();
  for (size_t bytes :
       {size_t{4} << 10, size_t{64} << 10, size_t{256} << 10, size_t{1} << 20, size_t{4} << 20, size_t{16} << 20}) {
    std::vector<float> v(bytes / sizeof(float), 1.0f);
    for (int i = 0; i < 10; ++i) comm.AllreduceSum(std::span<float>(v));
    (void)comm.AllAgree(true);  // every rank starts together
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) comm.AllreduceSum(std::span<float>(v));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
    if (comm.rank() == 0)
      std::printf("{\"ranks\": %u, \"bytes\": %zu, \"us_per_call\": %.2f, \"algbw_gb_s\": %.3f}\n", comm.size(), bytes,
                  s * 1e6, static_cast<double>(bytes) / s / 1e9);
  }
  return 0;
}
