#include "cgcn/fastrp.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "cgcn/mapped_file.h"
#include "util/fd.h"
#include "util/random.h"

namespace cgcn {
namespace {

constexpr uint64_t kDefaultBudget = uint64_t{64} << 20;
constexpr uint32_t kMaxDim = 1u << 20;
constexpr size_t kMaxWeights = 64;

// Removes the files it names when it goes out of scope.
struct RemoveFiles {
  std::vector<std::string> paths;
  ~RemoveFiles() {
    for (const std::string& p : paths) ::unlink(p.c_str());
  }
};

}  // namespace

Status ValidateFastRpParams(const FastRpParams& p) {
  if (p.dim == 0 || p.dim > kMaxDim)
    return Status::InvalidArgument("--fastrp-dim must be from 1 to " + std::to_string(kMaxDim) + ", found " +
                                   std::to_string(p.dim));
  if (p.weights.empty() || p.weights.size() > kMaxWeights)
    return Status::InvalidArgument("--fastrp-weights must list 1 to 64 iteration weights, found " +
                                   std::to_string(p.weights.size()));
  for (const float w : p.weights)
    if (!std::isfinite(w)) return Status::InvalidArgument("--fastrp-weights: every weight must be a finite number");
  if (std::all_of(p.weights.begin(), p.weights.end(), [](float w) { return w == 0.0f; }))
    return Status::InvalidArgument("--fastrp-weights: at least one weight must be non-zero");
  if (!std::isfinite(p.beta)) return Status::InvalidArgument("--fastrp-beta must be a finite number");
  if (!(p.sparsity == 0.0 || (p.sparsity >= 1.0 && std::isfinite(p.sparsity))))
    return Status::InvalidArgument("--fastrp-sparsity must be 0 (sqrt of the node count) or at least 1, found " +
                                   std::to_string(p.sparsity));
  return Status::Ok();
}

float FastRpProjectionEntry(uint64_t seed, double s, uint32_t dim, uint32_t v, uint32_t j) {
  const uint64_t u = SplitMix64(seed ^ SplitMix64(uint64_t{v} * dim + j));
  const double x = static_cast<double>(u >> 11) * 0x1.0p-53;
  const double half = 0.5 / s;
  if (x < half) return static_cast<float>(std::sqrt(s));
  if (x < 2 * half) return -static_cast<float>(std::sqrt(s));
  return 0.0f;
}

Result<FastRpReport> ComputeFastRp(const CsrView& g, const FastRpOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  FastRpReport rep;
  rep.params = o.params;
  FastRpParams& p = rep.params;
  CGCN_RETURN_IF_ERROR(ValidateFastRpParams(p));
  const uint64_t N = g.num_nodes;
  if (p.sparsity == 0.0) p.sparsity = std::max(1.0, std::sqrt(static_cast<double>(N)));
  const uint32_t d = p.dim, width = p.width();
  // Block buffers: a row of the new iterate (d floats) and one of the output (width floats).
  const uint64_t budget = o.mem_budget == 0 ? kDefaultBudget : o.mem_budget;
  const uint64_t row_bytes = 4 * (uint64_t{d} + width);
  if (budget < row_bytes)
    return Status::InvalidArgument("FastRP needs at least " + std::to_string(row_bytes) + " bytes for one row of " +
                                   std::to_string(d) + " + " + std::to_string(width) + " floats, the budget is " +
                                   std::to_string(budget));
  const uint64_t B = std::max<uint64_t>(1, std::min<uint64_t>(N, budget / row_bytes));
  rep.block_rows = B;
  const std::string iter_path[2] = {o.scratch_dir + "/fastrp-iterate-a.f32", o.scratch_dir + "/fastrp-iterate-b.f32"};
  RemoveFiles remove_iterates{{iter_path[0], iter_path[1]}};
  RemoveFiles remove_out{{o.out_path}};  // disarmed on success
  rep.scratch_bytes = 2 * N * d * 4;
  std::vector<float> next(B * d), out(B * width);
  auto report = [&](const std::string& phase, uint64_t done) {
    if (o.progress) o.progress(phase, done, N);
  };

  CGCN_ASSIGN_OR_RETURN(UniqueFd out_fd, CreateFileForWrite(o.out_path, CreateMode::kTruncate, 0600, true));
  // Pass 0: iterate 0 = diag(deg^beta) R.
  {
    CGCN_ASSIGN_OR_RETURN(UniqueFd fd, CreateFileForWrite(iter_path[0], CreateMode::kTruncate, 0600));
    for (uint64_t r0 = 0; r0 < N; r0 += B) {
      const uint64_t r1 = std::min(N, r0 + B);
      tbb::parallel_for(tbb::blocked_range<uint64_t>(r0, r1, 64), [&](const tbb::blocked_range<uint64_t>& r) {
        for (uint64_t v = r.begin(); v != r.end(); ++v) {
          const uint64_t deg = g.degree(static_cast<uint32_t>(v));
          const float scale = p.beta == 0.0f || deg == 0
                                  ? 1.0f
                                  : static_cast<float>(std::pow(static_cast<double>(deg), static_cast<double>(p.beta)));
          float* row = next.data() + (v - r0) * d;
          for (uint32_t j = 0; j < d; ++j)
            row[j] = scale * FastRpProjectionEntry(p.seed, p.sparsity, d, static_cast<uint32_t>(v), j);
        }
      });
      CGCN_RETURN_IF_ERROR(PwriteAll(fd.get(), iter_path[0], next.data(), (r1 - r0) * d * 4, r0 * d * 4));
    }
    CGCN_RETURN_IF_ERROR(fd.Close(iter_path[0]));
  }

  // Passes 1..k: iterate i = P iterate i-1; output += w_i rownorm(iterate i).
  const size_t k = p.weights.size();
  for (size_t i = 1; i <= k; ++i) {
    const std::string& prev_path = iter_path[(i - 1) % 2];
    const std::string& next_path = iter_path[i % 2];
    CGCN_ASSIGN_OR_RETURN(const MappedFile prev_map, MappedFile::Open(prev_path));
    if (prev_map.bytes().size() != N * d * 4)
      return Status::Internal(prev_path + ": " + std::to_string(prev_map.bytes().size()) + " bytes, expected " +
                              std::to_string(N * d * 4));
    const auto* prev = reinterpret_cast<const float*>(prev_map.bytes().data());
    UniqueFd next_fd;
    if (i < k) {
      CGCN_ASSIGN_OR_RETURN(next_fd, CreateFileForWrite(next_path, CreateMode::kTruncate, 0600));
    }
    const float w = p.weights[i - 1];
    const std::string phase = "fastrp iteration " + std::to_string(i);
    for (uint64_t r0 = 0; r0 < N; r0 += B) {
      const uint64_t r1 = std::min(N, r0 + B);
      const uint64_t rows = r1 - r0;
      if (i > 1 && w != 0.0f)
        CGCN_RETURN_IF_ERROR(PreadExact(out_fd.get(), o.out_path, out.data(), rows * width * 4, r0 * width * 4));
      tbb::parallel_for(tbb::blocked_range<uint64_t>(r0, r1, 64), [&](const tbb::blocked_range<uint64_t>& r) {
        for (uint64_t u = r.begin(); u != r.end(); ++u) {
          float* row = next.data() + (u - r0) * d;
          std::fill(row, row + d, 0.0f);
          const auto nbrs = g.row(static_cast<uint32_t>(u));
          for (const uint32_t v : nbrs) {
            const float* src = prev + uint64_t{v} * d;
            for (uint32_t j = 0; j < d; ++j) row[j] += src[j];
          }
          if (!nbrs.empty()) {
            const auto deg = static_cast<float>(nbrs.size());
            for (uint32_t j = 0; j < d; ++j) row[j] /= deg;
          }
          float* dst = out.data() + (u - r0) * width;
          if (i == 1) {
            std::fill(dst, dst + width, 0.0f);
            if (p.log_degree) dst[d] = static_cast<float>(std::log1p(static_cast<double>(nbrs.size())));
          }
          if (w == 0.0f) continue;
          double sq = 0;
          for (uint32_t j = 0; j < d; ++j) sq += static_cast<double>(row[j]) * row[j];
          if (sq == 0) continue;  // a zero row stays zero
          const auto f = static_cast<float>(static_cast<double>(w) / std::sqrt(sq));
          for (uint32_t j = 0; j < d; ++j) dst[j] += f * row[j];
        }
      });
      if (i < k) CGCN_RETURN_IF_ERROR(PwriteAll(next_fd.get(), next_path, next.data(), rows * d * 4, r0 * d * 4));
      if (i == 1 || w != 0.0f)
        CGCN_RETURN_IF_ERROR(PwriteAll(out_fd.get(), o.out_path, out.data(), rows * width * 4, r0 * width * 4));
      prev_map.ReleaseResident();
      report(phase, r1);
    }
    if (i < k) CGCN_RETURN_IF_ERROR(next_fd.Close(next_path));
  }
  // The iterates are no longer needed: give their disk back before the standardization pass.
  remove_iterates.paths.clear();
  for (const std::string& path : iter_path) ::unlink(path.c_str());

  if (p.standardize) {
    // Column sums in row order; threads split the columns, so every sum has one fixed order.
    std::vector<double> sum(width, 0.0), sumsq(width, 0.0);
    for (uint64_t r0 = 0; r0 < N; r0 += B) {
      const uint64_t rows = std::min(N, r0 + B) - r0;
      CGCN_RETURN_IF_ERROR(PreadExact(out_fd.get(), o.out_path, out.data(), rows * width * 4, r0 * width * 4));
      tbb::parallel_for(tbb::blocked_range<uint32_t>(0, width, 16), [&](const tbb::blocked_range<uint32_t>& c) {
        for (uint64_t r = 0; r < rows; ++r)
          for (uint32_t j = c.begin(); j != c.end(); ++j) {
            const double x = out[r * width + j];
            sum[j] += x;
            sumsq[j] += x * x;
          }
      });
    }
    std::vector<double> mean(width), inv_sd(width);
    for (uint32_t j = 0; j < width; ++j) {
      mean[j] = sum[j] / static_cast<double>(N);
      const double var = std::max(0.0, sumsq[j] / static_cast<double>(N) - mean[j] * mean[j]);
      inv_sd[j] = var > 0 ? 1.0 / std::sqrt(var) : 0.0;  // a constant column becomes 0
    }
    for (uint64_t r0 = 0; r0 < N; r0 += B) {
      const uint64_t rows = std::min(N, r0 + B) - r0;
      CGCN_RETURN_IF_ERROR(PreadExact(out_fd.get(), o.out_path, out.data(), rows * width * 4, r0 * width * 4));
      for (uint64_t r = 0; r < rows; ++r)
        for (uint32_t j = 0; j < width; ++j) {
          float& x = out[r * width + j];
          x = static_cast<float>((static_cast<double>(x) - mean[j]) * inv_sd[j]);
        }
      CGCN_RETURN_IF_ERROR(PwriteAll(out_fd.get(), o.out_path, out.data(), rows * width * 4, r0 * width * 4));
      report("fastrp standardize", r0 + rows);
    }
  }
  CGCN_RETURN_IF_ERROR(out_fd.Close(o.out_path));
  remove_out.paths.clear();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace cgcn
