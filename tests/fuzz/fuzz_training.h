// Shared by fuzz_checkpoint and fuzz_seed_corpus: the training run whose checkpoints seed
// fuzz_checkpoint, and which fuzz_checkpoint resumes from every accepted checkpoint written for it.
// Both build the same shard directory (testutil's tiny dataset in 2 clusters, through the
// library's own path) and train with the same options, so the seeds' signatures match the
// fuzzer's run (the signature holds the options and the shards' identity, never a path).
#pragma once

#include <string>

#include "cgcn/graph.h"
#include "cgcn/manifest.h"
#include "cgcn/partition.h"
#include "cgcn/raw_reader.h"
#include "cgcn/shard_writer.h"
#include "cgcn/train.h"
#include "testutil/testutil.h"

namespace cgcn::fuzz {

// Writes the raw tiny dataset under RAW_DIR and its shard directory (2 clusters) to OUT_DIR.
inline Status BuildTinyShards(const std::string& raw_dir, const std::string& out_dir) {
  testutil::WriteRawDataset(raw_dir, testutil::TinyRawDataset(), testutil::Compression::kPlain);
  CGCN_ASSIGN_OR_RETURN(RawGraph raw, ReadRawGraph(RawReadOptions{raw_dir, ""}));
  CGCN_ASSIGN_OR_RETURN(CsrGraph graph, BuildSymmetricCsr(raw.num_nodes, raw.edge_src, raw.edge_dst));
  CGCN_ASSIGN_OR_RETURN(Partition partition, PartitionGraph(graph.view(), PartitionOptions{2, 0}));
  ShardWriteOptions wo;
  wo.out_dir = out_dir;
  return WriteShardDirectory(raw, graph.view(), partition, wo).status();
}

// Two epochs of one cluster per batch (2 batches an epoch), a checkpoint after every step.
inline TrainOptions CheckpointRunOptions(const std::string& checkpoint_dir) {
  TrainOptions o;
  o.clusters_per_batch = 1;
  o.epochs = 2;
  o.layers = 2;
  o.hidden = 4;
  o.seed = 3;
  o.prefetch = 1;
  o.checkpoint_dir = checkpoint_dir;
  o.checkpoint_every = 1;
  return o;
}

// The model those options train on the shard directory `m` describes.
inline Gcn CheckpointRunModel(const Manifest& m, const TrainOptions& o) { return Gcn(ModelConfig(m, o), o.seed); }

}  // namespace cgcn::fuzz
