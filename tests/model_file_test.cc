// Model files and checkpoints (docs/FORMAT.md): what SaveModel / SaveCheckpoint write loads back
// exactly, and a file that breaks the format is refused with kCorruption naming the file and the
// byte offset of the field, before anything is allocated for sizes the file does not hold.
// (Found by tests/fuzz/fuzz_model and fuzz_checkpoint; see docs/RELIABILITY.md, "Fuzzing".)
#include "cgcn/model_file.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "cgcn/checkpoint.h"
#include "cgcn/checksum.h"
#include "testutil/testutil.h"

namespace cgcn {
namespace {

void PutU32(std::string& b, size_t offset, uint32_t v) { std::memcpy(b.data() + offset, &v, 4); }
void PutU64(std::string& b, size_t offset, uint64_t v) { std::memcpy(b.data() + offset, &v, 8); }
void PutF32(std::string& b, size_t offset, float v) { std::memcpy(b.data() + offset, &v, 4); }
// The last 8 bytes of a model file or checkpoint are the checksum of the rest.
void RepairChecksum(std::string& b) { PutU64(b, b.size() - 8, Checksum64(b.data(), b.size() - 8)); }

class ModelFileTest : public testing::Test {
 protected:
  // A saved model: 3 inputs, 2 layers of 4 hidden units, 2 outputs (26 parameters).
  std::string SavedModel(bool row_normalize = true) {
    const Gcn model(GcnConfig{3, 4, 2, 2, 0.5f}, 7);
    EXPECT_TRUE(SaveModel(path_, model, row_normalize ? FeatureNorm::Row() : FeatureNorm::None()).ok());
    return testutil::ReadFile(path_);
  }
  // Writes `bytes` (checksum repaired) and loads it: the status.
  Status Load(std::string bytes) {
    RepairChecksum(bytes);
    testutil::WriteFile(path_, bytes);
    FeatureNorm norm;
    return LoadModel(path_, &norm).status();
  }
  void ExpectRefused(const std::string& bytes, const std::string& where) {
    const Status s = Load(bytes);
    ASSERT_FALSE(s.ok()) << where;
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
    EXPECT_EQ(s.message().rfind(path_ + ": " + where, 0), 0u) << s.message();
  }
  testutil::TempDir tmp_;
  std::string path_ = tmp_.Join("model.cgcn");
};

TEST_F(ModelFileTest, SavedModelLoadsBackExactly) {
  FeatureNorm standard;
  standard.kind = FeatureNormKind::kStandard;
  standard.mean = {0.5f, -1.25f, 3.0f, 0.0f, 7.5f};
  standard.inv_std = {1.0f, 0.5f, 2.0f, 1.0f, 0.125f};
  for (const FeatureNorm& norm : {FeatureNorm::Row(), FeatureNorm::None(), standard}) {
    const Gcn model(GcnConfig{5, 6, 3, 3, 0.25f}, 11);
    ASSERT_TRUE(SaveModel(path_, model, norm).ok());
    FeatureNorm loaded_norm;
    loaded_norm.kind = FeatureNormKind::kStandard;
    Result<Gcn> loaded = LoadModel(path_, &loaded_norm);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_EQ(loaded_norm.kind, norm.kind);
    EXPECT_EQ(loaded_norm.mean, norm.mean);
    EXPECT_EQ(loaded_norm.inv_std, norm.inv_std);
    // The statistics follow the parameters (no buffers without batch norm): 80 + 4 K + 8 F + 8 bytes.
    EXPECT_EQ(testutil::FileSize(path_),
              80 + 4 * model.params().size() + (norm.kind == FeatureNormKind::kStandard ? 40 : 0) + 8);
    EXPECT_EQ(loaded->config().in_dim, 5u);
    EXPECT_EQ(loaded->config().hidden, 6u);
    EXPECT_EQ(loaded->config().out_dim, 3u);
    EXPECT_EQ(loaded->config().layers, 3u);
    EXPECT_EQ(loaded->config().dropout, 0.25f);
    ASSERT_EQ(loaded->params().size(), model.params().size());
    EXPECT_EQ(std::memcmp(loaded->params().data(), model.params().data(), model.params().size() * 4), 0);
  }
}

// The dimensions are checked against K and the file size before the model is built: a 160-byte
// file claiming 2^24 inputs and 2^16 hidden units (4.4 TB of parameters) used to reach the Gcn
// constructor, which threw std::bad_alloc (or, under ASan, aborted on the allocation size).
TEST_F(ModelFileTest, HugeDimensionsAreRefusedBeforeAllocating) {
  std::string b = SavedModel();
  PutU32(b, 12, 1u << 24);  // inputs
  PutU32(b, 16, 1u << 16);  // hidden units
  PutU32(b, 20, 1u << 16);  // outputs
  ExpectRefused(b, "byte 40: parameter count 26 does not match the dimensions");
  // Even with K matching the dimensions, the file must hold the parameters.
  const uint64_t k = (uint64_t{1} << 40) + (uint64_t{1} << 16) + (uint64_t{1} << 32) + (uint64_t{1} << 16);
  PutU64(b, 40, k);
  ExpectRefused(b, "byte 80: expected " + std::to_string(k) + " parameters");
}

TEST_F(ModelFileTest, FieldsOutsideTheFormatAreRefusedAtTheirOffset) {
  const std::string good = SavedModel();
  ASSERT_TRUE(Load(good).ok());
  std::string b = good;
  PutU32(b, 8, 3);
  ExpectRefused(b, "byte 8: unsupported model version 3, expected 1 or 2");
  b = good;
  PutU32(b, 12, 0);
  ExpectRefused(b, "byte 12: input dimension 0 out of range");
  b = good;
  PutU32(b, 24, 65);
  ExpectRefused(b, "byte 24: layer count 65 out of range");
  // These four used to be accepted.
  b = good;
  PutF32(b, 28, std::numeric_limits<float>::quiet_NaN());
  ExpectRefused(b, "byte 28: dropout");
  b = good;
  PutF32(b, 28, 1.5f);
  ExpectRefused(b, "byte 28: dropout");
  b = good;
  PutU32(b, 32, 3);
  ExpectRefused(b, "byte 32: feature normalization 3, expected 0 (none), 1 (row) or 2 (standard)");
  // Standardization without its statistics: the size no longer fits.
  b = good;
  PutU32(b, 32, 2);
  ExpectRefused(b,
                "byte 80: expected 26 parameters, the feature standardization and the checksum (136 bytes), "
                "found 112 bytes");
  b = good;
  PutU32(b, 36, 1);
  ExpectRefused(b, "byte 36: reserved field 1, expected 0");
  b = good;
  PutF32(b, 80 + 4 * 5, std::numeric_limits<float>::infinity());
  ExpectRefused(b, "byte 100: parameter 5 is not finite");
  // K and the size.
  b = good;
  PutU64(b, 40, 27);
  ExpectRefused(b,
                "byte 40: parameter count 27 does not match the dimensions (3 inputs, 2 gcn layers of 4 hidden "
                "units, 2 outputs: 26 parameters)");
  b = good;
  b.insert(b.size() - 8, 4, '\0');
  ExpectRefused(b, "byte 80: expected 26 parameters and the checksum (112 bytes), found 116 bytes");
  // Version 2's layer fields.
  b = good;
  PutU32(b, 48, 4);
  ExpectRefused(b, "byte 48: layer kind 4, expected 0 (gcn), 1 (cluster-gcn), 2 (sage) or 3 (gat)");
  b = good;
  PutF32(b, 52, std::numeric_limits<float>::quiet_NaN());
  ExpectRefused(b, "byte 52: diag lambda is not finite");
  b = good;
  PutU32(b, 56, 2);
  ExpectRefused(b, "byte 56: residual flag 2, expected 0 or 1");
  b = good;
  PutU32(b, 60, 3);
  ExpectRefused(b, "byte 60: norm 3, expected 0 (none), 1 (layer) or 2 (batch)");
  b = good;
  PutU64(b, 72, 8);
  ExpectRefused(b, "byte 72: buffer count 8 does not match the layers (0 running statistics)");
  b = good;
  PutU32(b, 64, 2);
  ExpectRefused(b, "byte 64: heads 2, expected 1 for this layer kind");
  b = good;
  PutU32(b, 48, 3);  // gat with 4 hidden units
  PutU32(b, 64, 3);
  ExpectRefused(b, "byte 64: heads 3, expected 1 to 64 dividing the 4 hidden units");
  b = good;
  PutU32(b, 68, 1);
  ExpectRefused(b, "byte 68: reserved field 1, expected 0");
  // A different kind changes the parameter count the dimensions give (sage adds W_root).
  b = good;
  PutU32(b, 48, 2);
  ExpectRefused(b, "byte 40: parameter count 26 does not match the dimensions (3 inputs, 2 sage layers");
}

// Version 2 keeps the layer kind, its options and the buffers: a model loads back as saved.
TEST_F(ModelFileTest, LayerKindsNormAndBuffersLoadBackExactly) {
  for (LayerKind kind : {LayerKind::kGcn, LayerKind::kClusterGcn, LayerKind::kSage, LayerKind::kGat})
    for (NormKind norm : {NormKind::kNone, NormKind::kLayer, NormKind::kBatch}) {
      GcnConfig c{5, 6, 3, 3, 0.25f};
      c.kind = kind;
      c.heads = kind == LayerKind::kGat ? 3 : 1;
      c.diag_lambda = kind == LayerKind::kClusterGcn ? 0.5f : 0.0f;
      c.residual = norm != NormKind::kLayer;
      c.norm = norm;
      Gcn model(c, 11);
      for (size_t i = 0; i < model.buffers().size(); ++i) model.buffers()[i] = 0.25f * static_cast<float>(i % 7);
      ASSERT_TRUE(SaveModel(path_, model, FeatureNorm::Row()).ok());
      const std::string bytes = testutil::ReadFile(path_);
      EXPECT_EQ(bytes.size(), 80 + 4 * (model.params().size() + model.buffers().size()) + 8);
      FeatureNorm feature_norm = FeatureNorm::None();
      Result<Gcn> loaded = LoadModel(path_, &feature_norm);
      EXPECT_EQ(feature_norm.kind, FeatureNormKind::kRow);
      ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
      const GcnConfig& l = loaded->config();
      EXPECT_EQ(l.kind, kind);
      EXPECT_EQ(l.diag_lambda, c.diag_lambda);
      EXPECT_EQ(l.residual, c.residual);
      EXPECT_EQ(l.norm, norm);
      EXPECT_EQ(l.heads, c.heads);
      ASSERT_EQ(loaded->params().size(), model.params().size());
      EXPECT_EQ(std::memcmp(loaded->params().data(), model.params().data(), model.params().size() * 4), 0);
      ASSERT_EQ(loaded->buffers().size(), model.buffers().size());
      EXPECT_EQ(loaded->buffers().size(), norm == NormKind::kBatch ? 2u * 2 * 6 : 0u);
      EXPECT_TRUE(std::equal(model.buffers().begin(), model.buffers().end(), loaded->buffers().begin()));
    }
  // A negative running variance is refused at its byte.
  GcnConfig c{3, 4, 2, 2, 0.5f};
  c.norm = NormKind::kBatch;
  ASSERT_TRUE(SaveModel(path_, Gcn(c, 1), FeatureNorm::Row()).ok());
  std::string b = testutil::ReadFile(path_);
  const size_t params = Gcn::ParamCount(c);  // then mean [4], var [4]
  PutF32(b, 80 + 4 * (params + 5), -1.0f);
  ExpectRefused(b, "byte " + std::to_string(80 + 4 * (params + 5)) + ": buffer 5 (a running variance) is negative");
}

// Batch norm buffers and feature standardization in one file: the statistics follow the buffers.
TEST_F(ModelFileTest, BuffersThenStandardizationLoadBack) {
  GcnConfig c{3, 4, 2, 3, 0.5f};
  c.norm = NormKind::kBatch;
  Gcn model(c, 5);
  for (size_t i = 0; i < model.buffers().size(); ++i) model.buffers()[i] = 1.0f + static_cast<float>(i);
  FeatureNorm stats{FeatureNormKind::kStandard, {0.5f, -1.0f, 2.0f}, {1.0f, 0.25f, 4.0f}};
  ASSERT_TRUE(SaveModel(path_, model, stats).ok());
  std::string b = testutil::ReadFile(path_);
  const size_t k = model.params().size(), nb = model.buffers().size();
  ASSERT_EQ(nb, 2u * 2 * 4);
  ASSERT_EQ(b.size(), 80 + 4 * (k + nb + 6) + 8);
  FeatureNorm back;
  Result<Gcn> loaded = LoadModel(path_, &back);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_TRUE(std::equal(model.buffers().begin(), model.buffers().end(), loaded->buffers().begin()));
  EXPECT_EQ(back.kind, FeatureNormKind::kStandard);
  EXPECT_EQ(back.mean, stats.mean);
  EXPECT_EQ(back.inv_std, stats.inv_std);
  // The first mean sits right after the buffers.
  PutF32(b, 80 + 4 * (k + nb), std::numeric_limits<float>::quiet_NaN());
  ExpectRefused(b, "byte " + std::to_string(80 + 4 * (k + nb)) + ": feature mean 0 is not finite");
  // Standardization is refused in a version 1 file, which had only a 0/1 flag at byte 32.
  std::string v1 = SavedModel(false);
  v1.erase(48, 32);
  PutU32(v1, 8, 1);
  PutU32(v1, 32, 2);
  ExpectRefused(v1, "byte 32: feature normalization 2, expected 0 (none) or 1 (row) in a version 1 file");
}

// A version 1 file (written before layer kinds: a 48-byte header, then the parameters) loads as
// a plain GCN with the same parameters.
TEST_F(ModelFileTest, VersionOneLoadsAsGcn) {
  const Gcn model(GcnConfig{3, 4, 2, 2, 0.5f}, 7);
  std::string v1 = SavedModel(false);
  v1.erase(48, 32);  // the version 2 fields
  PutU32(v1, 8, 1);
  ASSERT_EQ(v1.size(), 48 + 4 * 26 + 8u);
  ASSERT_TRUE(Load(v1).ok());
  FeatureNorm norm = FeatureNorm::Row();
  Result<Gcn> loaded = LoadModel(path_, &norm);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(norm.kind, FeatureNormKind::kNone);
  EXPECT_TRUE(loaded->config().Plain());
  EXPECT_EQ(std::memcmp(loaded->params().data(), model.params().data(), 26 * 4), 0);
  // Its offsets are version 1's: a bad parameter is named at 48 + 4 i.
  PutF32(v1, 48 + 4 * 5, std::numeric_limits<float>::infinity());
  ExpectRefused(v1, "byte 68: parameter 5 is not finite");
}

TEST(CheckpointFile, SavedCheckpointLoadsBackExactly) {
  testutil::TempDir tmp;
  Checkpoint c;
  c.signature = "q=1 layers=2";
  c.epoch = 3;
  c.next_batch = 1;
  c.step = 9;
  c.loss_sum = 2.5;
  c.loss_count = 4;
  c.params = {1, 2, 3};
  c.adam_m = {4, 5, 6};
  c.adam_v = {7, 8, 9};
  c.buffers = {10, 11};
  ASSERT_TRUE(SaveCheckpoint(tmp.path(), c).ok());
  Result<Checkpoint> back = LoadCheckpoint(tmp.path());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->signature, c.signature);
  EXPECT_EQ(back->epoch, 3u);
  EXPECT_EQ(back->next_batch, 1u);
  EXPECT_EQ(back->step, 9u);
  EXPECT_EQ(back->loss_sum, 2.5);
  EXPECT_EQ(back->loss_count, 4u);
  EXPECT_EQ(back->params, c.params);
  EXPECT_EQ(back->adam_m, c.adam_m);
  EXPECT_EQ(back->adam_v, c.adam_v);
  EXPECT_EQ(back->buffers, c.buffers);
}

// A checkpoint without parameters (K = 0) loads: the loader used to pass the empty arrays' null
// data() to memcpy, undefined behaviour that UBSan reports (scripts/sanitize.sh runs this test
// under it). Found by tests/fuzz/fuzz_checkpoint.
TEST(CheckpointFile, NoParametersLoads) {
  testutil::TempDir tmp;
  Checkpoint c;
  c.signature = "";
  ASSERT_TRUE(SaveCheckpoint(tmp.path(), c).ok());
  Result<Checkpoint> back = LoadCheckpoint(tmp.path());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->params.empty() && back->adam_m.empty() && back->adam_v.empty() && back->signature.empty());
}

// K is checked against the file size before the three arrays are allocated.
TEST(CheckpointFile, ParameterCountBeyondTheFileIsRefused) {
  testutil::TempDir tmp;
  Checkpoint c;
  c.signature = "s";
  c.params = c.adam_m = c.adam_v = {1.0f};
  ASSERT_TRUE(SaveCheckpoint(tmp.path(), c).ok());
  const std::string path = tmp.path() + "/" + kCheckpointFileName;
  std::string b = testutil::ReadFile(path);
  PutU64(b, 48, uint64_t{1} << 32);
  RepairChecksum(b);
  testutil::WriteFile(path, b);
  Result<Checkpoint> back = LoadCheckpoint(tmp.path());
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(back.status().message(), path +
                                         ": byte 48: 4294967296 parameters, 0 buffers and a 1-byte signature do "
                                         "not fit the file's 181 bytes");
}

// Version 2 keeps the plateau schedule's and model selection's state, best parameters included.
TEST(CheckpointFile, ScheduleAndSelectionStateLoadBack) {
  testutil::TempDir tmp;
  Checkpoint c;
  c.signature = "sig";
  c.params = c.adam_m = c.adam_v = {1.0f, 2.0f, 3.0f};
  c.plateau = PlateauState{0.0025f, 0.75, 3, true};
  c.best_epoch = 17;
  c.evals_without_progress = 2;
  c.best_metrics = {0.9, 0.8, 0.7, 0.1, 0.2, 0.3};
  c.best_params = {4.0f, 5.0f, 6.0f};
  c.buffers = {7.0f};
  c.best_buffers = {8.0f};
  ASSERT_TRUE(SaveCheckpoint(tmp.path(), c).ok());
  Result<Checkpoint> back = LoadCheckpoint(tmp.path());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->plateau.lr, 0.0025f);
  EXPECT_EQ(back->plateau.best, 0.75);
  EXPECT_EQ(back->plateau.bad, 3u);
  EXPECT_TRUE(back->plateau.seen);
  EXPECT_EQ(back->best_epoch, 17u);
  EXPECT_EQ(back->evals_without_progress, 2u);
  EXPECT_EQ(back->best_metrics, c.best_metrics);
  EXPECT_EQ(back->best_params, c.best_params);
  EXPECT_EQ(back->buffers, c.buffers);
  EXPECT_EQ(back->best_buffers, c.best_buffers);
  // Best parameters of another length are refused.
  const std::string path = tmp.path() + "/" + kCheckpointFileName;
  std::string b = testutil::ReadFile(path);
  PutU64(b, b.size() - 8 - 4 - 12 - 8, 2);  // the best parameter count says 2; 3 follow (and 1 buffer)
  RepairChecksum(b);
  testutil::WriteFile(path, b);
  Result<Checkpoint> bad = LoadCheckpoint(tmp.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), path + ": best parameter count 2, expected 0 or 3");
}

}  // namespace
}  // namespace cgcn
