#include "cgcn/train.h"

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>

#include "cgcn/checkpoint.h"
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

double PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

}  // namespace

GcnConfig ModelConfig(const Manifest& m, const TrainOptions& options) {
  GcnConfig cfg;
  cfg.in_dim = m.feat_dim;
  cfg.hidden = options.hidden;
  cfg.out_dim = m.num_classes;
  cfg.layers = options.layers;
  cfg.dropout = options.dropout;
  return cfg;
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
