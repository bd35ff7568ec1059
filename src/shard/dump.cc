#include "cgcn/dump.h"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cgcn/shard_directory.h"
#include "cgcn/split.h"
#include "util/bytes.h"
#include "util/parallel.h"
#include "util/random.h"

namespace cgcn {
namespace {

std::string Fmt(const char* f, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

// The tasks set on multi-label row i.
std::vector<uint32_t> TaskList(const ClusterData& c, uint32_t i) {
  std::vector<uint32_t> tasks;
  const uint32_t* row = c.label_bits.data() + uint64_t{i} * LabelWords(c.label_tasks);
  for (uint32_t t = 0; t < c.label_tasks; ++t)
    if (LabelBit(row, t)) tasks.push_back(t);
  return tasks;
}

nlohmann::json ManifestJson(const Manifest& m) {
  return {{"version", m.version},
          {"num_nodes", m.num_nodes},
          {"num_edges", m.num_edges},
          {"feat_dim", m.feat_dim},
          {"num_classes", m.num_classes},
          {"label_tasks", m.label_tasks},
          {"feature_source", m.feature_source.Describe()},
          {"num_parts", m.num_parts},
          {"seed", m.seed},
          {"zstd_level", m.zstd_level},
          {"edge_cut", m.edge_cut},
          {"cut_fraction", m.CutFraction()},
          {"largest_cluster", m.LargestCluster()},
          {"balance", m.Balance()},
          {"split", m.split_name},
          {"num_train", m.num_train},
          {"num_valid", m.num_valid},
          {"num_test", m.num_test},
          {"input_fingerprint", Hex64(m.input_fingerprint)},
          {"input_bytes", m.input_bytes},
          {"input_files", [&] {
             nlohmann::json a = nlohmann::json::array();
             for (const InputFileDigest& f : m.input_files)
               a.push_back({{"file", f.relative}, {"bytes", f.size}, {"checksum", Hex64(f.checksum)}});
             return a;
           }()}};
}

// Inter-cluster edges must come in mirrored pairs: shard k's edge from its node a to node b of
// cluster g needs shard g's edge from b to a. VerifyAll checks this in memory of the order of the
// cluster count, not the edge count: every edge adds a 128-bit hash of its undirected form to the
// accumulator of the lower of its two clusters, positively from that cluster's side and
// negatively from the other's, so each accumulator ends at zero exactly when the edges between
// that cluster and higher-numbered ones are mirrored (up to a 2^-64 chance). Only when one does
// not end at zero are the shards read again, to name the group that differs.
struct MirrorSum {
  uint64_t count = 0, h1 = 0, h2 = 0;
  bool zero() const { return count == 0 && h1 == 0 && h2 == 0; }
};

void AddInterEdges(uint32_t k, const ClusterData& c, std::vector<MirrorSum>& sums) {
  for (const InterGroup& g : c.inter_groups) {
    const bool lower = k < g.cluster;
    MirrorSum& sum = sums[lower ? k : g.cluster];
    for (uint64_t e = g.begin; e < g.begin + g.count; ++e) {
      const uint64_t x = lower ? uint64_t{k} << 32 | c.inter_src[e] : uint64_t{g.cluster} << 32 | c.inter_dst[e];
      const uint64_t y = lower ? uint64_t{g.cluster} << 32 | c.inter_dst[e] : uint64_t{k} << 32 | c.inter_src[e];
      const uint64_t h1 = SplitMix64(x ^ SplitMix64(y)), h2 = SplitMix64(y ^ SplitMix64(x ^ 0x6d6972726f72ULL));
      if (lower) {
        sum.count += 1, sum.h1 += h1, sum.h2 += h2;
      } else {
        sum.count -= 1, sum.h1 -= h1, sum.h2 -= h2;
      }
    }
  }
}

// The group between cluster `lo` and a higher-numbered cluster that is not mirrored (called when
// lo's MirrorSum is not zero).
Status FindUnmirroredGroup(const ShardDirectory& d, uint32_t lo) {
  ShardDecoder decoder;
  ClusterData a, b;
  CGCN_RETURN_IF_ERROR(d.Load(lo, kAllSections, decoder, a));
  auto edges = [](const ClusterData& c, const InterGroup& g, bool reverse) {
    std::vector<std::pair<uint32_t, uint32_t>> v;
    v.reserve(g.count);
    for (uint64_t e = g.begin; e < g.begin + g.count; ++e)
      v.emplace_back(reverse ? c.inter_dst[e] : c.inter_src[e], reverse ? c.inter_src[e] : c.inter_dst[e]);
    std::sort(v.begin(), v.end());
    return v;
  };
  auto group_to = [](const ClusterData& c, uint32_t cluster) -> const InterGroup* {
    for (const InterGroup& g : c.inter_groups)
      if (g.cluster == cluster) return &g;
    return nullptr;
  };
  for (uint32_t h = lo + 1; h < d.num_clusters(); ++h) {
    const InterGroup* ga = group_to(a, h);
    CGCN_RETURN_IF_ERROR(d.Load(h, kAllSections, decoder, b));
    const InterGroup* gb = group_to(b, lo);
    if (ga == nullptr && gb == nullptr) continue;
    if (ga == nullptr || gb == nullptr || ga->count != gb->count) {
      const uint32_t from = ga ? lo : h, to = ga ? h : lo;
      return Status::Corruption(d.ShardPath(from) + ": section 'inter': edges to cluster " + std::to_string(to) +
                                " are not mirrored in " + ShardFileName(to));
    }
    if (edges(a, *ga, false) != edges(b, *gb, true))
      return Status::Corruption(d.ShardPath(lo) + ": section 'inter': edges to cluster " + std::to_string(h) +
                                " differ from their mirror in " + ShardFileName(h));
  }
  return Status::Corruption(d.ShardPath(lo) +
                            ": section 'inter': the edges to higher-numbered clusters are not all mirrored");
}

// Decodes shard k and checks what can be checked from it alone: its checksums and structure, that
// its adjacency is symmetric and that its edge counts are the manifest's. Counts its split members.
Status CheckShard(const ShardDirectory& d, uint32_t k, ShardDecoder& decoder, ClusterData& c, uint64_t split_count[3]) {
  const std::string name = d.ShardPath(k);
  std::fill(split_count, split_count + 3, 0);
  CGCN_RETURN_IF_ERROR(d.Load(k, kAllSections, decoder, c));
  for (uint32_t i = 0; i < c.num_nodes; ++i) {
    for (int s = 0; s < 3; ++s) split_count[s] += (c.split[i] >> s) & 1;
    for (uint32_t e = c.adj_offsets[i]; e < c.adj_offsets[i + 1]; ++e) {
      const uint32_t j = c.adj_neighbors[e];
      if (!std::binary_search(c.adj_neighbors.begin() + c.adj_offsets[j],
                              c.adj_neighbors.begin() + c.adj_offsets[j + 1], i))
        return Status::Corruption(name + ": section 'adjacency': edge " + std::to_string(i) + " -> " +
                                  std::to_string(j) + " has no reverse entry");
    }
  }
  const ShardInfo& info = d.manifest().shards[k];
  if (c.intra_entries() != info.intra_entries || c.inter_entries() != info.inter_entries)
    return Status::Corruption(name + ": edge counts differ from the manifest");
  return Status::Ok();
}

// Every checksum and structural invariant, across shards too: node ids form a permutation
// of [0, N), adjacency is symmetric inside each shard, inter-cluster edges come in mirrored
// pairs, split counts match the manifest. Shards are decoded and checked on their own in
// parallel (a oneTBB pipeline with a few shards in flight, so memory stays bounded); a serial
// in-order stage then does the cross-shard bookkeeping, so the first problem reported is the
// one of the lowest-numbered shard, whatever the thread count.
Status VerifyAll(const ShardDirectory& d, std::ostream& out, bool json) {
  struct Item {
    uint32_t k = 0;
    ClusterData c;
    Status status;
    uint64_t split_count[3] = {0, 0, 0};
  };
  const Manifest& m = d.manifest();
  const size_t in_flight = 2 * static_cast<size_t>(std::max(1, tbb::this_task_arena::max_concurrency()));
  std::vector<Item> items(in_flight);
  tbb::enumerable_thread_specific<ShardDecoder> decoders;
  std::vector<uint8_t> seen(m.num_nodes, 0);
  std::vector<MirrorSum> mirror(d.num_clusters());
  uint64_t split_count[3] = {0, 0, 0};
  uint32_t next = 0;
  Status first_error;               // written by the output stage only
  std::atomic<bool> failed{false};  // read by the input stage, which then stops
  // Errors of single shards travel in their Item, so that the lowest-numbered one is reported;
  // CatchStatus only sees what the serial stages might throw (out of memory).
  CGCN_RETURN_IF_ERROR(CatchStatus(d.dir() + ": verifying", [&] {
    tbb::parallel_pipeline(
        in_flight,
        tbb::make_filter<void, Item*>(tbb::filter_mode::serial_in_order, [&](tbb::flow_control& fc) -> Item* {
          if (next == d.num_clusters() || failed.load(std::memory_order_relaxed)) {
            fc.stop();
            return nullptr;
          }
          Item* it = &items[next % in_flight];  // free: at most in_flight live tokens
          it->k = next++;
          return it;
        }) & tbb::make_filter<Item*, Item*>(tbb::filter_mode::parallel, [&](Item* it) -> Item* {
          it->status = CatchStatus(d.ShardPath(it->k),
                                   [&] { return CheckShard(d, it->k, decoders.local(), it->c, it->split_count); });
          return it;
        }) & tbb::make_filter<Item*, void>(tbb::filter_mode::serial_in_order, [&](Item* it) {
          if (!first_error.ok()) return;
          if (!it->status.ok()) {
            first_error = it->status;
            failed = true;
            return;
          }
          for (uint32_t v : it->c.node_ids)
            if (seen[v]++) {
              first_error = Status::Corruption(d.ShardPath(it->k) + ": section 'nodes': node " + std::to_string(v) +
                                               " also appears in an earlier shard");
              failed = true;
              return;
            }
          for (int s = 0; s < 3; ++s) split_count[s] += it->split_count[s];
          AddInterEdges(it->k, it->c, mirror);
          if (!json) out << "  verified " << d.ShardPath(it->k) << "\n";
        }));
  }));
  CGCN_RETURN_IF_ERROR(first_error);
  for (uint64_t v = 0; v < m.num_nodes; ++v)
    if (!seen[v]) return Status::Corruption(d.dir() + ": node " + std::to_string(v) + " is in no shard");
  if (split_count[0] != m.num_train || split_count[1] != m.num_valid || split_count[2] != m.num_test)
    return Status::Corruption(d.dir() + ": split sizes in the shards differ from the manifest");
  for (uint32_t k = 0; k < d.num_clusters(); ++k)
    if (!mirror[k].zero()) return FindUnmirroredGroup(d, k);
  return Status::Ok();
}

Status DumpShard(const ShardDirectory& d, uint32_t k, const DumpOptions& o, std::ostream& out) {
  if (k >= d.num_clusters())
    return Status::InvalidArgument("--shard " + std::to_string(k) + ": the directory has shards 0.." +
                                   std::to_string(d.num_clusters() - 1));
  CGCN_ASSIGN_OR_RETURN(MappedFile file, d.Map(k));
  CGCN_ASSIGN_OR_RETURN(ShardHeader h, ParseShardHeader(file.bytes(), file.path()));
  ShardDecoder decoder;
  ClusterData c;
  CGCN_RETURN_IF_ERROR(decoder.Decode(file.bytes(), file.path(), d.Expectation(k), kAllSections, c));
  const uint32_t rows = std::min(o.max_rows, c.num_nodes);
  if (o.json) {
    nlohmann::json j = {{"file", file.path()},
                        {"cluster", k},
                        {"num_nodes", c.num_nodes},
                        {"feat_dim", c.feat_dim},
                        {"intra_entries", c.intra_entries()},
                        {"inter_entries", c.inter_entries()},
                        {"header_checksum", Hex64(h.header_checksum)}};
    for (const SectionEntry& e : h.sections) {
      const SectionSpec& spec = SectionSpecOf(e.kind);  // ParseShardHeader checked the kinds
      j["sections"].push_back({{"name", spec.name},
                               {"elements", e.raw_size / spec.element_bytes},
                               {"element_type", spec.element_type},
                               {"codec", CodecName(e.codec)},
                               {"offset", e.offset},
                               {"stored", e.stored_size},
                               {"raw", e.raw_size},
                               {"checksum", Hex64(e.checksum)}});
    }
    for (const InterGroup& g : c.inter_groups)
      j["inter_groups"].push_back({{"cluster", g.cluster}, {"edges", g.count}});
    for (uint32_t i = 0; i < rows; ++i) {
      std::vector<uint32_t> nb(c.adj_neighbors.begin() + c.adj_offsets[i],
                               c.adj_neighbors.begin() + c.adj_offsets[i + 1]);
      nlohmann::json label = c.labels[i] == kNoLabel ? nlohmann::json(nullptr) : nlohmann::json(c.labels[i]);
      if (c.label_tasks != 0 && c.labels[i] != kNoLabel) label = TaskList(c, i);  // the tasks set, e.g. [0, 4]
      j["nodes"].push_back(
          {{"local", i}, {"id", c.node_ids[i]}, {"label", label}, {"split", c.split[i]}, {"intra_neighbors", nb}});
    }
    out << j.dump(2) << "\n";
    return Status::Ok();
  }
  out << "shard " << k << ": " << file.path() << "\n";
  out << Fmt("  %u nodes, %u features, %u classes, %" PRIu64 " intra entries, %" PRIu64
             " inter entries in %zu groups\n",
             c.num_nodes, c.feat_dim, c.num_classes, c.intra_entries(), c.inter_entries(), c.inter_groups.size());
  out << "  header checksum " << Hex64(h.header_checksum) << "\n";
  out << Fmt("  %-10s %14s %-9s %10s %12s %12s %7s  %s\n", "section", "elements", "codec", "offset", "stored", "raw",
             "ratio", "checksum");
  for (const SectionEntry& e : h.sections) {
    const SectionSpec& spec = SectionSpecOf(e.kind);  // ParseShardHeader checked the kinds
    out << Fmt("  %-10s %10" PRIu64 " %-3s %-9s %10" PRIu64 " %12" PRIu64 " %12" PRIu64 " %7.2f  %s\n", spec.name,
               e.raw_size / spec.element_bytes, spec.element_type, CodecName(e.codec), e.offset, e.stored_size,
               e.raw_size, e.stored_size ? static_cast<double>(e.raw_size) / static_cast<double>(e.stored_size) : 0.0,
               Hex64(e.checksum).c_str());
  }
  out << "  inter-cluster edges by cluster:";
  for (size_t g = 0; g < c.inter_groups.size() && g < o.max_rows; ++g)
    out << " " << c.inter_groups[g].cluster << ":" << c.inter_groups[g].count;
  if (c.inter_groups.size() > o.max_rows) out << " ...";
  out << "\n"
      << Fmt("  %6s %10s %6s %6s  %-28s %s\n", "local", "node_id", "label", "split", "intra neighbours",
             "features (first 6)");
  for (uint32_t i = 0; i < rows; ++i) {
    std::string nb, ft;
    for (uint32_t e = c.adj_offsets[i]; e < c.adj_offsets[i + 1] && nb.size() < 24; ++e)
      nb += std::to_string(c.adj_neighbors[e]) + " ";
    for (uint32_t f = 0; f < std::min<uint32_t>(6, c.feat_dim); ++f)
      ft += Fmt("%.3g ", c.features[uint64_t{i} * c.feat_dim + f]);
    const char* split = c.split[i] != 0 ? SplitName(c.split[i]) : "-";                // Decode checked the bits
    std::string label = c.labels[i] == kNoLabel ? "-" : std::to_string(c.labels[i]);  // "-": unlabeled
    if (c.label_tasks != 0 && c.labels[i] != kNoLabel) {  // multi-label: the tasks set, "0+4" ("none": no task)
      label.clear();
      for (const uint32_t t : TaskList(c, i)) label += (label.empty() ? "" : "+") + std::to_string(t);
      if (label.empty()) label = "none";
    }
    out << Fmt("  %6u %10u %6s %6s  %-28s %s\n", i, c.node_ids[i], label.c_str(), split, nb.c_str(), ft.c_str());
  }
  if (rows < c.num_nodes) out << "  ... " << c.num_nodes - rows << " more nodes\n";
  return Status::Ok();
}

}  // namespace

Status Dump(const DumpOptions& o, std::ostream& out) {
  CGCN_ASSIGN_OR_RETURN(ShardDirectory d, ShardDirectory::Open(o.dir));
  if (!o.check_input.empty()) {
    CGCN_RETURN_IF_ERROR(d.CheckInput(o.check_input));
    if (!o.json)
      out << "input " << o.check_input << " matches the manifest's record of " << d.manifest().input_files.size()
          << " files\n";
  }
  if (o.shard) return DumpShard(d, *o.shard, o, out);
  const Manifest& m = d.manifest();
  uint64_t raw = 0, stored = 0;
  for (const ShardInfo& s : m.shards) {
    raw += s.raw_bytes;
    stored += s.file_size;
  }
  if (o.json) {
    nlohmann::json j = {{"dir", o.dir}, {"manifest", ManifestJson(m)}, {"raw_bytes", raw}, {"stored_bytes", stored}};
    for (uint32_t k = 0; k < m.num_parts; ++k) {
      const ShardInfo& s = m.shards[k];
      j["shards"].push_back({{"cluster", k},
                             {"file", ShardFileName(k)},
                             {"nodes", s.num_nodes},
                             {"intra_entries", s.intra_entries},
                             {"inter_entries", s.inter_entries},
                             {"raw_bytes", s.raw_bytes},
                             {"file_bytes", s.file_size},
                             {"header_checksum", Hex64(s.header_checksum)}});
    }
    if (o.verify) {
      std::ostringstream ignored;
      Status s = VerifyAll(d, ignored, true);
      j["verified"] = s.ok();
      if (!s.ok()) j["error"] = s.ToString();
      out << j.dump(2) << "\n";
      return s;
    }
    out << j.dump(2) << "\n";
    return Status::Ok();
  }
  out << "shard directory " << o.dir << "\n";
  out << Fmt("  %" PRIu64 " nodes, %" PRIu64 " undirected edges, %u features, %u %s\n", m.num_nodes, m.num_edges,
             m.feat_dim, m.num_classes, m.multi_label() ? "binary tasks (multi-label)" : "classes");
  out << "  features from " << m.feature_source.Describe() << "\n";
  out << Fmt("  %u clusters (seed %" PRId64 "), edge cut %" PRIu64 " (%.1f%%), zstd level %d\n", m.num_parts, m.seed,
             m.edge_cut, 100.0 * m.CutFraction(), m.zstd_level);
  out << Fmt("  largest cluster %" PRIu64 " nodes, %.3f x the mean (%.1f)\n", m.LargestCluster(), m.Balance(),
             m.num_parts ? static_cast<double>(m.num_nodes) / m.num_parts : 0.0);
  out << Fmt("  split '%s': %" PRIu64 " train, %" PRIu64 " valid, %" PRIu64 " test\n", m.split_name.c_str(),
             m.num_train, m.num_valid, m.num_test);
  out << "  input fingerprint " << Hex64(m.input_fingerprint) << " over " << m.input_bytes << " bytes in "
      << m.input_files.size() << " files\n\n";
  out << Fmt("  %-18s %9s %11s %11s %12s %12s %6s\n", "shard", "nodes", "intra", "inter", "raw bytes", "file bytes",
             "ratio");
  for (uint32_t k = 0; k < m.num_parts; ++k) {
    const ShardInfo& s = m.shards[k];
    out << Fmt("  %-18s %9u %11" PRIu64 " %11" PRIu64 " %12" PRIu64 " %12" PRIu64 " %6.2f\n", ShardFileName(k).c_str(),
               s.num_nodes, s.intra_entries, s.inter_entries, s.raw_bytes, s.file_size,
               static_cast<double>(s.raw_bytes) / static_cast<double>(std::max<uint64_t>(1, s.file_size)));
  }
  uint64_t intra = 0, inter = 0;
  for (const ShardInfo& s : m.shards) {
    intra += s.intra_entries;
    inter += s.inter_entries;
  }
  out << Fmt("  %-18s %9" PRIu64 " %11" PRIu64 " %11" PRIu64 " %12" PRIu64 " %12" PRIu64 " %6.2f\n", "total",
             m.num_nodes, intra, inter, raw, stored,
             static_cast<double>(raw) / static_cast<double>(std::max<uint64_t>(1, stored)));
  if (o.verify) {
    out << "\nverifying every checksum and invariant\n";
    CGCN_RETURN_IF_ERROR(VerifyAll(d, out, false));
    out << "OK: " << m.num_parts << " shards and the manifest verified\n";
  }
  return Status::Ok();
}

}  // namespace cgcn
