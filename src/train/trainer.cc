#include "cgcn/trainer.h"

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>

#include "util/bytes.h"
#include "util/random.h"

namespace cgcn {
namespace {

// What ties a checkpoint to the data it was trained on.
std::string ShardIdentity(const ShardDirectory& shards) {
  const Manifest& m = shards.manifest();
  uint64_t h = SplitMix64(m.input_fingerprint) ^ SplitMix64(m.num_parts) ^ SplitMix64(static_cast<uint64_t>(m.seed));
  for (const ShardInfo& s : m.shards) h = SplitMix64(h ^ s.header_checksum);
  return " shards=" + Hex64(h);
}

constexpr uint64_t kMiB = uint64_t{1} << 20;
// The process itself: code, allocator arenas, TBB and thread stacks (measured: about 20 MiB).
constexpr uint64_t kRuntimeBytes = 32 * kMiB;

double PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

std::string Mib(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f MiB", static_cast<double>(b) / static_cast<double>(kMiB));
  return buf;
}

}  // namespace

std::string MemoryPlan::Describe() const {
  std::string s = "memory plan: budget " + Mib(budget) + "; training " + Mib(train_bytes) + " = runtime " +
                  Mib(runtime_bytes) + " + decoding " + Mib(decode_bytes) + " + training step " + Mib(compute_bytes) +
                  " + " + std::to_string(prefetch) + " x " + Mib(batch_bytes) + " per batch in flight";
  if (prefetch < requested_prefetch)
    s += " (prefetch lowered from " + std::to_string(requested_prefetch) + " to " + std::to_string(prefetch) +
         " to fit)";
  s += "; evaluation " + Mib(eval.peak_bytes) + ", activations (" + Mib(eval.activation_bytes) + ") ";
  s += eval.spill ? "spill to " + (eval_options.tmp_dir.empty() ? std::string("$TMPDIR") : eval_options.tmp_dir) +
                        " in chunks of " + Mib(eval.chunk_bytes)
                  : std::string("in memory");
  s += ", " + std::to_string(eval.blocks.size() - 1) + " blocks; model + Adam " + Mib(model_bytes) +
       " outside the budget";
  return s;
}

GcnConfig ModelConfig(const Manifest& m, const TrainOptions& options) {
  GcnConfig cfg;
  cfg.in_dim = m.feat_dim;
  cfg.hidden = options.hidden;
  cfg.out_dim = m.num_classes;
  cfg.layers = options.layers;
  cfg.dropout = options.dropout;
  return cfg;
}

Result<MemoryPlan> PlanMemory(const Manifest& m, const TrainOptions& o, uint64_t budget, uint32_t threads,
                              const std::string& tmp_dir, bool with_predictions) {
  MemoryPlan p;
  p.budget = budget;
  p.requested_prefetch = std::max<uint32_t>(1, o.prefetch);
  threads = std::max<uint32_t>(1, threads);
  const uint32_t q = std::max<uint32_t>(1, std::min(o.clusters_per_batch, m.num_parts));
  // The largest possible batch: the q shards with the most decoded bytes, nodes and entries
  // (each chosen separately, an upper bound).
  auto top_q = [&](const std::function<uint64_t(const ShardInfo&)>& f) {
    std::vector<uint64_t> v;
    for (const ShardInfo& s : m.shards) v.push_back(f(s));
    std::sort(v.begin(), v.end(), std::greater<>());
    uint64_t sum = 0;
    for (uint32_t i = 0; i < q && i < v.size(); ++i) sum += v[i];
    return sum;
  };
  const uint64_t decoded = top_q([](const ShardInfo& s) { return ClusterData::PlannedBytes(s); });
  const uint64_t nodes = top_q([](const ShardInfo& s) { return s.num_nodes; });
  const uint64_t entries = top_q([](const ShardInfo& s) { return s.intra_entries + s.inter_entries; });
  uint64_t max_file = 0;
  for (const ShardInfo& s : m.shards) max_file = std::max(max_file, s.file_size);
  p.batch_bytes = BatchStream::InFlightBytes(decoded, nodes, entries, m.feat_dim);
  // Per decoding thread: the mapped shard file and the decoder.
  p.decode_bytes = threads * (max_file + ShardDecoder::kPlannedBytes);
  const GcnConfig cfg = ModelConfig(m, o);
  // The model's work buffers and the loss's gradient (the trainer's [nodes x classes] buffer).
  p.compute_bytes = Gcn::WorkspaceBytes(cfg, nodes) + nodes * cfg.out_dim * sizeof(float);
  p.model_bytes = Gcn::PlannedBytes(cfg) + Adam::PlannedBytes(Gcn::ParamCount(cfg));
  p.runtime_bytes = kRuntimeBytes;
  const uint64_t fixed = p.runtime_bytes + p.decode_bytes + p.compute_bytes;
  if (budget < fixed + p.batch_bytes)
    return Status::InvalidArgument("--mem-budget " + Mib(budget) + " is too small: one batch of the " +
                                   std::to_string(q) + " largest clusters needs " + Mib(p.batch_bytes) + " (" +
                                   std::to_string(nodes) + " nodes, " + std::to_string(entries) + " edge entries, " +
                                   Mib(decoded) + " decoded), its training step " + Mib(p.compute_bytes) +
                                   ", decoding on " + std::to_string(threads) + " threads " + Mib(p.decode_bytes) +
                                   " and the process " + Mib(p.runtime_bytes) + ": at least " +
                                   Mib(fixed + p.batch_bytes) + " (lower -q or --hidden, or use fewer --threads)");
  p.prefetch = static_cast<uint32_t>(std::min<uint64_t>(p.requested_prefetch, (budget - fixed) / p.batch_bytes));
  p.train_bytes = fixed + p.prefetch * p.batch_bytes;
  // Evaluation runs between epochs, after the batch buffers are freed; the training step's
  // buffers stay allocated.
  p.eval_options.memory_bytes = budget - p.runtime_bytes - p.compute_bytes;
  p.eval_options.tmp_dir = tmp_dir;
  Result<EvalPlan> e = PlanEvaluation(m, cfg, p.eval_options, with_predictions, threads);
  if (!e.ok()) return Status::InvalidArgument("--mem-budget " + Mib(budget) + " is too small: " + e.status().message());
  p.eval = std::move(e).value();
  return p;
}

std::string TrainOptions::Signature() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "q=%u layers=%u hidden=%u lr=%.9g wd=%.9g dropout=%.9g seed=%llu feature_norm=%s",
                clusters_per_batch, layers, hidden, static_cast<double>(lr), static_cast<double>(weight_decay),
                static_cast<double>(dropout), static_cast<unsigned long long>(seed), row_normalize ? "row" : "none");
  return buf;
}

Result<TrainReport> Train(const ShardDirectory& shards, const TrainOptions& options, Gcn& model,
                          const std::function<void(const EpochRecord&)>& on_epoch, const ProgressFn& progress,
                          const StepFn& on_step) {
  const Manifest& m = shards.manifest();
  if (model.config().in_dim != m.feat_dim || model.config().out_dim != m.num_classes)
    return Status::InvalidArgument("model dimensions do not match the shard directory");
  if (options.epochs == 0) return Status::InvalidArgument("--epochs must be >= 1");
  if ((options.checkpoint_every > 0 || options.resume) && options.checkpoint_dir.empty())
    return Status::InvalidArgument("checkpointing needs a checkpoint directory (--checkpoint DIR)");
  StreamOptions so;
  so.clusters_per_batch = options.clusters_per_batch;
  so.prefetch = options.prefetch;
  so.seed = options.seed;
  so.row_normalize = options.row_normalize;
  so.propagate_features = model.AggregatesInputFirst();
  BatchStream stream(shards, so);
  Adam adam(model.params().size(), options.lr, options.weight_decay);
  Workspace grad_ws;
  const uint32_t q = std::max<uint32_t>(1, std::min(options.clusters_per_batch, shards.num_clusters()));
  const uint64_t batches_per_epoch = (shards.num_clusters() + q - 1) / q;
  const std::string signature = options.Signature() + ShardIdentity(shards);

  uint64_t step = 0;
  uint32_t first_epoch = 1;
  uint64_t first_batch = 0;
  double loss_sum = 0;
  uint64_t loss_count = 0;
  if (options.resume) {
    CGCN_ASSIGN_OR_RETURN(Checkpoint c, LoadCheckpoint(options.checkpoint_dir));
    if (c.signature != signature)
      return Status::InvalidArgument(options.checkpoint_dir + "/" + kCheckpointFileName +
                                     ": written for different options or shards:\n  checkpoint: " + c.signature +
                                     "\n  this run:   " + signature);
    if (c.params.size() != model.params().size() || !adam.Restore(c.step, c.adam_m, c.adam_v))
      return Status::InvalidArgument(options.checkpoint_dir + ": checkpoint parameter count does not match the model");
    if (c.next_batch > batches_per_epoch || c.epoch == 0)
      return Status::Corruption(options.checkpoint_dir + ": checkpoint position out of range");
    std::copy(c.params.begin(), c.params.end(), model.params().begin());
    step = c.step;
    first_epoch = c.epoch;
    first_batch = c.next_batch;
    loss_sum = c.loss_sum;
    loss_count = c.loss_count;
  }
  auto checkpoint = [&](uint32_t epoch, uint64_t next_batch) -> Status {
    Checkpoint c;
    c.signature = signature;
    c.epoch = epoch;
    c.next_batch = next_batch;
    c.step = step;
    c.loss_sum = loss_sum;
    c.loss_count = loss_count;
    c.params.assign(model.params().begin(), model.params().end());
    c.adam_m.assign(adam.m().begin(), adam.m().end());
    c.adam_v.assign(adam.v().begin(), adam.v().end());
    return SaveCheckpoint(options.checkpoint_dir, c);
  };
  if (options.checkpoint_every > 0) {
    std::error_code ec;
    std::filesystem::create_directories(options.checkpoint_dir, ec);
    if (ec) return Status::IoError(options.checkpoint_dir + ": cannot create checkpoint directory: " + ec.message());
  }

  TrainReport report;
  double best_valid = -1;
  for (uint32_t epoch = first_epoch; epoch <= options.epochs; ++epoch) {
    auto consume = [&](const Batch& b) -> Status {
      if (b.num_train > 0) {
        const SparseRows adj = b.Adjacency();
        const ConstMatrixMap x = b.Features();
        const ConstMatrixMap logits = model.Forward(adj, x, true, SplitMix64(options.seed ^ SplitMix64(step)),
                                                    b.has_propagated ? b.propagated.data() : nullptr);
        MatrixMap grad = grad_ws.Get(b.num_nodes, model.config().out_dim);
        uint32_t count = 0;
        const float loss = SoftmaxCrossEntropy(logits, b.labels, b.train_mask, grad, &count);
        if (!std::isfinite(loss))
          return Status::Internal("training diverged: loss is " + std::to_string(loss) + " at epoch " +
                                  std::to_string(epoch) + " batch " + std::to_string(b.index) + " (try a lower --lr)");
        model.ZeroGrad();
        model.Backward(adj, x, ConstMatrixMap(grad.data(), grad.rows(), grad.cols()));
        adam.Step(model.params(), model.grads());
        loss_sum += static_cast<double>(loss) * count;
        loss_count += count;
        ++step;
        if (on_step) on_step(step, epoch, b.index, loss);
        if (options.checkpoint_every > 0 && step % options.checkpoint_every == 0)
          CGCN_RETURN_IF_ERROR(checkpoint(epoch, b.index + 1));
      }
      if (progress) progress("train epoch " + std::to_string(epoch), b.index + 1, batches_per_epoch);
      return Status::Ok();
    };
    EpochRecord rec;
    rec.epoch = epoch;
    CGCN_RETURN_IF_ERROR(stream.RunEpoch(epoch, consume, &rec.stats, epoch == first_epoch ? first_batch : 0));
    rec.epoch_s = rec.stats.wall_s;
    rec.loss = loss_count ? loss_sum / static_cast<double>(loss_count) : 0.0;
    loss_sum = 0;
    loss_count = 0;
    const bool eval = (options.eval_every > 0 && epoch % options.eval_every == 0) || epoch == options.epochs;
    rec.train_peak_rss_mb = PeakRssMb();
    if (eval) {
      const auto t0 = std::chrono::steady_clock::now();
      stream.ReleaseBuffers();
      malloc_trim(0);  // hand the freed batch buffers back to the system (glibc keeps them otherwise)
      CGCN_ASSIGN_OR_RETURN(rec.acc, EvaluateFullGraph(shards, model, options.row_normalize, nullptr, progress,
                                                       options.eval, &rec.eval_stats));
      rec.eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rec.evaluated = true;
      report.final_acc = rec.acc;
      if (rec.acc.valid > best_valid) {
        best_valid = rec.acc.valid;
        report.best_epoch = epoch;
        report.best_acc = rec.acc;
      }
    }
    if (options.checkpoint_every > 0) CGCN_RETURN_IF_ERROR(checkpoint(epoch + 1, 0));
    report.mean_epoch_s += rec.epoch_s;
    report.epochs.push_back(rec);
    if (on_epoch) on_epoch(rec);
  }
  if (!report.epochs.empty()) report.mean_epoch_s /= static_cast<double>(report.epochs.size());
  return report;
}

}  // namespace cgcn
