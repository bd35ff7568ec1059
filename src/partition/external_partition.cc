#include "cgcn/external_partition.h"

#include <metis.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cgcn/byte_size.h"
#include "cgcn/partitioner_choice.h"
#include "partition/label_propagation.h"
#include "partition/metis_kway.h"
#include "util/parallel.h"
#include "util/threads.h"

namespace cgcn {
namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A cluster may hold at most 1/kClusterFraction of a part's bound in fine nodes.
constexpr uint64_t kClusterFraction = 16;
constexpr int kDefaultCoarsenRounds = 3;
constexpr int kDefaultRefineRounds = 8;
// Coarsening stops once the coarse graph has at most this many nodes per part (and fits).
constexpr uint64_t kCoarseNodesPerPart = 32;
constexpr int kMaxLevels = 6;
// A level that keeps more than this fraction of its nodes ends coarsening (label propagation is stuck).
constexpr double kMinShrink = 0.9;
// Rows longer than this do not move in coarsening (their per-row map would be as large as the row).
constexpr uint64_t kHubDegree = uint64_t{1} << 16;
// Refinement stops after a pass that lowers the cut by less than this fraction.
constexpr double kMinRefineGain = 0.001;
// METIS gets at most this many entries per coarse node: beyond it the lightest coarse edges (the
// fewest fine edges between two clusters) are left out of its input. On graphs with many
// scattered edges the coarse graph is dense with weight-1 edges that cost METIS time and barely
// steer the partition; the fine refinement and the recounted cut still see every edge.
constexpr uint64_t kMetisAvgDegree = 160;
constexpr uint64_t kFixedBytes = uint64_t{16} << 20;  // per-thread maps, sub-round buffers, slack

// Bytes held, and the most held at once.
struct Ledger {
  uint64_t now = 0, peak = 0;
  void Hold(uint64_t b) {
    now += b;
    peak = std::max(peak, now);
  }
  void Release(uint64_t b) { now -= std::min(now, b); }
  void Spike(uint64_t b) { peak = std::max(peak, now + b); }
};

std::string Bytes(uint64_t b) { return FormatBytes(b); }

uint64_t CountCut(const CsrView& g, const uint32_t* part) {
  return tbb::parallel_reduce(
             tbb::blocked_range<uint32_t>(0, g.num_nodes, 1 << 12), uint64_t{0},
             [&](const tbb::blocked_range<uint32_t>& r, uint64_t acc) {
               for (uint32_t v = r.begin(); v != r.end(); ++v)
                 for (uint32_t u : g.row(v)) acc += part[u] != part[v] ? 1 : 0;
               return acc;
             },
             [](uint64_t a, uint64_t b) { return a + b; }) /
         2;
}

// Moves nodes out of parts above `limit` until none is, in passes over the fine graph (sub-rounds
// as in RunLabelPropagation). A pass moves a node only if it loses at most `allowed` cut edges,
// going to the best-connected part with room, or to the lightest part; `allowed` grows from 0
// pass by pass until every overloaded node may move, so the loop ends. Keeps *cut up to date.
void Rebalance(const CsrView& g, uint32_t* part, uint32_t* sizes, uint32_t num_parts, uint64_t limit, uint64_t seed,
               const ProgressFn& progress, uint64_t* cut, int* passes) {
  const uint32_t n = g.num_nodes;
  uint64_t overloaded = 0;
  for (uint32_t p = 0; p < num_parts; ++p) overloaded += sizes[p] > limit ? 1 : 0;
  uint64_t allowed = 0;
  constexpr uint64_t kAny = std::numeric_limits<uint64_t>::max();
  const uint64_t max_degree = num_parts <= kHubDegree ? 0 : kHubDegree;
  tbb::enumerable_thread_specific<lp::RowScratch> scratch;
  std::vector<uint32_t> proposal(lp::kSubRound);
  for (int pass = 0; overloaded > 0; ++pass) {
    const uint64_t pass_seed = SplitMix64(seed ^ (0xba1a9ceULL + static_cast<uint64_t>(pass)));
    for (uint32_t s = 0; s < n && overloaded > 0; s = (n - s > lp::kSubRound) ? s + lp::kSubRound : n) {
      const uint32_t e = (n - s > lp::kSubRound) ? s + lp::kSubRound : n;
      bool any = false;
      for (uint32_t v = s; v < e && !any; ++v) any = sizes[part[v]] > limit;
      if (!any) continue;
      uint32_t lightest = 0;
      for (uint32_t p = 1; p < num_parts; ++p)
        if (sizes[p] < sizes[lightest]) lightest = p;
      tbb::parallel_for(tbb::blocked_range<uint32_t>(s, e, 256), [&](const tbb::blocked_range<uint32_t>& r) {
        lp::RowScratch& rs = scratch.local();
        lp::ConnMap& map = rs.map;
        for (uint32_t v = r.begin(); v != r.end(); ++v) {
          proposal[v - s] = lp::kNone;
          const uint32_t own = part[v];
          if (sizes[own] <= limit) continue;
          const uint64_t deg = g.degree(v);
          uint32_t best = lightest;
          uint64_t best_conn = 0, best_hash = 0;
          uint64_t conn_own = 0;
          if (max_degree == 0 || deg <= max_degree) {
            map.Reset(std::min<uint64_t>(deg, num_parts), num_parts);
            rs.AddRow(lp::FineGraph{&g}, v, part);
            conn_own = map.Get(own);
            map.ForEach([&](uint32_t c, uint64_t conn) {
              if (c == own || uint64_t{sizes[c]} + 1 > limit || conn < best_conn) return;
              const uint64_t h = lp::TieHash(pass_seed, v, c);
              if (conn == best_conn && (h < best_hash || (h == best_hash && c < best))) return;
              best = c;
              best_conn = conn;
              best_hash = h;
            });
          } else if (allowed != kAny) {
            continue;  // a hub moves only when anything may
          }
          if (best == own || uint64_t{sizes[best]} + 1 > limit) continue;
          if (allowed != kAny && best_conn + allowed < conn_own) continue;
          proposal[v - s] = best;
        }
      });
      for (uint32_t v = s; v < e; ++v) {
        const uint32_t t = proposal[v - s];
        if (t == lp::kNone) continue;
        const uint32_t own = part[v];
        if (sizes[own] <= limit || uint64_t{sizes[t]} + 1 > limit) continue;
        uint64_t conn_own = 0, conn_t = 0;
        for (uint32_t u : g.row(v)) {
          conn_own += part[u] == own ? 1 : 0;
          conn_t += part[u] == t ? 1 : 0;
        }
        if (allowed != kAny && conn_t + allowed < conn_own) continue;
        part[v] = t;
        --sizes[own];
        ++sizes[t];
        if (sizes[own] == limit) --overloaded;
        *cut = *cut + conn_own - conn_t;
      }
      if (progress && overloaded == 0) progress("rebalance", e, n);
    }
    if (progress) progress("rebalance", n, n);
    *passes = pass + 1;
    allowed = allowed == kAny ? kAny : allowed >= 64 ? kAny : allowed == 0 ? 1 : 2 * allowed;
  }
}

// What a contraction held at most: with a budget its scratch includes the exact output; without
// one the output arrays grew by doubling (up to twice their size, while copying).
uint64_t ContractPeak(const lp::ContractStats& cs, const lp::WeightedGraph& out, uint64_t budget) {
  return budget != 0 ? cs.scratch_bytes_peak
                     : cs.scratch_bytes_peak + 3 * (out.bytes() - 4 * uint64_t{out.num_nodes()});
}

struct Workspace {
  uint32_t n = 0;
  uint32_t num_parts = 0;
  uint64_t budget = 0;  // 0 = none
  Ledger ledger;
  bool Fits(uint64_t more) const { return budget == 0 || ledger.now + more <= budget; }
};

// Leaves out of g the edges lighter than the smallest weight threshold that keeps at most
// max_entries entries (the same threshold for both directions, so g stays symmetric).
void DropLightEdges(lp::WeightedGraph& g, uint64_t max_entries) {
  if (g.num_entries() <= max_entries) return;
  constexpr uint32_t kBuckets = 1 << 12;
  std::vector<uint64_t> at_least(kBuckets + 1, 0);  // first: entries of weight == w (capped)
  for (int32_t w : g.adjwgt) ++at_least[std::min<uint32_t>(static_cast<uint32_t>(w), kBuckets - 1)];
  for (uint32_t w = kBuckets - 1; w > 0; --w) at_least[w - 1] += at_least[w];
  int32_t threshold = 1;
  while (threshold < static_cast<int32_t>(kBuckets - 1) && at_least[static_cast<uint32_t>(threshold)] > max_entries)
    ++threshold;
  int32_t out = 0;
  const uint32_t n = g.num_nodes();
  int32_t begin = 0;
  for (uint32_t v = 0; v < n; ++v) {
    const int32_t end = g.xadj[v + 1];
    for (int32_t e = begin; e < end; ++e) {
      if (g.adjwgt[e] < threshold) continue;
      g.adjncy[out] = g.adjncy[e];
      g.adjwgt[out] = g.adjwgt[e];
      ++out;
    }
    begin = end;
    g.xadj[v + 1] = out;
  }
  g.adjncy.resize(static_cast<size_t>(out));
  g.adjwgt.resize(static_cast<size_t>(out));
}

Status RunMetis(lp::WeightedGraph& g, int32_t num_parts, int64_t seed, double imbalance, std::vector<int32_t>* part) {
  // METIS sums edge weights into idx_t: keep the total below 2^30 by scaling (ceil keeps every edge).
  uint64_t total = 0;
  for (int32_t w : g.adjwgt) total += static_cast<uint64_t>(w);
  if (total > (uint64_t{1} << 30)) {
    const uint64_t d = (total + (uint64_t{1} << 30) - 1) >> 30;
    for (int32_t& w : g.adjwgt) w = static_cast<int32_t>((static_cast<uint64_t>(w) + d - 1) / d);
  }
  part->assign(g.num_nodes(), 0);
  return MetisKway(static_cast<idx_t>(g.num_nodes()), g.xadj.data(), g.adjncy.data(), g.vwgt.data(), g.adjwgt.data(),
                   num_parts, seed, std::max<idx_t>(1, static_cast<idx_t>(std::lround(imbalance * 1000))), part->data(),
                   "the coarse graph");
}

Result<Partition> Run(const CsrView& graph, const ExternalPartitionOptions& o, ExternalPartitionReport* rep,
                      const ProgressFn& progress) {
  const uint32_t n = graph.num_nodes;
  if (o.num_parts < 1) return Status::InvalidArgument("--parts must be >= 1");
  if (n == 0) return Status::InvalidInput("graph has no nodes");
  if (static_cast<uint64_t>(o.num_parts) > n)
    return Status::InvalidArgument("--parts " + std::to_string(o.num_parts) + " exceeds the number of nodes (" +
                                   std::to_string(n) + ")");
  if (!(o.imbalance >= 0 && o.imbalance <= 1))
    return Status::InvalidArgument("imbalance must be in [0, 1], got " + std::to_string(o.imbalance));
  if (n > static_cast<uint32_t>(std::numeric_limits<int32_t>::max()))
    return Status::Unsupported(
        "the external partitioner takes at most 2^31 - 1 nodes (METIS sums node weights in "
        "32 bits); the graph has " +
        std::to_string(n));
  const auto num_parts = static_cast<uint32_t>(o.num_parts);
  // The part bound: ceil((1 + imbalance) * N / P), never below ceil(N / P).
  const uint64_t even = (uint64_t{n} + num_parts - 1) / num_parts;
  const uint64_t limit =
      std::max(even, static_cast<uint64_t>(std::ceil((1.0 + o.imbalance) * static_cast<double>(n) / num_parts - 1e-9)));
  rep->part_limit_nodes = limit;

  Workspace ws;
  ws.n = n;
  ws.num_parts = num_parts;
  ws.budget = o.mem_budget;
  // Labels (the part array) and the fine cluster sizes are held through coarsening.
  const uint64_t label_bytes = 4 * uint64_t{n};
  const uint64_t first_bytes = 2 * label_bytes + kFixedBytes + graph.heap_bytes;
  if (!ws.Fits(first_bytes))
    return Status::InvalidArgument(
        "--mem-budget " + Bytes(o.mem_budget) + " is too small for the external partitioner: " + std::to_string(n) +
        " nodes need " + Bytes(label_bytes) + " of labels plus " + Bytes(label_bytes) + " of cluster sizes plus " +
        Bytes(kFixedBytes) + " of buffers" +
        (graph.heap_bytes != 0 ? " plus the in-memory CSR's " + Bytes(graph.heap_bytes) : std::string()) + ", " +
        Bytes(first_bytes) + " in all, before any coarse graph");
  ws.ledger.Hold(kFixedBytes);
  ws.ledger.Hold(graph.heap_bytes);  // a CSR in memory counts; a mapped one is page cache

  Partition result;
  result.num_parts = o.num_parts;
  result.part.assign(n, 0);
  ws.ledger.Hold(label_bytes);
  auto* labels = reinterpret_cast<uint32_t*>(result.part.data());
  if (num_parts == 1) {
    rep->max_part_nodes = n;
    rep->peak_bytes_planned = ws.ledger.peak;
    return result;
  }

  const int coarsen_rounds = o.coarsen_rounds > 0 ? o.coarsen_rounds : kDefaultCoarsenRounds;
  const int refine_rounds = o.refine_rounds > 0 ? o.refine_rounds : kDefaultRefineRounds;
  const uint64_t cluster_bound = std::max<uint64_t>(1, limit / kClusterFraction);
  const uint64_t seed = static_cast<uint64_t>(o.seed);
  // What METIS takes on top of the coarse graph already held: its workspace (kMetisWorkspaceFactor
  // times xadj, adjncy and part, measured for METIS on fine graphs; partitioner_choice.h) for the
  // entries it is handed, plus the part array.
  auto metis_extra = [&](const lp::WeightedGraph& g) {
    const uint64_t entries = std::min<uint64_t>(g.num_entries(), kMetisAvgDegree * g.num_nodes());
    return static_cast<uint64_t>(kMetisWorkspaceFactor * static_cast<double>(MetisArrayBytes(g.num_nodes(), entries))) +
           4 * uint64_t{g.num_nodes()};
  };
  auto budget_context = [&] {
    return "--mem-budget " + Bytes(o.mem_budget) + " is too small for the external partitioner at coarsening level " +
           std::to_string(rep->levels) + " (labels and coarse graphs hold " + Bytes(ws.ledger.now) + ")";
  };
  // What the contraction may take (its scratch and its output): what is left; 0 = no limit.
  auto contract_budget = [&]() -> uint64_t {
    if (ws.budget == 0) return 0;
    return ws.budget > ws.ledger.now ? ws.budget - ws.ledger.now : 1;
  };

  // The coarsening parameters of every level: `label_space` nodes, the seed varied by level.
  const auto coarsen_params = [&](uint64_t label_space, uint64_t level) {
    lp::LpParams p;
    p.bound = cluster_bound;
    p.rounds = coarsen_rounds;
    p.seed = SplitMix64(seed + level);
    p.coarsen = true;
    p.max_degree = kHubDegree;
    p.label_space = label_space;
    p.min_pass_gain = std::max<uint64_t>(1, label_space / 100);
    p.phase = "coarsen";
    p.progress = &progress;
    return p;
  };

  // Level 1: size-constrained label propagation over the fine CSR.
  auto t0 = Clock::now();
  lp::WeightedGraph coarse;
  {
    std::vector<uint32_t> sizes(n, 1);
    ws.ledger.Hold(label_bytes);
    tbb::parallel_for(tbb::blocked_range<uint32_t>(0, n, 1 << 14), [&](const tbb::blocked_range<uint32_t>& r) {
      for (uint32_t v = r.begin(); v != r.end(); ++v) labels[v] = v;
    });
    const lp::FineGraph fine{&graph};
    lp::PackIsolated(fine, labels, sizes.data(), cluster_bound);
    const lp::LpParams p = coarsen_params(n, 0);
    if (cluster_bound > 1) lp::RunLabelPropagation(fine, labels, sizes.data(), p);
    rep->levels = 1;
    std::vector<int32_t> vwgt = lp::RelabelDense(n, labels, sizes.data(), n);
    ws.ledger.Hold(4 * uint64_t{vwgt.size()});
    rep->coarsen_s += SecondsSince(t0);
    t0 = Clock::now();
    const uint64_t c = vwgt.size();
    if (!ws.Fits(16 * c + 8 * (uint64_t{1} << 16)))
      return Status::InvalidArgument("--mem-budget " + Bytes(o.mem_budget) + " is too small to contract " +
                                     std::to_string(n) + " nodes into " + std::to_string(c) +
                                     " clusters: labels and sizes hold " + Bytes(ws.ledger.now) +
                                     ", the contraction needs " + Bytes(16 * c) + " more before its entry buffer");
    lp::ContractStats cs;
    Result<lp::WeightedGraph> contracted =
        lp::Contract(fine, labels, std::move(vwgt), contract_budget(), &cs, "contract", &progress);
    if (!contracted.ok()) return contracted.status().WithContext(budget_context());
    coarse = std::move(contracted).value();
    ws.ledger.Spike(ContractPeak(cs, coarse, ws.budget));
    rep->contract_scans += cs.scans;
    ws.ledger.Release(label_bytes + 4 * uint64_t{coarse.num_nodes()});  // the sizes (now the renaming) go
    ws.ledger.Hold(coarse.bytes());
    rep->contract_s += SecondsSince(t0);
  }

  // Further levels on the weighted coarse graph while it is too large for METIS under the budget
  // or has more nodes than METIS needs.
  const uint64_t target_nodes = kCoarseNodesPerPart * num_parts;
  while (rep->levels < kMaxLevels && cluster_bound > 1 &&
         (!ws.Fits(metis_extra(coarse)) || coarse.num_nodes() > target_nodes)) {
    const uint32_t c = coarse.num_nodes();
    if (!ws.Fits(12 * uint64_t{c})) break;  // no room for another level's labels, sizes and weights
    t0 = Clock::now();
    std::vector<uint32_t> clabels(c), csizes(c);
    ws.ledger.Hold(8 * uint64_t{c});
    for (uint32_t v = 0; v < c; ++v) {
      clabels[v] = v;
      csizes[v] = static_cast<uint32_t>(coarse.vwgt[v]);
    }
    const lp::CoarseGraph cg{&coarse};
    lp::PackIsolated(cg, clabels.data(), csizes.data(), cluster_bound);
    const lp::LpParams p = coarsen_params(c, static_cast<uint64_t>(rep->levels));
    lp::RunLabelPropagation(cg, clabels.data(), csizes.data(), p);
    std::vector<int32_t> vwgt = lp::RelabelDense(c, clabels.data(), csizes.data(), c);
    rep->coarsen_s += SecondsSince(t0);
    if (static_cast<double>(vwgt.size()) > kMinShrink * c) break;  // stuck: keep the current level
    ++rep->levels;
    t0 = Clock::now();
    tbb::parallel_for(tbb::blocked_range<uint32_t>(0, n, 1 << 14), [&](const tbb::blocked_range<uint32_t>& r) {
      for (uint32_t v = r.begin(); v != r.end(); ++v) labels[v] = clabels[labels[v]];
    });
    ws.ledger.Hold(4 * uint64_t{vwgt.size()});
    lp::ContractStats cs;
    Result<lp::WeightedGraph> contracted =
        lp::Contract(cg, clabels.data(), std::move(vwgt), contract_budget(), &cs, "contract", &progress);
    if (!contracted.ok()) return contracted.status().WithContext(budget_context());
    lp::WeightedGraph next = std::move(contracted).value();
    ws.ledger.Spike(ContractPeak(cs, next, ws.budget));
    rep->contract_scans += cs.scans;
    ws.ledger.Release(8 * uint64_t{c} + coarse.bytes() + 4 * uint64_t{next.num_nodes()});
    ws.ledger.Hold(next.bytes());
    coarse = std::move(next);
    rep->contract_s += SecondsSince(t0);
  }
  rep->coarse_nodes = coarse.num_nodes();
  rep->coarse_entries = coarse.num_entries();
  if (!ws.Fits(metis_extra(coarse)))
    return Status::InvalidArgument(
        "--mem-budget " + Bytes(o.mem_budget) + " is too small for the external partitioner: after " +
        std::to_string(rep->levels) + " coarsening levels the coarse graph has " + std::to_string(coarse.num_nodes()) +
        " nodes and " + std::to_string(coarse.num_entries()) + " entries (" + Bytes(coarse.bytes()) +
        "), and METIS needs about " + Bytes(metis_extra(coarse)) + " more for it, on top of " + Bytes(label_bytes) +
        " of labels and " + Bytes(kFixedBytes) + " of buffers");

  // METIS on the coarse graph, or one cluster per part when there are no more clusters than parts.
  t0 = Clock::now();
  {
    std::vector<int32_t> coarse_part;
    ws.ledger.Spike(metis_extra(coarse));
    if (coarse.num_nodes() <= num_parts) {
      coarse_part.resize(coarse.num_nodes());
      for (uint32_t c = 0; c < coarse.num_nodes(); ++c) coarse_part[c] = static_cast<int32_t>(c);
    } else {
      DropLightEdges(coarse, kMetisAvgDegree * coarse.num_nodes());
      rep->metis_entries = coarse.num_entries();
      CGCN_RETURN_IF_ERROR(RunMetis(coarse, o.num_parts, o.seed, o.imbalance, &coarse_part));
    }
    tbb::parallel_for(tbb::blocked_range<uint32_t>(0, n, 1 << 14), [&](const tbb::blocked_range<uint32_t>& r) {
      for (uint32_t v = r.begin(); v != r.end(); ++v) labels[v] = static_cast<uint32_t>(coarse_part[labels[v]]);
    });
    ws.ledger.Release(coarse.bytes());
    coarse = lp::WeightedGraph{};
  }
  rep->metis_s = SecondsSince(t0);

  // Refinement on the fine graph: first the balance, then cut-lowering moves.
  t0 = Clock::now();
  std::vector<uint32_t> sizes(num_parts, 0);
  ws.ledger.Hold(4 * uint64_t{num_parts});
  for (uint32_t v = 0; v < n; ++v) ++sizes[labels[v]];
  rep->cut_projected = CountCut(graph, labels);
  uint64_t cut = rep->cut_projected;
  Rebalance(graph, labels, sizes.data(), num_parts, limit, SplitMix64(seed + 7), progress, &cut,
            &rep->rebalance_passes);
  {
    lp::LpParams p;
    p.bound = limit;
    p.rounds = refine_rounds;
    p.seed = SplitMix64(seed + 11);
    p.coarsen = false;
    p.max_degree = num_parts <= kHubDegree ? 0 : kHubDegree;
    p.label_space = num_parts;
    p.min_pass_gain = std::max<uint64_t>(1, static_cast<uint64_t>(kMinRefineGain * static_cast<double>(cut)));
    p.phase = "refine";
    p.progress = &progress;
    const lp::LpStats st = lp::RunLabelPropagation(lp::FineGraph{&graph}, labels, sizes.data(), p);
    rep->refine_rounds_run = st.passes;
    cut -= st.gain;
  }
  result.edge_cut = CountCut(graph, labels);
  if (result.edge_cut != cut)
    return Status::Internal("external partitioner: the recounted cut " + std::to_string(result.edge_cut) +
                            " differs from the tracked " + std::to_string(cut));
  rep->edge_cut = result.edge_cut;
  rep->max_part_nodes = *std::max_element(sizes.begin(), sizes.end());
  if (rep->max_part_nodes > limit)
    return Status::Internal("external partitioner left a part of " + std::to_string(rep->max_part_nodes) +
                            " nodes, above the bound " + std::to_string(limit));
  rep->refine_s = SecondsSince(t0);
  rep->peak_bytes_planned = ws.ledger.peak;
  return result;
}

}  // namespace

Result<Partition> PartitionExternal(const CsrView& graph, const ExternalPartitionOptions& options,
                                    ExternalPartitionReport* report, const ProgressFn& progress) {
  ExternalPartitionReport local;
  ExternalPartitionReport* rep = report != nullptr ? report : &local;
  *rep = ExternalPartitionReport{};
  Result<Partition> out = Status::Internal("unset");
  Status s = CatchStatus("external partitioner", [&]() -> Status {
    out = Run(graph, options, rep, progress);
    return out.status();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace cgcn
