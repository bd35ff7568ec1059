// The building blocks of PartitionExternal (external_partition.h), written once for the two kinds
// of graph they run on: the fine CSR (CsrView, possibly a mapped file larger than RAM: rows are
// only read in node order, block by block) and the weighted coarse graphs held in memory in
// METIS's arrays.
//
// Size-constrained label propagation (Meyerhenke, Sanders & Schulz, "Partitioning complex
// networks via size-constrained clustering"): every node looks at the labels of its neighbours and
// moves to the label it is most strongly connected to, provided the label's weight stays within a
// bound. Coarsening uses it with labels = clusters (bound: a fraction of a final part); refinement
// with labels = parts (bound: the part limit), where a move must lower the cut.
//
// Determinism whatever the thread count: a pass walks the nodes in id order in sub-rounds of
// kSubRound nodes. Inside a sub-round every node proposes a move in parallel against the state at
// the sub-round's start (nothing is written during that phase); the proposals are then applied
// sequentially in node order, each re-checked against the current state (the bound, and that the
// move still strictly gains). Ties between equally connected labels go to the larger seeded hash.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_sort.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "cgcn/byte_size.h"
#include "cgcn/csr.h"
#include "cgcn/progress.h"
#include "cgcn/status.h"
#include "util/random.h"

namespace cgcn::lp {

inline constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
inline constexpr uint32_t kSubRound = 4096;  // nodes per sub-round (fixed: determinism)

// The fine graph: unit node and edge weights.
struct FineGraph {
  const CsrView* g;
  uint32_t num_nodes() const { return g->num_nodes; }
  uint64_t degree(uint32_t v) const { return g->degree(v); }
  uint32_t node_weight(uint32_t) const { return 1; }
  template <typename F>
  void ForEachNeighbor(uint32_t v, F&& f) const {
    for (uint32_t u : g->row(v)) f(u, uint32_t{1});
  }
};

// A weighted graph in METIS's arrays (idx_t = int32): what coarsening produces and METIS takes.
struct WeightedGraph {
  std::vector<int32_t> xadj;    // [n + 1]
  std::vector<int32_t> adjncy;  // [xadj[n]], rows sorted ascending, no self loops
  std::vector<int32_t> adjwgt;  // [xadj[n]] fine edges between the two clusters
  std::vector<int32_t> vwgt;    // [n] fine nodes in the cluster
  uint32_t num_nodes() const { return static_cast<uint32_t>(vwgt.size()); }
  uint64_t num_entries() const { return adjncy.size(); }
  uint64_t bytes() const { return 4 * (uint64_t{xadj.size()} + adjncy.size() + adjwgt.size() + vwgt.size()); }
  // What the arrays take for n nodes and m entries.
  static uint64_t BytesFor(uint64_t n, uint64_t m) { return 4 * ((n + 1) + 2 * m + n); }
};

struct CoarseGraph {
  const WeightedGraph* g;
  uint32_t num_nodes() const { return g->num_nodes(); }
  uint64_t degree(uint32_t v) const { return static_cast<uint64_t>(g->xadj[v + 1] - g->xadj[v]); }
  uint32_t node_weight(uint32_t v) const { return static_cast<uint32_t>(g->vwgt[v]); }
  template <typename F>
  void ForEachNeighbor(uint32_t v, F&& f) const {
    for (int32_t e = g->xadj[v]; e < g->xadj[v + 1]; ++e)
      f(static_cast<uint32_t>(g->adjncy[e]), static_cast<uint32_t>(g->adjwgt[e]));
  }
};

// Connection weight per label for one node's row, cleared through the list of labels it used.
// Small label spaces (parts, small coarse graphs) get a dense array indexed by label; large ones
// open addressing sized to the row (a thread's table grows to the largest row it has seen).
class ConnMap {
 public:
  static constexpr uint64_t kDenseLabels = uint64_t{1} << 16;

  // Ready for a row with at most `distinct_at_most` labels, all below `label_space`.
  void Reset(uint64_t distinct_at_most, uint64_t label_space) {
    Clear();
    dense_ = label_space <= kDenseLabels;
    if (dense_) {
      if (dense_vals_.size() < label_space) dense_vals_.assign(label_space, 0);
      return;
    }
    uint64_t cap = 16;
    while (cap < 2 * distinct_at_most) cap *= 2;
    if (keys_.size() < cap) {
      keys_.assign(cap, kNone);
      vals_.assign(cap, 0);
    }
    mask_ = static_cast<uint32_t>(cap - 1);
  }
  // w > 0.
  void Add(uint32_t key, uint64_t w) {
    if (dense_) {
      if (dense_vals_[key] == 0) used_.push_back(key);
      dense_vals_[key] += w;
      return;
    }
    uint32_t s = Slot(key);
    while (keys_[s] != key) {
      if (keys_[s] == kNone) {
        keys_[s] = key;
        vals_[s] = 0;
        used_.push_back(s);
        break;
      }
      s = (s + 1) & mask_;
    }
    vals_[s] += w;
  }
  uint64_t Get(uint32_t key) const {
    if (dense_) return dense_vals_[key];
    for (uint32_t s = Slot(key);; s = (s + 1) & mask_) {
      if (keys_[s] == key) return vals_[s];
      if (keys_[s] == kNone) return 0;
    }
  }
  // f(label, weight) for every label added since Reset, in the order first added.
  template <typename F>
  void ForEach(F&& f) const {
    if (dense_) {
      for (uint32_t k : used_) f(k, dense_vals_[k]);
    } else {
      for (uint32_t s : used_) f(keys_[s], vals_[s]);
    }
  }

 private:
  void Clear() {
    if (dense_) {
      for (uint32_t k : used_) dense_vals_[k] = 0;
    } else {
      for (uint32_t s : used_) keys_[s] = kNone;
    }
    used_.clear();
  }
  uint32_t Slot(uint32_t key) const {
    return static_cast<uint32_t>((uint64_t{key} * 0x9E3779B97F4A7C15ULL) >> 40) & mask_;
  }
  bool dense_ = false;
  std::vector<uint64_t> dense_vals_;
  std::vector<uint32_t> keys_;
  std::vector<uint64_t> vals_;
  std::vector<uint32_t> used_;
  uint32_t mask_ = 0;
};

// A ConnMap and a buffer for a row's labels: they are loaded in pieces of kPiece, each in a loop
// without branches on them (the loads are scattered over the label array: this lets the misses
// overlap), then counted. The buffer stays small whatever the row's length.
struct RowScratch {
  static constexpr size_t kPiece = 1024;
  ConnMap map;
  uint32_t label[kPiece];
  uint32_t weight[kPiece];
  template <typename G>
  void AddRow(const G& g, uint32_t v, const uint32_t* labels) {
    size_t k = 0;
    g.ForEachNeighbor(v, [&](uint32_t u, uint32_t w) {
      label[k] = labels[u];
      weight[k] = w;
      if (++k == kPiece) {
        Flush(k);
        k = 0;
      }
    });
    Flush(k);
  }

 private:
  void Flush(size_t k) {
    for (size_t i = 0; i < k; ++i) map.Add(label[i], weight[i]);
  }
};

inline uint64_t TieHash(uint64_t seed, uint32_t v, uint32_t label) {
  return SplitMix64(seed ^ SplitMix64((uint64_t{v} << 32) | label));
}

struct LpParams {
  uint64_t bound = 0;  // a label's weight may not exceed it after a move
  int rounds = 1;      // passes at most
  uint64_t seed = 0;
  bool coarsen = true;       // clusters (a move must not go into an empty label) or parts
  uint64_t max_degree = 0;   // rows longer than this do not move (0 = no limit)
  uint64_t label_space = 0;  // labels are < label_space (sizes the per-row map)
  // Stop after a pass whose gain (refinement: cut decrease; coarsening: moves) is below this.
  uint64_t min_pass_gain = 1;
  std::string_view phase;
  const ProgressFn* progress = nullptr;
};

struct LpStats {
  int passes = 0;
  uint64_t moves = 0;
  uint64_t gain = 0;  // sum over applied moves of conn(target) - conn(own)
};

// Progress at most once per kProgressNodes nodes and at the end of a pass.
inline constexpr uint64_t kProgressNodes = uint64_t{1} << 20;

// One or more label-propagation passes. labels[v] < label_space, sizes[label] = sum of node
// weights carrying it (kept up to date; at most the fine node count, so 4 bytes).
template <typename G>
LpStats RunLabelPropagation(const G& g, uint32_t* labels, uint32_t* sizes, const LpParams& p) {
  const uint32_t n = g.num_nodes();
  LpStats stats;
  tbb::enumerable_thread_specific<RowScratch> scratch;
  std::vector<uint32_t> proposal(kSubRound);
  for (int round = 0; round < p.rounds; ++round) {
    const uint64_t round_seed = SplitMix64(p.seed + 0x51ed27u * static_cast<uint64_t>(round + 1));
    LpStats pass;
    uint64_t reported = 0;
    for (uint32_t s = 0; s < n; s = (n - s > kSubRound) ? s + kSubRound : n) {
      const uint32_t e = (n - s > kSubRound) ? s + kSubRound : n;
      // Propose against the state at the sub-round's start.
      tbb::parallel_for(tbb::blocked_range<uint32_t>(s, e, 256), [&](const tbb::blocked_range<uint32_t>& r) {
        RowScratch& rs = scratch.local();
        ConnMap& map = rs.map;
        for (uint32_t v = r.begin(); v != r.end(); ++v) {
          proposal[v - s] = kNone;
          const uint64_t deg = g.degree(v);
          if (deg == 0 || (p.max_degree != 0 && deg > p.max_degree)) continue;
          map.Reset(std::min<uint64_t>(deg, p.label_space), p.label_space);
          rs.AddRow(g, v, labels);
          const uint32_t own = labels[v];
          const uint64_t wv = g.node_weight(v);
          uint64_t best_conn = map.Get(own);
          uint32_t best = kNone;
          uint64_t best_hash = 0;
          map.ForEach([&](uint32_t c, uint64_t conn) {
            if (c == own || conn < best_conn || uint64_t{sizes[c]} + wv > p.bound) return;
            if (best == kNone) {
              if (conn == best_conn) return;  // staying wins a tie with its own label
            } else if (conn == best_conn) {
              const uint64_t h = TieHash(round_seed, v, c);
              if (h < best_hash || (h == best_hash && c < best)) return;
              best = c;
              best_hash = h;
              return;
            }
            best = c;
            best_conn = conn;
            best_hash = TieHash(round_seed, v, c);
          });
          proposal[v - s] = best;
        }
      });
      // Apply in node order, re-checked against the current state.
      for (uint32_t v = s; v < e; ++v) {
        const uint32_t t = proposal[v - s];
        if (t == kNone) continue;
        const uint64_t wv = g.node_weight(v);
        if (uint64_t{sizes[t]} + wv > p.bound || (p.coarsen && sizes[t] == 0)) continue;
        const uint32_t own = labels[v];
        uint64_t conn_own = 0, conn_t = 0;
        g.ForEachNeighbor(v, [&](uint32_t u, uint32_t w) {
          const uint32_t c = labels[u];
          conn_own += c == own ? w : 0;
          conn_t += c == t ? w : 0;
        });
        if (conn_t <= conn_own) continue;
        sizes[own] -= static_cast<uint32_t>(wv);
        sizes[t] += static_cast<uint32_t>(wv);
        labels[v] = t;
        ++pass.moves;
        pass.gain += conn_t - conn_own;
      }
      if (p.progress != nullptr && *p.progress && (e - reported >= kProgressNodes || e == n)) {
        (*p.progress)(p.phase, e, n);
        reported = e;
      }
    }
    ++stats.passes;
    stats.moves += pass.moves;
    stats.gain += pass.gain;
    if ((p.coarsen ? pass.moves : pass.gain) < p.min_pass_gain) break;
  }
  return stats;
}

// Packs the nodes without neighbours into groups of weight at most `bound` (consecutive in id
// order), so that isolated nodes coarsen too. labels[v] == v and sizes[v] == weight on entry.
template <typename G>
void PackIsolated(const G& g, uint32_t* labels, uint32_t* sizes, uint64_t bound) {
  uint32_t leader = kNone;
  for (uint32_t v = 0; v < g.num_nodes(); ++v) {
    if (g.degree(v) != 0) continue;
    const uint32_t w = g.node_weight(v);
    if (leader != kNone && uint64_t{sizes[leader]} + w <= bound) {
      labels[v] = leader;
      sizes[leader] += w;
      sizes[v] -= w;
    } else {
      leader = v;
    }
  }
}

// Renames the labels in use to 0..C-1 in label order and rewrites labels[] to them. sizes[] (over
// the label space) becomes the renaming map; returns the new labels' weights (C of them).
inline std::vector<int32_t> RelabelDense(uint32_t n, uint32_t* labels, uint32_t* sizes, uint32_t label_space) {
  uint32_t c = 0;
  for (uint32_t l = 0; l < label_space; ++l) c += sizes[l] != 0 ? 1 : 0;
  std::vector<int32_t> vwgt;
  vwgt.reserve(c);
  c = 0;
  for (uint32_t l = 0; l < label_space; ++l) {
    if (sizes[l] == 0) continue;
    vwgt.push_back(static_cast<int32_t>(sizes[l]));
    sizes[l] = c++;
  }
  tbb::parallel_for(tbb::blocked_range<uint32_t>(0, n, 1 << 14), [&](const tbb::blocked_range<uint32_t>& r) {
    for (uint32_t v = r.begin(); v != r.end(); ++v) labels[v] = sizes[labels[v]];
  });
  return vwgt;
}

struct ContractStats {
  int scans = 0;                    // passes over the graph's rows (one per range of clusters and sweep)
  uint64_t scratch_bytes_peak = 0;  // degree bounds, cursors, row lengths and the entry buffer of one range
};

// The weighted quotient graph of `g` under coarse_of (node -> cluster in [0, C), C = vwgt.size()):
// an edge between two clusters weighs the sum of the edge weights between them. Rows are
// gathered for a range of clusters at a time with one scan over g per range; the nodes are read
// in id order, so a mapped CSR is read sequentially. Each cluster's entries are sorted and
// merged, so the result does not depend on the scan's thread schedule.
//
// budget_bytes == 0: one range, output arrays grown as needed. Otherwise the scratch and the
// output stay within budget_bytes: a first sweep counts each coarse row, the arrays are then
// allocated at their exact size and a second sweep fills them, each range holding as many row
// entries as the bytes left allow (a single cluster's rows may exceed it); kInvalidArgument if
// the coarse graph itself does not fit.
template <typename G>
Result<WeightedGraph> Contract(const G& g, const uint32_t* coarse_of, std::vector<int32_t> vwgt, uint64_t budget_bytes,
                               ContractStats* stats, std::string_view phase, const ProgressFn* progress) {
  const uint32_t n = g.num_nodes();
  const auto num_clusters = static_cast<uint32_t>(vwgt.size());
  std::vector<uint64_t> bound(num_clusters, 0);  // sum of member degrees: a bound on the row
  for (uint32_t v = 0; v < n; ++v) bound[coarse_of[v]] += g.degree(v);
  struct Entry {
    uint32_t label;
    uint32_t weight;
  };
  const uint64_t fixed = 8 * uint64_t{num_clusters} + 4 * uint64_t{num_clusters};  // bound, row lengths
  std::vector<uint32_t> row_len(num_clusters, 0);
  // Gathers, sorts and merges the rows of ranges of clusters holding at most max_entries entries
  // each; calls on_range(c0, c1, buf, start) with cluster c's merged row at buf[start[c - c0]],
  // row_len[c] long.
  // held: output bytes allocated during the sweep (for the scratch peak). A range's buffer and
  // cursors take at most max_bytes (a single cluster's may exceed it).
  auto sweep = [&](uint64_t max_bytes, uint64_t held, auto&& on_range) {
    uint32_t c0 = 0;
    while (c0 < num_clusters) {
      uint64_t total = 0;
      uint32_t c1 = c0;
      while (c1 < num_clusters &&
             (c1 == c0 || sizeof(Entry) * (total + bound[c1]) + 16 * (uint64_t{c1 - c0} + 2) <= max_bytes))
        total += bound[c1++];
      std::vector<uint64_t> cursor(uint64_t{c1 - c0} + 1, 0);
      for (uint32_t c = c0; c < c1; ++c) cursor[c - c0 + 1] = cursor[c - c0] + bound[c];
      std::vector<uint64_t> start(cursor);
      std::vector<Entry> buf(total);
      if (stats != nullptr) {
        ++stats->scans;
        stats->scratch_bytes_peak =
            std::max(stats->scratch_bytes_peak, fixed + held + 16 * uint64_t{cursor.size()} + sizeof(Entry) * total);
      }
      tbb::parallel_for(tbb::blocked_range<uint32_t>(0, n, 1 << 12), [&](const tbb::blocked_range<uint32_t>& r) {
        for (uint32_t v = r.begin(); v != r.end(); ++v) {
          const uint32_t c = coarse_of[v];
          if (c < c0 || c >= c1) continue;
          uint64_t at = std::atomic_ref<uint64_t>(cursor[c - c0]).fetch_add(g.degree(v), std::memory_order_relaxed);
          g.ForEachNeighbor(v, [&](uint32_t u, uint32_t w) {
            const uint32_t cu = coarse_of[u];
            buf[at++] = Entry{cu == c ? kNone : cu, w};
          });
        }
      });
      tbb::parallel_for(tbb::blocked_range<uint32_t>(c0, c1, 64), [&](const tbb::blocked_range<uint32_t>& r) {
        for (uint32_t c = r.begin(); c != r.end(); ++c) {
          Entry* b = buf.data() + start[c - c0];
          Entry* e = buf.data() + start[c - c0 + 1];
          std::sort(b, e, [](const Entry& x, const Entry& y) { return x.label < y.label; });
          Entry* o = b;
          for (Entry* it = b; it != e && it->label != kNone;) {
            uint64_t w = 0;
            const uint32_t l = it->label;
            for (; it != e && it->label == l; ++it) w += it->weight;
            *o++ = Entry{l, static_cast<uint32_t>(std::min<uint64_t>(w, std::numeric_limits<int32_t>::max()))};
          }
          row_len[c] = static_cast<uint32_t>(o - b);
        }
      });
      on_range(c0, c1, buf, start);
      if (progress != nullptr && *progress) (*progress)(phase, c1, num_clusters);
      c0 = c1;
    }
  };
  constexpr uint64_t kMinRangeEntries = uint64_t{1} << 16;
  auto bytes_for = [&](uint64_t held) -> uint64_t {
    if (budget_bytes == 0) return std::numeric_limits<uint64_t>::max();
    const uint64_t left = budget_bytes > held ? budget_bytes - held : 0;
    return std::max(sizeof(Entry) * kMinRangeEntries, left);
  };
  constexpr uint64_t kMaxEntries = static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
  WeightedGraph out;
  out.vwgt = std::move(vwgt);
  auto too_many = [] {
    return Status::Unsupported("the coarse graph has more than 2^31 - 1 adjacency entries (METIS's idx_t)");
  };
  if (budget_bytes == 0) {
    out.xadj.reserve(uint64_t{num_clusters} + 1);
    out.xadj.push_back(0);
    bool overflow = false;
    sweep(bytes_for(0), 0,
          [&](uint32_t c0, uint32_t c1, const std::vector<Entry>& buf, const std::vector<uint64_t>& start) {
            for (uint32_t c = c0; c < c1 && !overflow; ++c) {
              if (out.adjncy.size() + row_len[c] > kMaxEntries) overflow = true;
              const Entry* b = buf.data() + start[c - c0];
              for (uint32_t i = 0; i < row_len[c] && !overflow; ++i) {
                out.adjncy.push_back(static_cast<int32_t>(b[i].label));
                out.adjwgt.push_back(static_cast<int32_t>(b[i].weight));
              }
              out.xadj.push_back(static_cast<int32_t>(out.adjncy.size()));
            }
          });
    if (overflow) return too_many();
    out.adjncy.shrink_to_fit();
    out.adjwgt.shrink_to_fit();
    return out;
  }
  // Counting sweep, then the exact arrays, then the filling sweep.
  sweep(bytes_for(fixed), 0, [](uint32_t, uint32_t, const std::vector<Entry>&, const std::vector<uint64_t>&) {});
  uint64_t entries = 0;
  for (uint32_t c = 0; c < num_clusters; ++c) entries += row_len[c];
  if (entries > kMaxEntries) return too_many();
  const uint64_t out_bytes = WeightedGraph::BytesFor(num_clusters, entries);
  if (fixed + out_bytes + sizeof(Entry) * kMinRangeEntries > budget_bytes)
    return Status::InvalidArgument("the coarse graph of " + std::to_string(num_clusters) + " clusters and " +
                                   std::to_string(entries) + " entries needs " + FormatBytes(out_bytes) + " plus " +
                                   FormatBytes(fixed + sizeof(Entry) * kMinRangeEntries) + " to build it; " +
                                   FormatBytes(budget_bytes) + " were left");
  out.xadj.assign(uint64_t{num_clusters} + 1, 0);
  out.adjncy.resize(entries);
  out.adjwgt.resize(entries);
  for (uint32_t c = 0; c < num_clusters; ++c) out.xadj[c + 1] = out.xadj[c] + static_cast<int32_t>(row_len[c]);
  sweep(bytes_for(fixed + out_bytes), out_bytes,
        [&](uint32_t c0, uint32_t c1, const std::vector<Entry>& buf, const std::vector<uint64_t>& start) {
          for (uint32_t c = c0; c < c1; ++c) {
            const Entry* b = buf.data() + start[c - c0];
            for (uint32_t i = 0; i < row_len[c]; ++i) {
              out.adjncy[static_cast<size_t>(out.xadj[c]) + i] = static_cast<int32_t>(b[i].label);
              out.adjwgt[static_cast<size_t>(out.xadj[c]) + i] = static_cast<int32_t>(b[i].weight);
            }
          }
        });
  return out;
}

}  // namespace cgcn::lp
