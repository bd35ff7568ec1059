// Memory plans for training within a budget (cgcn/memory_plan.h).
#include "cgcn/memory_plan.h"

#include <algorithm>
#include <functional>

#include "cgcn/batch_stream.h"
#include "cgcn/byte_size.h"
#include "cgcn/gcn.h"
#include "cgcn/shard_format.h"
#include "cgcn/train.h"

namespace cgcn {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
// The process itself: code, allocator arenas, TBB and thread stacks (measured: about 20 MiB).
constexpr uint64_t kRuntimeBytes = 32 * kMiB;

}  // namespace

std::string MemoryPlan::Describe() const {
  std::string s = "memory plan: budget " + FormatBytes(budget) + "; training " + FormatBytes(train_bytes) +
                  " = runtime " + FormatBytes(runtime_bytes) + " + decoding " + FormatBytes(decode_bytes) +
                  " + training step " + FormatBytes(compute_bytes) + " + " + std::to_string(prefetch) + " x " +
                  FormatBytes(batch_bytes) + " per batch in flight";
  if (prefetch < requested_prefetch)
    s += " (prefetch lowered from " + std::to_string(requested_prefetch) + " to " + std::to_string(prefetch) +
         " to fit)";
  s += "; decoded-cluster cache " + FormatBytes(cache_bytes) + " beside training, emptied before evaluation";
  s += "; evaluation " + FormatBytes(eval.peak_bytes) + ", activations (" + FormatBytes(eval.activation_bytes) + ") ";
  s += eval.spill ? "spill to " + (eval_options.tmp_dir.empty() ? std::string("$TMPDIR") : eval_options.tmp_dir) +
                        " in chunks of " + FormatBytes(eval.chunk_bytes)
                  : std::string("in memory");
  s += ", " + std::to_string(eval.blocks.size() - 1) + " blocks";
  if (eval.kept_rows_bytes > 0) s += " (their rows, " + FormatBytes(eval.kept_rows_bytes) + ", kept for every layer)";
  s += "; model + Adam " + FormatBytes(model_bytes) + " outside the budget";
  return s;
}

uint64_t ProcessRuntimeBytes() { return kRuntimeBytes; }

Result<MemoryPlan> PlanMemory(const Manifest& m, const TrainOptions& o, uint32_t threads) {
  MemoryPlan p;
  const uint64_t budget = o.mem_budget;
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
  p.batch_bytes = BatchStream::InFlightBytes(decoded, nodes, entries, m.feat_dim, m.label_tasks);
  // Per decoding thread: the mapped shard file and the decoder.
  p.decode_bytes = threads * (max_file + ShardDecoder::kPlannedBytes);
  const GcnConfig cfg = ModelConfig(m, o);
  // The model's work buffers and the loss's gradient (the trainer's [nodes x classes] buffer).
  p.compute_bytes = Gcn::WorkspaceBytes(cfg, nodes, entries) + nodes * cfg.out_dim * sizeof(float);
  p.model_bytes = Gcn::PlannedBytes(cfg) + Adam::PlannedBytes(Gcn::ParamCount(cfg));
  p.runtime_bytes = kRuntimeBytes;
  const uint64_t fixed = p.runtime_bytes + p.decode_bytes + p.compute_bytes;
  if (budget < fixed + p.batch_bytes)
    return Status::InvalidArgument(
        "--mem-budget " + FormatBytes(budget) + " is too small: one batch of the " + std::to_string(q) +
        " largest clusters needs " + FormatBytes(p.batch_bytes) + " (" + std::to_string(nodes) + " nodes, " +
        std::to_string(entries) + " edge entries, " + FormatBytes(decoded) + " decoded), its training step " +
        FormatBytes(p.compute_bytes) + ", decoding on " + std::to_string(threads) + " threads " +
        FormatBytes(p.decode_bytes) + " and the process " + FormatBytes(p.runtime_bytes) + ": at least " +
        FormatBytes(fixed + p.batch_bytes) + " (lower -q or --hidden, or use fewer --threads)");
  p.prefetch = static_cast<uint32_t>(std::min<uint64_t>(p.requested_prefetch, (budget - fixed) / p.batch_bytes));
  p.train_bytes = fixed + p.prefetch * p.batch_bytes;
  const uint64_t room = budget - p.train_bytes;
  if (o.cache_bytes == TrainOptions::kAutoCache)
    p.cache_bytes = room;
  else if (o.cache_bytes > room)
    return Status::InvalidArgument("--cache " + FormatBytes(o.cache_bytes) + " does not fit --mem-budget " +
                                   FormatBytes(budget) + ": training takes " + FormatBytes(p.train_bytes) +
                                   ", which leaves " + FormatBytes(room) + " (or use --cache auto)");
  else
    p.cache_bytes = o.cache_bytes;
  // Evaluation runs between epochs, after the batch buffers are freed; the training step's
  // buffers stay allocated.
  p.eval_options.memory_bytes = budget - p.runtime_bytes - p.compute_bytes;
  p.eval_options.tmp_dir = o.tmp_dir;
  Result<EvalPlan> e = PlanEvaluation(m, cfg, p.eval_options, o.predict, threads);
  if (!e.ok())
    return Status::InvalidArgument("--mem-budget " + FormatBytes(budget) + " is too small: " + e.status().message());
  p.eval = std::move(e).value();
  return p;
}

}  // namespace cgcn
