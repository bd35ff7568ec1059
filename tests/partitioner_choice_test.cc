// Which partitioner cgcn-preprocess runs, and why: numbers worked by hand.
#include "cgcn/partitioner_choice.h"

#include <gtest/gtest.h>

namespace cgcn {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20, kGiB = uint64_t{1} << 30;

TEST(PartitionerChoice, ParsesTheThreeNames) {
  EXPECT_EQ(*ParsePartitionerKind("auto"), PartitionerKind::kAuto);
  EXPECT_EQ(*ParsePartitionerKind("metis"), PartitionerKind::kMetis);
  EXPECT_EQ(*ParsePartitionerKind("external"), PartitionerKind::kExternal);
  Result<PartitionerKind> bad = ParsePartitionerKind("METIS");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("auto, metis or external, found 'METIS'"), std::string::npos);
  for (PartitionerKind k : {PartitionerKind::kAuto, PartitionerKind::kMetis, PartitionerKind::kExternal})
    EXPECT_EQ(*ParsePartitionerKind(PartitionerName(k)), k);
}

TEST(PartitionerChoice, MetisBytesAreItsArraysTimesOnePlusTheFactor) {
  // products: N = 2,450,000, 2E = 123,965,230 -> xadj 9.8 MB + adjncy 495.9 MB + part 9.8 MB.
  EXPECT_EQ(MetisArrayBytes(2450000, 123965230), 4u * (2450001 + 123965230 + 2450000));
  EXPECT_EQ(MetisNeedBytes(10, 20), static_cast<uint64_t>(4 * (11 + 20 + 10) * (1 + kMetisWorkspaceFactor)));
}

TEST(PartitionerChoice, AutoRunsMetisWhenItFitsTheBudget) {
  // 1000 nodes, 10000 entries: arrays 4 * 12001 = 48,004 bytes; with the workspace 11x that.
  Result<PartitionerPlan> p = ChoosePartitioner(PartitionerKind::kAuto, 1000, 10000, kGiB, 1000, 0);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, PartitionerKind::kMetis);
  EXPECT_NE(p->reason.find("within --mem-budget 1.0 GiB"), std::string::npos) << p->reason;
}

TEST(PartitionerChoice, AutoRunsExternalWhenMetisExceedsTheBudget) {
  // The products-sized graph at --mem-budget 1G: METIS needs about 5.5 GiB.
  Result<PartitionerPlan> p = ChoosePartitioner(PartitionerKind::kAuto, 2450000, 123965230, kGiB, 2450000, 0);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, PartitionerKind::kExternal);
  EXPECT_GT(p->metis_need_bytes, 5 * kGiB);
  EXPECT_NE(p->reason.find("more than --mem-budget 1.0 GiB less"), std::string::npos) << p->reason;
  // What is held beside METIS counts: a budget that fits METIS alone but not METIS and the rest.
  const uint64_t need = MetisNeedBytes(1000, 10000);
  EXPECT_EQ(ChoosePartitioner(PartitionerKind::kAuto, 1000, 10000, need, 0, 0)->kind, PartitionerKind::kMetis);
  EXPECT_EQ(ChoosePartitioner(PartitionerKind::kAuto, 1000, 10000, need, 1, 0)->kind, PartitionerKind::kExternal);
}

TEST(PartitionerChoice, AutoWithoutABudgetComparesWithTheMachine) {
  const uint64_t need = MetisNeedBytes(1000, 10000);
  EXPECT_EQ(ChoosePartitioner(PartitionerKind::kAuto, 1000, 10000, 0, 0, need)->kind, PartitionerKind::kMetis);
  Result<PartitionerPlan> p = ChoosePartitioner(PartitionerKind::kAuto, 1000, 10000, 0, 0, need - 1);
  EXPECT_EQ(p->kind, PartitionerKind::kExternal);
  EXPECT_NE(p->reason.find("this machine's"), std::string::npos) << p->reason;
}

TEST(PartitionerChoice, PastTheThirtyTwoBitLimitOnlyExternal) {
  // 1.1 billion undirected edges: 2.2e9 entries > 2^31 - 1, whatever the budget.
  const uint64_t entries = 2200000000;
  Result<PartitionerPlan> p = ChoosePartitioner(PartitionerKind::kAuto, 50000000, entries, 0, 0, 0);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, PartitionerKind::kExternal);
  EXPECT_NE(p->reason.find("32-bit idx_t"), std::string::npos) << p->reason;
  // Exactly at the limit METIS can still take it.
  EXPECT_EQ(ChoosePartitioner(PartitionerKind::kAuto, 1000, kMetisMaxEntries - 1, 0, 0, 0)->kind,
            PartitionerKind::kMetis);
  Result<PartitionerPlan> forced = ChoosePartitioner(PartitionerKind::kMetis, 50000000, entries, 0, 0, 0);
  ASSERT_FALSE(forced.ok());
  EXPECT_EQ(forced.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(forced.status().message().find("--partitioner external"), std::string::npos);
}

TEST(PartitionerChoice, ExplicitMetisOverTheBudgetIsRefusedWithTheNumbers) {
  Result<PartitionerPlan> p = ChoosePartitioner(PartitionerKind::kMetis, 2450000, 123965230, kGiB, 0, 0);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("METIS needs about"), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("--mem-budget 1.0 GiB"), std::string::npos) << p.status().message();
  // Without a budget, an explicit metis is the user's call.
  EXPECT_EQ(ChoosePartitioner(PartitionerKind::kMetis, 2450000, 123965230, 0, 0, 64 * kMiB)->kind,
            PartitionerKind::kMetis);
  EXPECT_EQ(ChoosePartitioner(PartitionerKind::kExternal, 10, 20, 0, 0, 0)->kind, PartitionerKind::kExternal);
}

}  // namespace
}  // namespace cgcn
