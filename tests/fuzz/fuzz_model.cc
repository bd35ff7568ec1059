// libFuzzer target: LoadModel on arbitrary bytes (written to a file in the process's scratch
// directory), as given and with the trailing checksum repaired (fuzz_util.h says why).
// It must never crash, leak or allocate for dimensions the file does not hold; a refusal is a
// kCorruption naming the file. Whatever it accepts must follow docs/FORMAT.md ("Model file") field
// by field (checked here against the bytes, not through the loader's own code), must be written
// back by SaveModel as the very same bytes, and must run a training forward and backward pass.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "cgcn/model_file.h"
#include "cgcn/sparse.h"
#include "fuzz/fuzz_files.h"
#include "fuzz/fuzz_util.h"

namespace cgcn::fuzz {
namespace {

uint32_t U32At(std::span<const std::byte> b, size_t offset) {
  uint32_t v;
  std::memcpy(&v, b.data() + offset, 4);
  return v;
}

// A 3-node path graph, GCN-normalized: enough to run every layer of any loaded model.
struct PathGraph {
  std::vector<uint32_t> offsets{0, 1, 3, 4}, columns{1, 0, 2, 1};
  std::vector<float> weights = std::vector<float>(4), self_weights = std::vector<float>(3);
  PathGraph() { GcnNormalize(offsets, columns, weights, self_weights); }
  SparseRows Rows() const { return SparseRows{offsets, columns, weights, self_weights, 0}; }
};

void CheckAccepted(Gcn& model, const FeatureNorm& norm, std::span<const std::byte> bytes) {
  const GcnConfig& c = model.config();
  // docs/FORMAT.md: version 1: 48-byte header, K f32 parameters, u64 checksum; version 2: 80-byte
  // header (layer kind, diag lambda, residual, norm, heads, reserved, B), K f32 parameters, B f32
  // buffers, checksum.
  // dims F, hidden x (L-1), C.
  const uint32_t version = U32At(bytes, 8);
  CGCN_FUZZ_CHECK(std::memcmp(bytes.data(), "CGCNMODL", 8) == 0 && (version == 1 || version == 2));
  CGCN_FUZZ_CHECK(U32At(bytes, 12) == c.in_dim && U32At(bytes, 16) == c.hidden && U32At(bytes, 20) == c.out_dim &&
                  U32At(bytes, 24) == c.layers);
  CGCN_FUZZ_CHECK(c.in_dim >= 1 && c.hidden >= 1 && c.out_dim >= 1 && c.layers >= 1);
  CGCN_FUZZ_CHECK(std::memcmp(bytes.data() + 28, &c.dropout, 4) == 0 && c.dropout >= 0.0f && c.dropout <= 1.0f);
  CGCN_FUZZ_CHECK(U32At(bytes, 32) == static_cast<uint32_t>(norm.kind) && U32At(bytes, 36) == 0);
  CGCN_FUZZ_CHECK(U32At(bytes, 32) <= (version == 1 ? 1u : 2u));
  const size_t header = version == 2 ? 80 : 48;
  uint64_t b = 0;
  if (version == 2) {
    CGCN_FUZZ_CHECK(U32At(bytes, 48) == static_cast<uint32_t>(c.kind) && U32At(bytes, 48) <= 3);
    CGCN_FUZZ_CHECK(std::memcmp(bytes.data() + 52, &c.diag_lambda, 4) == 0 && std::isfinite(c.diag_lambda));
    CGCN_FUZZ_CHECK(U32At(bytes, 56) == (c.residual ? 1u : 0u));
    CGCN_FUZZ_CHECK(U32At(bytes, 60) == static_cast<uint32_t>(c.norm) && U32At(bytes, 60) <= 2);
    CGCN_FUZZ_CHECK(U32At(bytes, 64) == c.heads && c.heads >= 1 && c.heads <= 64 &&
                    (c.kind == LayerKind::kGat ? c.hidden % c.heads == 0 : c.heads == 1));
    CGCN_FUZZ_CHECK(U32At(bytes, 68) == 0);
    b = ReadU64(bytes.data() + 72);
  } else {
    CGCN_FUZZ_CHECK(c.Plain());
  }
  // K: per layer W and b, W_root for cluster-gcn and sage, a_src and a_dst for gat, gamma and beta
  // for normalized hidden layers; B: running mean and variance for batch-normalized hidden layers.
  const bool root = c.kind == LayerKind::kClusterGcn || c.kind == LayerKind::kSage;
  const bool gat = c.kind == LayerKind::kGat;
  uint64_t k = 0, expected_b = 0;
  for (uint32_t l = 0; l < c.layers; ++l) {
    const uint64_t in = l == 0 ? c.in_dim : c.hidden, out = l + 1 == c.layers ? c.out_dim : c.hidden;
    k += in * out * (root ? 2 : 1) + out + (gat ? 2 * out : 0);
    if (c.norm != NormKind::kNone && l + 1 < c.layers) {
      k += 2 * out;
      if (c.norm == NormKind::kBatch) expected_b += 2 * out;
    }
  }
  CGCN_FUZZ_CHECK(model.params().size() == k && ReadU64(bytes.data() + 40) == k);
  CGCN_FUZZ_CHECK(model.buffers().size() == b && b == expected_b);
  // Feature standardization (normalization 2): F means and F inverse deviations, all finite.
  const uint64_t norm_floats = norm.kind == FeatureNormKind::kStandard ? 2 * uint64_t{c.in_dim} : 0;
  CGCN_FUZZ_CHECK(norm.mean.size() + norm.inv_std.size() == norm_floats);
  CGCN_FUZZ_CHECK(bytes.size() == header + 4 * (k + b + norm_floats) + 8);
  CGCN_FUZZ_CHECK(std::memcmp(bytes.data() + header, model.params().data(), 4 * k) == 0);
  CGCN_FUZZ_CHECK(b == 0 || std::memcmp(bytes.data() + header + 4 * k, model.buffers().data(), 4 * b) == 0);
  for (float p : model.params()) CGCN_FUZZ_CHECK(std::isfinite(p));
  for (float v : model.buffers()) CGCN_FUZZ_CHECK(std::isfinite(v));

  // Written back (always version 2), it is the same file; a version 1 file gains the 32 bytes of
  // layer fields (gcn, 0, 0, none, 1 head, 0, B = 0) and keeps every other byte after the version.
  const std::string again = ScratchDir() + "/again.model";
  CGCN_FUZZ_CHECK(SaveModel(again, model, norm).ok());
  const std::vector<std::byte> written = ReadBytes(again);
  if (version == 2) {
    CGCN_FUZZ_CHECK(written.size() == bytes.size() && std::memcmp(written.data(), bytes.data(), bytes.size()) == 0);
  } else {
    CGCN_FUZZ_CHECK(written.size() == bytes.size() + 32 &&
                    std::memcmp(written.data() + 12, bytes.data() + 12, 36) == 0 &&
                    std::memcmp(written.data() + 80, bytes.data() + 48, bytes.size() - 56) == 0);
  }

  // It runs (dropout as stored, then the gradient of the sum of the logits).
  static const PathGraph graph;
  RowMatrix x(3, c.in_dim);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(i % 5) * 0.25f;
  const ConstMatrixMap xmap(x.data(), x.rows(), x.cols());
  const ConstMatrixMap logits = model.Forward(graph.Rows(), xmap, /*training=*/true, /*dropout_seed=*/7);
  CGCN_FUZZ_CHECK(logits.rows() == 3 && logits.cols() == c.out_dim);
  RowMatrix grad = RowMatrix::Ones(3, c.out_dim);
  model.ZeroGrad();
  model.Backward(graph.Rows(), xmap, ConstMatrixMap(grad.data(), grad.rows(), grad.cols()));
}

void LoadOne(std::span<const std::byte> bytes) {
  const std::string path = ScratchDir() + "/input.model";
  WriteBytes(path, bytes);
  FeatureNorm norm;
  Result<Gcn> m = LoadModel(path, &norm);
  if (!m.ok()) {
    CGCN_FUZZ_CHECK(m.status().code() == StatusCode::kCorruption);
    CGCN_FUZZ_CHECK(StartsWith(m.status().message(), path + ": "));
    return;
  }
  CheckAccepted(*m, norm, bytes);
}

}  // namespace
}  // namespace cgcn::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  cgcn::fuzz::LoadOne(std::span(bytes, size));
  if (size >= 8) {
    std::vector<std::byte> repaired(bytes, bytes + size);
    cgcn::fuzz::RepairTrailingChecksum(repaired);
    cgcn::fuzz::LoadOne(repaired);
  }
  return 0;
}
