#include "cgcn/train.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <type_traits>

#include "cgcn/checkpoint.h"
#include "cgcn/checksum.h"
#include "cgcn/comm.h"
#include "cgcn/flag_check.h"
#include "cgcn/loss.h"
#include "util/bytes.h"
#include "util/file_util.h"
#include "util/memory_limit.h"
#include "util/output_path.h"
#include "util/peak_rss.h"
#include "util/random.h"
#include "util/threads.h"

namespace cgcn {
namespace {

// What ties a checkpoint to the data it was trained on.
std::string ShardIdentity(const ShardDirectory& shards) {
  const Manifest& m = shards.manifest();
  uint64_t h = SplitMix64(m.input_fingerprint) ^ SplitMix64(m.num_parts) ^ SplitMix64(static_cast<uint64_t>(m.seed));
  for (const ShardInfo& s : m.shards) h = SplitMix64(h ^ s.header_checksum);
  return " shards=" + Hex64(h);
}

// Puts the directory's page-cache setting back when training ends, however it ends.
class PageCacheSetting {
 public:
  explicit PageCacheSetting(ShardDirectory& shards) : shards_(shards), before_(shards.drop_page_cache()) {}
  ~PageCacheSetting() { shards_.set_drop_page_cache(before_); }
  PageCacheSetting(const PageCacheSetting&) = delete;
  PageCacheSetting& operator=(const PageCacheSetting&) = delete;

 private:
  ShardDirectory& shards_;
  bool before_;
};

// Scales the gradients so that their global L2 norm is at most max_norm (torch's
// clip_grad_norm_, before the weight decay Adam adds).
void ClipGradientNorm(std::span<float> grads, float max_norm) {
  double sq = 0;
  for (float g : grads) sq += static_cast<double>(g) * g;
  const double norm = std::sqrt(sq);
  if (!(norm > max_norm)) return;
  const auto scale = static_cast<float>(max_norm / (norm + 1e-6));
  for (float& g : grads) g *= scale;
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

GcnConfig ModelConfig(const Manifest& m, const TrainOptions& options) {
  GcnConfig cfg;
  cfg.in_dim = m.feat_dim;
  cfg.hidden = options.hidden;
  cfg.out_dim = m.num_classes;
  cfg.layers = options.layers;
  cfg.dropout = options.dropout;
  cfg.input_dropout = options.input_dropout;
  cfg.kind = options.layer_kind;
  cfg.diag_lambda = options.diag_lambda;
  cfg.heads = options.heads;
  cfg.residual = options.residual;
  cfg.norm = options.norm;
  return cfg;
}

Status TrainOptions::Validate(uint32_t num_clusters) const {
  CGCN_RETURN_IF_ERROR(CheckAtLeast("--epochs", epochs, 1u));
  if (Status s = CheckRange("--clusters-per-batch", clusters_per_batch, 1u, std::max(1u, num_clusters)); !s.ok())
    return Status::InvalidArgument(s.message() + " (the shards hold " + std::to_string(num_clusters) + " clusters)");
  CGCN_RETURN_IF_ERROR(CheckRange("--layers", layers, 1u, 16u));
  CGCN_RETURN_IF_ERROR(CheckRange("--hidden", hidden, 1u, 65536u));
  CGCN_RETURN_IF_ERROR(CheckFinite("--lr", lr));
  if (!(lr > 0)) {
    std::ostringstream os;
    os << "--lr must be greater than 0, found " << lr;
    return Status::InvalidArgument(os.str());
  }
  CGCN_RETURN_IF_ERROR(CheckAtLeast("--weight-decay", weight_decay, 0.0f));
  CGCN_RETURN_IF_ERROR(CheckRange("--dropout", dropout, 0.0f, 0.99f));
  CGCN_RETURN_IF_ERROR(CheckRange("--input-dropout", input_dropout, 0.0f, 0.99f));
  CGCN_RETURN_IF_ERROR(CheckFinite("--diag-lambda", diag_lambda));
  if (diag_lambda != 0.0f && layer_kind != LayerKind::kClusterGcn)
    return Status::InvalidArgument(std::string("--diag-lambda applies to --model cluster-gcn only, not ") +
                                   LayerKindName(layer_kind));
  CGCN_RETURN_IF_ERROR(CheckRange("--heads", heads, 1u, 64u));
  if (heads != 1 && layer_kind != LayerKind::kGat)
    return Status::InvalidArgument(std::string("--heads applies to --model gat only, not ") +
                                   LayerKindName(layer_kind));
  if (layer_kind == LayerKind::kGat && hidden % heads != 0)
    return Status::InvalidArgument("--hidden " + std::to_string(hidden) + " must be a multiple of --heads " +
                                   std::to_string(heads) + " (each head has hidden / heads units)");
  CGCN_RETURN_IF_ERROR(CheckRange("--prefetch", prefetch, 1u, 64u));
  if (checkpoint_every > 0 && checkpoint_dir.empty())
    return Status::InvalidArgument("--checkpoint-every needs a checkpoint directory (--checkpoint DIR)");
  if (resume && checkpoint_dir.empty())
    return Status::InvalidArgument("--resume needs a checkpoint directory (--checkpoint DIR)");
  if (lr_schedule == LrSchedule::kPlateau && eval_every == 0)
    return Status::InvalidArgument("--lr-schedule plateau follows the validation loss: set --eval-every N");
  CGCN_RETURN_IF_ERROR(CheckAtLeast("--lr-step-size", lr_step_size, 1u));
  CGCN_RETURN_IF_ERROR(CheckFinite("--lr-gamma", lr_gamma));
  if (!(lr_gamma > 0 && lr_gamma <= 1)) {
    std::ostringstream os;
    os << "--lr-gamma must be greater than 0 and at most 1, found " << lr_gamma;
    return Status::InvalidArgument(os.str());
  }
  CGCN_RETURN_IF_ERROR(CheckFinite("--grad-clip", grad_clip));
  CGCN_RETURN_IF_ERROR(CheckAtLeast("--grad-clip", grad_clip, 0.0f));
  CGCN_RETURN_IF_ERROR(CheckRange("--accumulate", accumulate, 1u, 4096u));
  return Status::Ok();
}

std::string TrainOptions::Signature() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "q=%u layers=%u hidden=%u lr=%.9g wd=%.9g dropout=%.9g seed=%llu feature_norm=%s lr_schedule=%s "
                "lr_step_size=%u lr_gamma=%.9g lr_patience=%u grad_clip=%.9g inductive=%d",
                clusters_per_batch, layers, hidden, static_cast<double>(lr), static_cast<double>(weight_decay),
                static_cast<double>(dropout), static_cast<unsigned long long>(seed),
                std::string(FeatureNormModeName(feature_norm)).c_str(),
                std::string(LrScheduleName(lr_schedule)).c_str(), lr_step_size, static_cast<double>(lr_gamma),
                lr_patience, static_cast<double>(grad_clip), inductive ? 1 : 0);
  // The layer options through the one mapping from options to a model (the manifest's widths
  // play no part in the layer signature).
  std::string sig = std::string(buf) + " " + ModelConfig(Manifest{}, *this).LayerSignature();
  if (accumulate != 1) sig += " accumulate=" + std::to_string(accumulate);
  const uint32_t ranks = Comm::World().size();
  if (ranks != 1) sig += " ranks=" + std::to_string(ranks);
  return sig;
}

namespace {

// What a run without a budget may keep in memory across epochs to save work (the decoded-cluster
// cache; the evaluations' kept memory, each on its own): a quarter of the memory limit, shared by
// the ranks (which may all run on this host).
uint64_t KeepableBytes(uint32_t ranks) { return MemoryLimitBytes() / 4 / std::max<uint32_t>(1, ranks); }

// kAutoCache without a budget: the whole decoded graph, or KeepableBytes (each rank caches the
// clusters it decodes).
uint64_t ResolveCacheBytes(uint64_t requested, const Manifest& m, uint32_t ranks) {
  if (requested != TrainOptions::kAutoCache) return requested;
  uint64_t decoded = 0;
  for (const ShardInfo& s : m.shards) decoded += BatchStream::CachedBytes(s, m.num_parts);
  return std::min(decoded, KeepableBytes(ranks));
}

}  // namespace

Result<TrainReport> Train(ShardDirectory& shards, const TrainOptions& options, Gcn& model,
                          const TrainCallbacks& callbacks) {
  const Manifest& m = shards.manifest();
  CGCN_RETURN_IF_ERROR(options.Validate(shards.num_clusters()));
  if (model.config().in_dim != m.feat_dim || model.config().out_dim != m.num_classes)
    return Status::InvalidArgument("model dimensions do not match the shard directory");
  TrainReport report;
  const PageCacheSetting page_cache(shards);
  uint32_t prefetch = options.prefetch;
  EvalOptions eval;
  eval.tmp_dir = options.tmp_dir;
  if (options.mem_budget > 0) {
    CGCN_ASSIGN_OR_RETURN(MemoryPlan plan, PlanMemory(m, options, RunnableThreads()));
    if (plan.eval.spill) {
      const std::string dir = SpillDirectory(plan.eval_options);
      CGCN_RETURN_IF_ERROR(CheckScratchDirectory(
          options.tmp_dir.empty() ? "temporary directory " + dir + " (for spilled activations; set --tmp-dir)"
                                  : "--tmp-dir " + dir,
          dir));
    }
    prefetch = plan.prefetch;
    eval = plan.eval_options;
    shards.set_drop_page_cache(true);
    report.plan = std::move(plan);
  }

  CGCN_ASSIGN_OR_RETURN(report.feature_norm, ResolveFeatureNorm(shards, options.feature_norm, options.inductive,
                                                                &report.feature_norm_reason));
  const FeatureNorm& norm = report.feature_norm;
  StreamOptions so;
  so.clusters_per_batch = options.clusters_per_batch;
  so.prefetch = prefetch;
  so.seed = options.seed;
  so.feature_norm = norm;
  so.train_only = options.inductive;
  // A_hat x is of the undropped input: with input dropout the model propagates its dropped copy.
  so.propagate_features = model.AggregatesInputFirst() && model.config().input_dropout == 0.0f;
  // Data parallelism: an optimizer step averages the gradients of a group of G = ranks x
  // accumulate consecutive batches; this rank trains its share of each group (BatchOwner).
  Comm& comm = Comm::World();
  const bool leader = comm.rank() == 0;  // reads and writes checkpoints, evaluates
  const uint32_t group = comm.size() * options.accumulate;
  so.num_ranks = comm.size();
  so.rank = comm.rank();
  so.accumulate = options.accumulate;
  so.cache_bytes = report.cache_bytes =
      report.plan ? report.plan->cache_bytes : ResolveCacheBytes(options.cache_bytes, shards.manifest(), comm.size());
  BatchStream stream(shards, so);
  // Evaluation takes the clusters the cache holds instead of decoding them again (under a budget
  // the cache is emptied before evaluation instead).
  if (options.mem_budget == 0 && so.cache_bytes > 0) eval.decoded = [&stream](uint32_t c) { return stream.Cached(c); };
  // Without a budget, in one process, and when they take at most a quarter of the memory limit
  // (as the cache's auto size), the evaluations of this run keep their arrays, rows and degree
  // scales for the next one (EvalReuse): later evaluations neither decode the structure, nor sort
  // rows, nor fault in fresh memory. Only with more than one evaluation. (Under mpirun the ranks
  // split each evaluation, and a split evaluation keeps nothing.)
  EvalReuse eval_reuse;
  if (options.mem_budget == 0 && !comm.distributed() && options.eval_every > 0 && options.eval_every < options.epochs) {
    CGCN_ASSIGN_OR_RETURN(const EvalPlan eval_plan,
                          PlanEvaluation(m, model.config(), eval, options.predict, RunnableThreads()));
    if (eval_plan.reuse_bytes > 0 && eval_plan.reuse_bytes <= KeepableBytes(1)) {
      eval.reuse = &eval_reuse;
      report.eval_kept_bytes = eval_plan.reuse_bytes;
    }
  }
  Adam adam(model.params().size(), options.lr, options.weight_decay);
  Workspace grad_ws;
  const uint32_t q = std::max<uint32_t>(1, std::min(options.clusters_per_batch, shards.num_clusters()));
  const uint64_t batches_per_epoch = (shards.num_clusters() + q - 1) / q;
  const uint64_t groups_per_epoch = (batches_per_epoch + group - 1) / group;
  const std::string signature = options.Signature() + ShardIdentity(shards);
  const bool checkpointing = !options.checkpoint_dir.empty();

  LrScheduleOptions lso;
  lso.kind = options.lr_schedule;
  lso.base_lr = options.lr;
  lso.epochs = options.epochs;
  lso.step_size = options.lr_step_size;
  lso.gamma = options.lr_gamma;
  lso.patience = options.lr_patience;
  LrScheduler scheduler(lso);
  // Model selection: the best evaluation so far, and its parameters (with eval_every).
  // Without validation nodes there is nothing to select on or to stop by: the model is the last
  // epoch's (report.selection_note says so).
  const bool has_valid = shards.manifest().num_valid > 0;
  const bool selecting = options.eval_every > 0 && has_valid;
  const uint32_t patience = selecting ? options.patience : 0;
  if (!has_valid && options.lr_schedule == LrSchedule::kPlateau)
    return Status::InvalidArgument(
        "--lr-schedule plateau follows the validation loss, but the shards have no validation nodes");
  if (!has_valid && options.eval_every > 0)
    report.selection_note = "the shards have no validation nodes: no model selection" +
                            std::string(options.patience > 0 ? " and no early stopping" : "") +
                            "; the model is the last epoch's";
  std::vector<float> best_params, best_buffers;  // buffers: batch norm's running statistics
  // Progress, as GAT's training counts it: a better validation metric or a lower validation loss.
  uint32_t evals_without_progress = 0;
  double best_valid = -1, best_valid_loss = std::numeric_limits<double>::infinity();
  double lowest_valid_loss = std::numeric_limits<double>::infinity();

  uint64_t step = 0;
  uint32_t first_epoch = 1;
  uint64_t first_batch = 0;
  double loss_sum = 0;
  uint64_t loss_count = 0;
  if (options.resume) {
    const std::string path = CheckpointPath(options.checkpoint_dir);
    // Rank 0 reads the file; the others receive its bytes (the checkpoint directory need not be
    // shared).
    std::vector<std::byte> bytes;
    if (leader) {
      CGCN_ASSIGN_OR_RETURN(bytes, ReadWholeFile(path));
    }
    comm.Broadcast(&bytes);
    CGCN_ASSIGN_OR_RETURN(Checkpoint c, DecodeCheckpoint(bytes, path));
    const auto ranks_of = [](const std::string& sig) {
      const size_t at = sig.find(" ranks=");
      return at == std::string::npos ? std::string("1") : sig.substr(at + 7, sig.find(' ', at + 7) - at - 7);
    };
    if (ranks_of(c.signature) != ranks_of(signature))
      return Status::InvalidArgument(path + ": written by a run of " + ranks_of(c.signature) + " ranks, this run has " +
                                     ranks_of(signature) + ": resume with mpirun -n " + ranks_of(c.signature) +
                                     " (the batches of a step depend on the rank count)");
    if (c.signature != signature)
      return Status::InvalidArgument(path + ": written for different options or shards:\n  checkpoint: " + c.signature +
                                     "\n  this run:   " + signature);
    if (c.params.size() != model.params().size() || c.buffers.size() != model.buffers().size() ||
        !adam.Restore(c.step, c.adam_m, c.adam_v))
      return Status::InvalidArgument(options.checkpoint_dir +
                                     ": checkpoint parameter or buffer count does not match the model");
    if (c.next_batch > batches_per_epoch || c.epoch == 0 ||
        (c.next_batch % group != 0 && c.next_batch != batches_per_epoch))
      return Status::Corruption(options.checkpoint_dir + ": checkpoint position out of range");
    // Epoch c.epoch is partly trained when next_batch > 0; otherwise epoch c.epoch - 1 is complete.
    const uint32_t trained_through = c.next_batch > 0 ? c.epoch : c.epoch - 1;
    if (trained_through > options.epochs)
      return Status::InvalidArgument(
          path + ": the checkpoint has trained into epoch " + std::to_string(trained_through) + ", beyond --epochs " +
          std::to_string(options.epochs) + " (resume with --epochs " + std::to_string(trained_through) + " or more)");
    std::copy(c.params.begin(), c.params.end(), model.params().begin());
    std::copy(c.buffers.begin(), c.buffers.end(), model.buffers().begin());
    step = c.step;
    first_epoch = c.epoch;
    first_batch = c.next_batch;
    loss_sum = c.loss_sum;
    loss_count = c.loss_count;
    report.resumed = true;
    report.resumed_epoch = c.epoch;
    report.resumed_batch = c.next_batch;
    scheduler.Restore(c.plateau);
    evals_without_progress = c.evals_without_progress;
    lowest_valid_loss = c.lowest_valid_loss;
    if (c.best_epoch > 0) {
      report.best_epoch = c.best_epoch;
      report.best_acc.train = c.best_metrics[0];
      report.best_acc.valid = c.best_metrics[1];
      report.best_acc.test = c.best_metrics[2];
      report.best_acc.train_loss = c.best_metrics[3];
      report.best_acc.valid_loss = c.best_metrics[4];
      report.best_acc.test_loss = c.best_metrics[5];
      best_valid = c.best_metrics[1];
      best_valid_loss = c.best_metrics[4];
    }
    best_params = std::move(c.best_params);
    best_buffers = std::move(c.best_buffers);
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
    c.buffers.assign(model.buffers().begin(), model.buffers().end());
    c.plateau = scheduler.state();
    c.best_epoch = report.best_epoch;
    c.evals_without_progress = evals_without_progress;
    c.lowest_valid_loss = lowest_valid_loss;
    const Accuracy& b = report.best_acc;
    c.best_metrics = {b.train, b.valid, b.test, b.train_loss, b.valid_loss, b.test_loss};
    c.best_params = best_params;
    c.best_buffers = best_buffers;
    return SaveCheckpoint(options.checkpoint_dir, c);
  };
  if (checkpointing && leader) {
    std::error_code ec;
    std::filesystem::create_directories(options.checkpoint_dir, ec);
    if (ec) return Status::IoError(options.checkpoint_dir + ": cannot create checkpoint directory: " + ec.message());
  }
  if (report.plan && callbacks.on_plan) callbacks.on_plan(*report.plan);

  // Evaluates the model as it is; the final evaluation also gives the predictions.
  // With several ranks every rank evaluates its share of the clusters (EvalOptions::distributed;
  // the parameters are the same on every rank) and rank 0 sends the figures to the others, so
  // model selection and early stopping decide alike everywhere.
  eval.distributed = true;
  auto evaluate = [&](bool final, Accuracy* acc, EvalStats* stats) -> Status {
    // The batch buffers are handed back to the system before evaluating (glibc keeps freed memory
    // otherwise), unless the evaluations keep their own memory too (eval.reuse, memory to spare):
    // then the next epoch does not fault them in again (on 200k, with the evaluations' memory
    // kept, handing them back made the epoch after each evaluation 0.08 s slower, 0.20 s against
    // 0.12 s).
    if (eval.reuse == nullptr || final) {
      stream.ReleaseBuffers();
      malloc_trim(0);
    }
    if (options.mem_budget > 0) stream.DropCache();  // evaluation plans with the whole budget
    CGCN_ASSIGN_OR_RETURN(
        *acc, EvaluateFullGraph(shards, model, norm, final && options.predict && leader ? &report.predictions : nullptr,
                                leader ? callbacks.progress : ProgressFn{}, eval, stats));
    if (comm.distributed()) {
      static_assert(std::is_trivially_copyable_v<Accuracy>);
      std::vector<std::byte> bytes(sizeof(Accuracy));
      std::memcpy(bytes.data(), acc, sizeof(Accuracy));
      comm.Broadcast(&bytes);
      std::memcpy(acc, bytes.data(), sizeof(Accuracy));
    }
    return Status::Ok();
  };
  // The group's gradient sum (with G > 1; with G = 1 the model's own gradients are the step's).
  std::vector<float> group_grads(group > 1 ? model.params().size() : 0, 0.0f);
  // The group's sums: batch losses, batches with training nodes, loss x nodes, nodes.
  double group_sums[4] = {0, 0, 0, 0};
  uint64_t next_group = 0;  // of the epoch, the first not yet stepped
  // Ends group k: sums the gradients and losses over the ranks (MPI_Allreduce, the whole
  // gradient in buckets of at most 4 Mi floats) and takes the optimizer step on their mean.
  auto finish_group = [&](uint32_t epoch, uint64_t k) -> Status {
    std::span<float> grads = group > 1 ? std::span<float>(group_grads) : model.grads();
    constexpr size_t kBucket = size_t{4} << 20;
    if (comm.distributed()) {
      for (size_t off = 0; off < grads.size(); off += kBucket)
        comm.AllreduceSum(grads.subspan(off, std::min(kBucket, grads.size() - off)));
      comm.AllreduceSum(std::span<double>(group_sums, 4));
    }
    const double batches = group_sums[1];
    if (batches > 0) {
      if (batches != 1) {
        const auto inv = static_cast<float>(1.0 / batches);
        for (float& g : grads) g *= inv;
      }
      if (options.grad_clip > 0) ClipGradientNorm(grads, options.grad_clip);
      adam.Step(model.params(), grads);
      loss_sum += group_sums[2];
      loss_count += static_cast<uint64_t>(group_sums[3]);
      ++step;
      const uint64_t last_batch = std::min((k + 1) * group, batches_per_epoch) - 1;
      if (callbacks.on_step) callbacks.on_step(step, epoch, last_batch, group_sums[0] / batches);
      if (options.checkpoint_every > 0 && step % options.checkpoint_every == 0 && leader)
        CGCN_RETURN_IF_ERROR(checkpoint(epoch, last_batch + 1));
    }
    std::fill(group_grads.begin(), group_grads.end(), 0.0f);
    std::fill(group_sums, group_sums + 4, 0.0);
    next_group = k + 1;
    return Status::Ok();
  };
  auto finish_groups_through = [&](uint32_t epoch, uint64_t k) -> Status {
    while (next_group <= k && next_group < groups_per_epoch) CGCN_RETURN_IF_ERROR(finish_group(epoch, next_group));
    return Status::Ok();
  };
  // Whether an evaluation beats the best so far: higher validation accuracy, or the same with a
  // lower validation loss (NaN, from an empty validation split, never does).
  auto improves = [&](const Accuracy& a) {
    return a.valid > best_valid || (a.valid == best_valid && a.valid_loss < best_valid_loss);
  };
  uint32_t last_evaluated = 0;
  for (uint32_t epoch = first_epoch; epoch <= options.epochs; ++epoch) {
    const float epoch_lr = scheduler.ForEpoch(epoch);
    adam.set_lr(epoch_lr);
    next_group = (epoch == first_epoch ? first_batch : 0) / group;
    auto consume = [&](const Batch& b) -> Status {
      const uint64_t k = b.index / group;
      if (k > 0) CGCN_RETURN_IF_ERROR(finish_groups_through(epoch, k - 1));  // groups this rank had no part in
      if (b.num_train > 0) {
        const SparseRows adj = b.Adjacency();
        const ConstMatrixMap x = b.Features();
        // Dropout masks are a function of the seed and the batch's place among all batches
        // stepped (so every rank, and one process accumulating, draw the same ones).
        const uint64_t draw = step * group + b.index % group;
        const ConstMatrixMap logits = model.Forward(adj, x, true, SplitMix64(options.seed ^ SplitMix64(draw)),
                                                    b.has_propagated ? b.propagated.data() : nullptr);
        MatrixMap grad = grad_ws.Get(b.num_nodes, model.config().out_dim);
        uint32_t count = 0;
        const float loss = TaskLoss(b.label_tasks, logits, b.labels, b.label_bits, b.train_mask, grad, &count);
        if (!std::isfinite(loss))
          return Status::Internal("training diverged: loss is " + std::to_string(loss) + " at epoch " +
                                  std::to_string(epoch) + " batch " + std::to_string(b.index) + " (try a lower --lr)");
        model.ZeroGrad();
        model.Backward(adj, x, ConstMatrixMap(grad.data(), grad.rows(), grad.cols()));
        if (group > 1) {
          const std::span<const float> g = model.grads();
          for (size_t i = 0; i < g.size(); ++i) group_grads[i] += g[i];
        }
        group_sums[0] += loss;
        group_sums[1] += 1;
        group_sums[2] += static_cast<double>(loss) * count;
        group_sums[3] += count;
      }
      // This rank's last batch of the group: step (with the other ranks).
      const uint64_t last_mine =
          std::min(k * group + uint64_t{comm.rank() + 1} * options.accumulate, batches_per_epoch) - 1;
      if (b.index == last_mine) CGCN_RETURN_IF_ERROR(finish_group(epoch, k));
      if (callbacks.progress)
        callbacks.progress("train epoch " + std::to_string(epoch), b.index + 1, batches_per_epoch);
      return Status::Ok();
    };
    EpochRecord rec;
    rec.epoch = epoch;
    rec.lr = epoch_lr;
    CGCN_RETURN_IF_ERROR(stream.RunEpoch(epoch, consume, &rec.stats, epoch == first_epoch ? first_batch : 0));
    // The groups in which this rank had no batch (the epoch's last, when it is short).
    CGCN_RETURN_IF_ERROR(finish_groups_through(epoch, groups_per_epoch - 1));
    if (comm.distributed()) {
      const Comm::Traffic t = comm.TakeTraffic();
      rec.allreduce_calls = t.calls;
      rec.allreduce_bytes = t.bytes;
      rec.allreduce_s = t.seconds;
      // Every rank must hold the same parameters: the step is the same arithmetic on the same sums.
      rec.param_checksum = Checksum64(model.params().data(), model.params().size_bytes());
      const std::vector<std::string> all = comm.Allgather(Hex64(rec.param_checksum));
      for (uint32_t r = 1; r < all.size(); ++r)
        if (all[r] != all[0])
          return Status::Internal("after epoch " + std::to_string(epoch) + " the parameters of rank " +
                                  std::to_string(r) + " (checksum " + all[r] + ") differ from rank 0's (" + all[0] +
                                  ")");
    }
    rec.epoch_s = rec.stats.wall_s;
    rec.loss = loss_count ? loss_sum / static_cast<double>(loss_count) : 0.0;
    loss_sum = 0;
    loss_count = 0;
    const bool last = epoch == options.epochs;
    rec.train_peak_rss_mb = PeakRssMb();
    if ((options.eval_every > 0 && epoch % options.eval_every == 0) || last) {
      const auto t0 = std::chrono::steady_clock::now();
      CGCN_RETURN_IF_ERROR(evaluate(last, &rec.acc, &rec.eval_stats));
      rec.eval_s = Since(t0);
      rec.evaluated = true;
      report.eval_s += rec.eval_s;
      last_evaluated = epoch;
      const bool better = improves(rec.acc);
      const bool lower_loss = rec.acc.valid_loss < lowest_valid_loss;  // false for NaN (no validation nodes)
      if (lower_loss) lowest_valid_loss = rec.acc.valid_loss;
      if (better) {
        best_valid = rec.acc.valid;
        best_valid_loss = rec.acc.valid_loss;
        report.best_epoch = epoch;
        report.best_acc = rec.acc;
        if (selecting) {
          best_params.assign(model.params().begin(), model.params().end());
          best_buffers.assign(model.buffers().begin(), model.buffers().end());
        }
      }
      evals_without_progress = better || lower_loss ? 0 : evals_without_progress + 1;
      scheduler.OnEvaluation(rec.acc.valid_loss);
      if (last) {
        report.final_epoch = epoch;
        report.final_acc = rec.acc;
        report.final_eval = rec.eval_stats;
      }
    }
    report.trained_through = epoch;
    const bool stop = patience > 0 && rec.evaluated && !last && evals_without_progress >= patience;
    if (checkpointing && leader) CGCN_RETURN_IF_ERROR(checkpoint(epoch + 1, 0));
    report.mean_epoch_s += rec.epoch_s;
    report.epochs.push_back(rec);
    if (callbacks.on_epoch) callbacks.on_epoch(rec);
    if (stop) {
      report.stopped_early = true;
      break;
    }
  }
  // Model selection: the best evaluation's parameters replace the last ones, and are evaluated
  // again for the predictions (the same figures: evaluation is deterministic).
  if (!best_params.empty() && (report.best_epoch != last_evaluated || report.epochs.empty())) {
    std::copy(best_params.begin(), best_params.end(), model.params().begin());
    std::copy(best_buffers.begin(), best_buffers.end(), model.buffers().begin());
    const auto t0 = std::chrono::steady_clock::now();
    CGCN_RETURN_IF_ERROR(evaluate(true, &report.final_acc, &report.final_eval));
    report.eval_s += Since(t0);
    report.final_epoch = report.best_epoch;
    report.selected = true;
    if (report.epochs.empty())
      report.trained_through = first_epoch - 1;
    else
      report.mean_epoch_s /= static_cast<double>(report.epochs.size());
    return report;
  }
  if (report.stopped_early) {  // stopped with no best to restore (an empty validation split)
    const auto t0 = std::chrono::steady_clock::now();
    CGCN_RETURN_IF_ERROR(evaluate(true, &report.final_acc, &report.final_eval));
    report.eval_s += Since(t0);
    report.final_epoch = report.trained_through;
  }
  if (report.epochs.empty()) {
    // Resumed after the last epoch: nothing to train, so the figures are the restored model's.
    report.trained_through = first_epoch - 1;
    const auto t0 = std::chrono::steady_clock::now();
    CGCN_RETURN_IF_ERROR(evaluate(true, &report.final_acc, &report.final_eval));
    report.eval_s = Since(t0);
    report.final_epoch = first_epoch - 1;
    if (improves(report.final_acc)) {  // as above: not with an empty validation split
      report.best_epoch = report.final_epoch;
      report.best_acc = report.final_acc;
    }
  } else {
    report.mean_epoch_s /= static_cast<double>(report.epochs.size());
  }
  return report;
}

}  // namespace cgcn
