// Bounded memory for training (TrainOptions::mem_budget, cgcn-train --mem-budget): what
// training and evaluation need within a budget. Train plans and applies it; PlanMemory is
// public so that the plan can be examined without training.
#pragma once

#include <cstdint>
#include <string>

#include "cgcn/evaluate.h"
#include "cgcn/manifest.h"
#include "cgcn/status.h"

namespace cgcn {

struct TrainOptions;  // cgcn/train.h

// Every figure in bytes. The model's parameters, gradients and Adam state are outside the
// budget (model_bytes reports them). Each figure is the sum of the sizes the structures state
// themselves (Batch::PlannedBytes, Gcn::WorkspaceBytes, ...).
struct MemoryPlan {
  uint64_t budget = 0;
  uint32_t prefetch = 0;  // batches in flight: the requested number, or fewer to fit
  uint32_t requested_prefetch = 0;
  uint64_t batch_bytes = 0;      // one batch in flight: decoded clusters + assembled batch (q largest shards)
  uint64_t decode_bytes = 0;     // per decoding thread: mapped shard and zstd state, times threads
  uint64_t compute_bytes = 0;    // training step's per-layer buffers for the largest batch
  uint64_t runtime_bytes = 0;    // the process itself (code, allocator, thread stacks)
  uint64_t train_bytes = 0;      // planned training peak: runtime + decode + compute + prefetch x batch
  uint64_t model_bytes = 0;      // parameters, gradients, Adam m and v (not in the budget)
  uint64_t cache_bytes = 0;      // decoded clusters kept across epochs (TrainOptions::cache_bytes), beside training
  EvalPlan eval;                 // evaluation within budget - runtime - compute
  EvalOptions eval_options;      // what evaluation gets
  std::string Describe() const;  // one line
};

// What a budget sets aside for the process itself (code, allocator, thread stacks).
uint64_t ProcessRuntimeBytes();

// Plans options.mem_budget (> 0) for `threads` decoding threads, with evaluation spilling to
// options.tmp_dir and, with options.predict, holding every node's prediction. Fails with
// kInvalidArgument and the numbers when not even one batch, or one cluster's evaluation, fits.
Result<MemoryPlan> PlanMemory(const Manifest& m, const TrainOptions& options, uint32_t threads);

}  // namespace cgcn
