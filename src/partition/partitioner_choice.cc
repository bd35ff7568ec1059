#include "cgcn/partitioner_choice.h"

#include <cstdio>

#include "cgcn/byte_size.h"

namespace cgcn {

Result<PartitionerKind> ParsePartitionerKind(std::string_view name) {
  if (name == "auto") return PartitionerKind::kAuto;
  if (name == "metis") return PartitionerKind::kMetis;
  if (name == "external") return PartitionerKind::kExternal;
  return Status::InvalidArgument("--partitioner must be auto, metis or external, found '" + std::string(name) + "'");
}

const char* PartitionerName(PartitionerKind kind) {
  switch (kind) {
    case PartitionerKind::kAuto:
      return "auto";
    case PartitionerKind::kMetis:
      return "metis";
    case PartitionerKind::kExternal:
      return "external";
  }
  return "?";
}

uint64_t MetisNeedBytes(uint64_t num_nodes, uint64_t entries) {
  return static_cast<uint64_t>(static_cast<double>(MetisArrayBytes(num_nodes, entries)) *
                               (1.0 + kMetisWorkspaceFactor));
}

Result<PartitionerPlan> ChoosePartitioner(PartitionerKind requested, uint64_t num_nodes, uint64_t entries,
                                          uint64_t budget, uint64_t held_bytes, uint64_t machine_bytes) {
  PartitionerPlan plan;
  plan.metis_need_bytes = MetisNeedBytes(num_nodes, entries);
  const std::string need = "METIS needs about " + FormatBytes(plan.metis_need_bytes) + " (its arrays " +
                           FormatBytes(MetisArrayBytes(num_nodes, entries)) + " and a workspace of " +
                           [] {
                             char f[16];
                             std::snprintf(f, sizeof f, "%.0f", kMetisWorkspaceFactor);
                             return std::string(f);
                           }() +
                           " times them)";
  std::string idx_problem;
  if (entries > kMetisMaxEntries)
    idx_problem = std::to_string(entries / 2) + " undirected edges need " + std::to_string(entries) +
                  " adjacency entries, more than METIS's 32-bit idx_t can index (" + std::to_string(kMetisMaxEntries) +
                  "; Debian's libmetis is built with IDXTYPEWIDTH 32)";
  else if (num_nodes > kMetisMaxNodes)
    idx_problem = std::to_string(num_nodes) + " nodes exceed METIS's 32-bit idx_t (at most " +
                  std::to_string(kMetisMaxNodes) + ")";
  const uint64_t room = budget > held_bytes ? budget - held_bytes : 0;
  const std::string bound = budget != 0 ? "--mem-budget " + FormatBytes(budget) +
                                              (held_bytes ? " less " + FormatBytes(held_bytes) + " held beside it" : "")
                                        : "this machine's " + FormatBytes(machine_bytes) + " of RAM";
  const uint64_t limit = budget != 0 ? room : machine_bytes;
  switch (requested) {
    case PartitionerKind::kExternal:
      plan.kind = PartitionerKind::kExternal;
      plan.reason = "--partitioner external was requested";
      return plan;
    case PartitionerKind::kMetis:
      if (!idx_problem.empty()) return Status::Unsupported(idx_problem + "; use --partitioner external (or auto)");
      if (budget != 0 && plan.metis_need_bytes > room)
        return Status::InvalidArgument(need + ", more than " + bound +
                                       "; use --partitioner external (or auto), or a larger --mem-budget");
      plan.kind = PartitionerKind::kMetis;
      plan.reason = "--partitioner metis was requested; " + need;
      return plan;
    case PartitionerKind::kAuto:
      if (!idx_problem.empty()) {
        plan.kind = PartitionerKind::kExternal;
        plan.reason = "auto: " + idx_problem;
      } else if (limit != 0 && plan.metis_need_bytes > limit) {
        plan.kind = PartitionerKind::kExternal;
        plan.reason = "auto: " + need + ", more than " + bound;
      } else {
        plan.kind = PartitionerKind::kMetis;
        plan.reason = "auto: " + need + ", within " + bound;
      }
      return plan;
  }
  return Status::Internal("unknown partitioner kind");
}

}  // namespace cgcn
