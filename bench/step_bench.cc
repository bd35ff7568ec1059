// cgcn-step-bench: times the parts of one training step on real batches of a shard directory.
//
//   build/bin/cgcn-step-bench --shards DIR [-q 20] [--layers 3] [--hidden 256] [--batches 3] [--reps 5]
//                             [--gemm auto|eigen|onednn] [--compute f32|bf16]
//
// Assembles the first --batches batches of epoch 1 (as cgcn-train would), then runs each
// step --reps times and reports, per phase, the best wall time over the repetitions and the
// GFLOP/s of the dense products: forward, loss, backward, Adam, and the kernels alone
// (MatMul, MatMulTransposeA/B, Propagate at each layer width). A profiling aid: the figures
// in docs/BENCHMARKS.md come from cgcn-train itself.
#include <tbb/global_control.h>
#include <tbb/info.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cgcn/batch.h"
#include "cgcn/batch_stream.h"
#include "cgcn/gcn.h"
#include "cgcn/shard_directory.h"

namespace {
using Clock = std::chrono::steady_clock;

template <typename Fn>
double BestSeconds(int reps, const Fn& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace cgcn;
  CLI::App app{"Times the phases of a cgcn training step on real batches (a profiling aid).", "cgcn-step-bench"};
  std::string dir;
  uint32_t q = 20, layers = 3, hidden = 256, batches = 3;
  int reps = 5, threads = 0;
  app.add_option("--shards", dir, "shard directory")->required();
  app.add_option("-q", q, "clusters per batch")->capture_default_str();
  app.add_option("--layers", layers, "GCN layers")->capture_default_str();
  app.add_option("--hidden", hidden, "hidden width")->capture_default_str();
  app.add_option("--batches", batches, "batches to time")->capture_default_str();
  app.add_option("--reps", reps, "repetitions per batch (the best is kept)")->capture_default_str();
  app.add_option("--threads", threads, "worker threads (default: all cores)");
  std::string gemm_name = "auto";
  app.add_option("--gemm", gemm_name, "dense products: auto, eigen or onednn")->capture_default_str();
  std::string compute_name = "f32";
  app.add_option("--compute", compute_name, "dense products' input type: f32 or bf16")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  DenseBackend gemm;
  DenseCompute compute;
  if (!ParseDenseBackend(gemm_name, &gemm) || !ParseDenseCompute(compute_name, &compute)) {
    std::fprintf(stderr, "cgcn-step-bench: unknown --gemm %s or --compute %s\n", gemm_name.c_str(),
                 compute_name.c_str());
    return 2;
  }
  if (const Status s = CheckDenseBackend(gemm, compute); !s.ok()) {
    std::fprintf(stderr, "cgcn-step-bench: %s\n", s.ToString().c_str());
    return 2;
  }
  SetDenseBackend({.backend = gemm, .compute = compute});
  const int nthreads = threads > 0 ? threads : tbb::info::default_concurrency();
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(nthreads));

  Result<ShardDirectory> shards = ShardDirectory::Open(dir);
  if (!shards.ok()) {
    std::fprintf(stderr, "cgcn-step-bench: %s\n", shards.status().ToString().c_str());
    return 1;
  }
  const Manifest& m = shards->manifest();
  GcnConfig cfg;
  cfg.in_dim = m.feat_dim;
  cfg.hidden = hidden;
  cfg.out_dim = m.num_classes;
  cfg.layers = layers;
  cfg.dropout = 0.5f;
  Gcn model(cfg, 1);
  Adam adam(model.params().size(), 0.01f, 0.0f);
  StreamOptions so;
  so.clusters_per_batch = q;
  so.feature_norm = FeatureNorm::None();
  so.propagate_features = model.AggregatesInputFirst();
  BatchStream stream(*shards, so);
  std::vector<Batch> kept;
  EpochStats st;
  Status s = stream.RunEpoch(
      1,
      [&](const Batch& b) -> Status {
        if (kept.size() < batches) kept.push_back(b);
        return Status::Ok();
      },
      &st);
  if (!s.ok()) {
    std::fprintf(stderr, "cgcn-step-bench: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s: %u threads, %u x %u GCN (%s first), q=%u, gemm %s\n", dir.c_str(), nthreads, layers, hidden,
              model.AggregatesInputFirst() ? "aggregate" : "transform", q, DenseBackendName(gemm));
  const std::vector<uint32_t> dims = cfg.Dims();
  Workspace ws, scratch;
  for (const Batch& b : kept) {
    const SparseRows adj = b.Adjacency();
    const ConstMatrixMap x = b.Features();
    const auto n = static_cast<Eigen::Index>(b.num_nodes);
    const float* ax = b.has_propagated ? b.propagated.data() : nullptr;
    RowMatrix grad(n, cfg.out_dim);
    double gemm_flops = 0;
    for (uint32_t l = 0; l < layers; ++l) {
      const double mk = static_cast<double>(dims[l]) * dims[l + 1];
      gemm_flops += 2.0 * static_cast<double>(n) * mk * (l == 0 ? 2 : 3);  // forward, dW, dX (none for layer 0)
    }
    const double fwd = BestSeconds(reps, [&] { model.Forward(adj, x, true, 7, ax); });
    uint32_t count = 0;
    const double loss = BestSeconds(reps,
                                    [&] {
                                      SoftmaxCrossEntropy(model.Forward(adj, x, true, 7, ax), b.labels, b.train_mask,
                                                          MatrixMap(grad.data(), n, cfg.out_dim), &count);
                                    }) -
                        fwd;
    const double bwd = BestSeconds(reps, [&] {
      model.ZeroGrad();
      model.Backward(adj, x, ConstMatrixMap(grad.data(), n, cfg.out_dim));
    });
    const double opt = BestSeconds(reps, [&] { adam.Step(model.params(), model.grads()); });
    std::printf("batch %llu: %lld nodes, %u train, %u entries (%.1f per row)\n",
                static_cast<unsigned long long>(b.index), static_cast<long long>(n), b.num_train, b.offsets[n],
                static_cast<double>(b.offsets[n]) / static_cast<double>(std::max<Eigen::Index>(1, n)));
    std::printf("  step %.1f ms = forward %.1f + loss %.1f + backward %.1f + adam %.1f; dense products %.2f GFLOP\n",
                1e3 * (fwd + loss + bwd + opt), 1e3 * fwd, 1e3 * loss, 1e3 * bwd, 1e3 * opt, gemm_flops / 1e9);
    for (uint32_t w : {dims[0], hidden, cfg.out_dim}) {
      MatrixMap in = ws.Get(n, w);
      in.setConstant(0.5f);
      RowMatrix out(n, w);
      const double t =
          BestSeconds(reps, [&] { Propagate(adj, ConstMatrixMap(in.data(), n, w), MatrixMap(out.data(), n, w)); });
      std::printf("  Propagate width %4u: %6.1f ms (%.1f GB/s gathered)\n", w, 1e3 * t,
                  static_cast<double>(b.offsets[n] + n) * w * 4 / t / 1e9);
    }
    for (uint32_t l = 0; l < layers; ++l) {
      const Eigen::Index k = dims[l], mm = dims[l + 1];
      RowMatrix a = RowMatrix::Constant(n, k, 0.25f), w = RowMatrix::Constant(k, mm, 0.5f), y(n, mm), dw(k, mm);
      const double f = 2.0 * static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(mm) / 1e9;
      const double t1 = BestSeconds(reps, [&] {
        MatMul(ConstMatrixMap(a.data(), n, k), ConstMatrixMap(w.data(), k, mm), MatrixMap(y.data(), n, mm));
      });
      const double t2 = BestSeconds(reps, [&] {
        MatMulTransposeA(ConstMatrixMap(a.data(), n, k), ConstMatrixMap(y.data(), n, mm), MatrixMap(dw.data(), k, mm),
                         scratch);
      });
      const double t3 = BestSeconds(reps, [&] {
        MatMulTransposeB(ConstMatrixMap(y.data(), n, mm), ConstMatrixMap(w.data(), k, mm), MatrixMap(a.data(), n, k));
      });
      std::printf(
          "  layer %u %4lld x %4lld: MatMul %6.1f ms (%.0f GFLOP/s), TransposeA %6.1f ms (%.0f), TransposeB %6.1f ms "
          "(%.0f)\n",
          l, static_cast<long long>(k), static_cast<long long>(mm), 1e3 * t1, f / t1, 1e3 * t2, f / t2, 1e3 * t3,
          f / t3);
    }
  }
  return 0;
}
