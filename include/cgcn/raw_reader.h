// Stage 1: the OGB node-property-prediction raw layout -> binary scratch files (or an in-memory graph).
//
// Two layouts of DIR/raw; a directory holding files of both is refused (the error names both).
//
// The CSV layout:
//   DIR/raw/num-node-list.csv[.gz]   one line: N
//   DIR/raw/num-edge-list.csv[.gz]   one line: number of lines in edge.csv (optional)
//   DIR/raw/edge.csv[.gz]            "src,dst" per line, 0-based ids < N
//   DIR/raw/node-feat.csv[.gz]       N lines of F comma-separated finite floats; optional: without
//                                    it the graph is featureless (feat_dim 0) and cgcn-preprocess
//                                    computes features from the graph (cgcn/fastrp.h)
//   DIR/raw/node-label.csv[.gz]      N lines, either
//                                    - multi-class: one integer class id in [0, 2^16) each, or
//                                    - multi-label (ogbn-proteins' layout): L >= 2 comma-separated
//                                      values, each 0 or 1, one binary task per column;
//                                    the first labeled line decides which (1 field or L fields),
//                                    and every labeled line must then have as many. An unlabeled
//                                    node is an empty line, "nan" (any case) or "-1", or in a
//                                    multi-label file also a line of L such fields (",,," or
//                                    "nan,nan,..."); a row mixing 0/1 values with them is an error.
// Every CSV file may be gzipped (read through Boost.Iostreams' gzip filter) or plain; every error
// names the file, the 1-based line and what was expected.
//
// The .npz layout (what ogbn-papers100M ships): NumPy .npz files, zip archives of .npy members,
// each stored or deflated (ZIP64 accepted), read straight from the zip without unpacking:
//   DIR/raw/data.npz         edge_index.npy      '<i8' or '<i4', shape (2, E); C order (every source,
//                                                then every destination) or Fortran order (pairs)
//                            node_feat.npy       '<f4', '<f2' or '<f8' (converted to f32; values
//                                                must be finite and fit a float), shape (N, F), C order
//                            num_nodes_list.npy  '<i8' or '<i4', shape (1,): N
//                            num_edges_list.npy  '<i8' or '<i4', shape (1,): E
//                            (other members are ignored, but fingerprinted with the file)
//   DIR/raw/node-label.npz   node_label.npy      '<f4', '<f8', '<f2', '<i8' or '<i4', shape (N,) or
//                                                (N, 1): an integral class id in [0, 2^16), or NaN
//                                                or -1 for an unlabeled node; or (N, L), L >= 2, C
//                                                order: a multi-label task, each value 0 or 1, or
//                                                every task of an unlabeled node NaN or -1
// Every .npy header is checked (magic, version 1.0/2.0/3.0, the dict, dtype, shape against the
// other members, fortran_order, data size against shape), and every member's CRC-32 as it is
// streamed; errors name the .npz file, the member and the byte offset in it ("DIR/raw/data.npz
// member edge_index.npy byte 22: expected dtype '<i8' or '<i4', found '>f4'"), or for the zip
// structure the byte offset in the file. No member is ever held in memory: each file is read once,
// front to back, in blocks of text_block_bytes.
//
// Both layouts share the split files:
//   DIR/split/NAME/{train,valid,test}.csv[.gz]   node ids, one per line (valid may be empty: no
//                                                validation nodes)
//
// Unlabeled nodes are kept: their label is kNoLabel (cgcn/split.h) in labels.u32 and in the
// shards, and they count in no loss and no metric. In a multi-label file a labeled node's entry
// in labels.u32 is 0 and its tasks are bits of label-bits.u32 (below). A split file naming an unlabeled node is an
// error ("PATH:LINE: node id 7 has no label in ... (expected only labeled nodes in a split)").
// num_classes is the largest class id + 1 (multi-class) or L (multi-label); at least one node
// must be labeled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cgcn/feature_source.h"
#include "cgcn/input_digest.h"
#include "cgcn/progress.h"
#include "cgcn/split.h"  // kNoLabel, LabelWords
#include "cgcn/status.h"

namespace cgcn {

struct RawGraph {
  uint32_t num_nodes = 0;
  uint32_t feat_dim = 0;             // 0: no node-feat file (featureless)
  uint32_t num_classes = 0;          // max label + 1, or L tasks
  uint32_t label_tasks = 0;          // 0: multi-class; L >= 2: multi-label with L tasks (= num_classes)
  uint64_t num_unlabeled = 0;        // nodes whose label is kNoLabel
  std::vector<uint32_t> edge_src;    // [E] as read, E = lines in edge.csv
  std::vector<uint32_t> edge_dst;    // [E]
  std::vector<float> features;       // [num_nodes x feat_dim], row-major
  std::vector<uint32_t> labels;      // [num_nodes], a class id (multi-label: 0) or kNoLabel
  std::vector<uint32_t> label_bits;  // [num_nodes x LabelWords(label_tasks)], multi-label only
  std::vector<uint8_t> split;        // [num_nodes], kSplit* bits (cgcn/split.h), at most one set
  std::string split_name;
  uint64_t num_train = 0, num_valid = 0, num_test = 0;
  // XXH3-64 over (relative path, size, bytes) of every input file, in a fixed order.
  uint64_t fingerprint = 0;
  uint64_t input_bytes = 0;  // total size of the input files as stored
};

struct RawReadOptions {
  std::string dir;
  // Subdirectory of DIR/split to use; empty = the only one present (error if several).
  std::string split_name;
  // The CSV text is read in blocks of text_block_bytes (a longer line grows the buffer), and the
  // scratch files of ReadRawInput are written through buffers of scratch_buffer_bytes. The
  // defaults suit large inputs; tests and fuzzers use small ones, so that lines and values cross
  // block boundaries.
  size_t text_block_bytes = size_t{1} << 20;
  size_t scratch_buffer_bytes = size_t{4} << 20;
};

// Throughput of one parse phase (one input file, or the three split files together).
struct RawPhaseStats {
  std::string name;           // "edges", "features", "labels", "split"
  uint64_t text_bytes = 0;    // bytes parsed: CSV text after gunzip, or .npy members after inflate
  uint64_t stored_bytes = 0;  // bytes of the file(s) as stored
  double seconds = 0;
};

// The streamed form of the input, the way cgcn-preprocess reads it: everything except the
// split is written to binary files in a scratch directory while it is parsed, so memory does
// not grow with the features. The files are not part of any format and live only as long as
// the scratch directory (cgcn-preprocess puts it inside "<out>.tmp-<pid>/").
//   edges.u32     u32 pairs (src, dst) in edge.csv line order, host byte order   [num_edge_lines x 2]
//   features.f32  f32 rows in node order, host byte order                        [num_nodes x feat_dim]
//   labels.u32    u32 class ids (kNoLabel: unlabeled) in node order              [num_nodes]
//   label-bits.u32  multi-label only: u32 words (LabelWords) in node order  [num_nodes x LabelWords(L)]
// features.f32 is absent when the input has no node-feat file (feat_dim 0).
// (The .npz layout's C-order edge_index also uses edges.src.u32, the E sources, while it pairs
// them with the destinations; it is removed as soon as edges.u32 is complete.)
struct RawInput {
  uint32_t num_nodes = 0;
  uint32_t feat_dim = 0;        // 0: featureless (no features.f32 until one is computed)
  uint32_t num_classes = 0;     // max label + 1, or L tasks
  uint32_t label_tasks = 0;     // 0: multi-class; L >= 2: multi-label (label_bits_path)
  uint64_t num_unlabeled = 0;   // nodes whose label is kNoLabel
  uint64_t num_edge_lines = 0;  // lines in edge.csv, or E of edge_index
  std::string edges_path, features_path, labels_path, label_bits_path;
  // kFile as read; cgcn-preprocess sets kFastRp when it computes features.f32 for a featureless
  // input (cgcn/fastrp.h). Goes into MANIFEST.
  FeatureSource feature_source;
  std::vector<uint8_t> split;  // [num_nodes], kSplit* bits (1 byte per node: kept in memory)
  std::string split_name;
  uint64_t num_train = 0, num_valid = 0, num_test = 0;
  uint64_t fingerprint = 0;  // as in RawGraph
  uint64_t input_bytes = 0;
  std::vector<RawPhaseStats> phases;  // in reading order

  // Calls `fn` with consecutive pieces of the edge list (edge.csv order), at most
  // `chunk_edges` edges at a time, reading edges.u32; the same pieces on every call.
  Status ForEachEdgeChunk(const std::function<void(std::span<const uint32_t> src, std::span<const uint32_t> dst)>& fn,
                          uint64_t chunk_edges = uint64_t{1} << 20) const;
};

// Random access to a RawInput's features.f32 and labels.u32 by node id, with pread: the data
// stays in the page cache, not in this process. Thread-safe; move-only.
class RawNodeRows {
 public:
  static Result<RawNodeRows> Open(const RawInput& input);
  RawNodeRows(RawNodeRows&&) noexcept;
  RawNodeRows& operator=(RawNodeRows&&) = delete;
  RawNodeRows(const RawNodeRows&) = delete;
  ~RawNodeRows();
  // Copies the rows of `ids` (ascending; each run of consecutive ids is one read) to
  // features[ids.size() x feat_dim], labels[ids.size()] and, for a multi-label input,
  // label_bits[ids.size() x LabelWords(label_tasks)] (ignored otherwise; may then be null).
  Status Gather(std::span<const uint32_t> ids, float* features, uint32_t* labels, uint32_t* label_bits = nullptr) const;

 private:
  RawNodeRows();
  struct Files;  // the two open files
  std::unique_ptr<Files> files_;
  std::string features_path_, labels_path_, label_bits_path_;
  uint32_t num_nodes_ = 0, feat_dim_ = 0, label_words_ = 0;
};

// Reads and validates everything, writing edges.u32, features.f32 and labels.u32 into
// `scratch_dir` (which must exist). Node ids must be < 2^31 - 1 (METIS's idx_t). Memory used:
// the split (1 byte per node), a bit per node once one node is unlabeled, plus fixed-size read
// and write buffers (a few MiB).
// On failure the files written so far are removed.
Result<RawInput> ReadRawInput(const RawReadOptions& options, const std::string& scratch_dir,
                              const ProgressFn& progress = {});

// ReadRawInput into a private temporary directory, then loaded into memory (for tests and
// small graphs; the same parser and the same checks).
Result<RawGraph> ReadRawGraph(const RawReadOptions& options, const ProgressFn& progress = {});

// Digests of the files ReadRawGraph reads, in the same order (without parsing them).
Result<std::vector<InputFileDigest>> DigestRawInput(const RawReadOptions& options);

}  // namespace cgcn
