#include "cgcn/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "util/random.h"

namespace cgcn {

Result<TrainReport> Train(const ShardDirectory& shards, const TrainOptions& options, Gcn& model,
                          const std::function<void(const EpochRecord&)>& on_epoch, const ProgressFn& progress) {
  const Manifest& m = shards.manifest();
  if (model.config().in_dim != m.feat_dim || model.config().out_dim != m.num_classes)
    return Status::InvalidArgument("model dimensions do not match the shard directory");
  if (options.epochs == 0) return Status::InvalidArgument("--epochs must be >= 1");
  StreamOptions so;
  so.clusters_per_batch = options.clusters_per_batch;
  so.prefetch = options.prefetch;
  so.seed = options.seed;
  so.row_normalize = options.row_normalize;
  BatchStream stream(shards, so);
  Adam adam(model.params().size(), options.lr, options.weight_decay);
  Workspace grad_ws;
  const uint32_t q = std::max<uint32_t>(1, std::min(options.clusters_per_batch, shards.num_clusters()));
  const uint64_t batches_per_epoch = (shards.num_clusters() + q - 1) / q;

  TrainReport report;
  uint64_t step = 0;
  double best_valid = -1;
  for (uint32_t epoch = 1; epoch <= options.epochs; ++epoch) {
    double loss_sum = 0;
    uint64_t loss_count = 0;
    auto consume = [&](const Batch& b) -> Status {
      if (b.num_train > 0) {
        const SparseRows adj = b.Adjacency();
        const ConstMatrixMap x = b.Features();
        const ConstMatrixMap logits = model.Forward(adj, x, true, SplitMix64(options.seed ^ SplitMix64(step)));
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
      }
      if (progress) progress("train epoch " + std::to_string(epoch), b.index + 1, batches_per_epoch);
      return Status::Ok();
    };
    EpochRecord rec;
    rec.epoch = epoch;
    CGCN_RETURN_IF_ERROR(stream.RunEpoch(epoch, consume, &rec.stats));
    rec.epoch_s = rec.stats.wall_s;
    rec.loss = loss_count ? loss_sum / static_cast<double>(loss_count) : 0.0;
    const bool eval = (options.eval_every > 0 && epoch % options.eval_every == 0) || epoch == options.epochs;
    if (eval) {
      const auto t0 = std::chrono::steady_clock::now();
      CGCN_ASSIGN_OR_RETURN(rec.acc, EvaluateFullGraph(shards, model, options.row_normalize, nullptr, progress));
      rec.eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rec.evaluated = true;
      report.final_acc = rec.acc;
      if (rec.acc.valid > best_valid) {
        best_valid = rec.acc.valid;
        report.best_epoch = epoch;
        report.best_acc = rec.acc;
      }
    }
    report.mean_epoch_s += rec.epoch_s;
    report.epochs.push_back(rec);
    if (on_epoch) on_epoch(rec);
  }
  report.mean_epoch_s /= options.epochs;
  return report;
}

}  // namespace cgcn
