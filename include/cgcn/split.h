// Split membership: one byte per node (and kNoLabel, the label of a node that has none), the same bits in memory, in
// shard files (section 'split') and in the raw reader's output. Shared by the raw reader, the shard layer, batches and
// the synthetic generator.
#pragma once

#include <cstdint>

namespace cgcn {

inline constexpr uint8_t kSplitTrain = 1;
inline constexpr uint8_t kSplitValid = 2;
inline constexpr uint8_t kSplitTest = 4;

// The label of an unlabeled node, in the raw reader's labels.u32, in memory and in shard files
// (section 'labels'). Such a node is in no split: it counts in no loss and no metric.
inline constexpr uint32_t kNoLabel = 0xFFFFFFFF;

// A multi-label node's tasks as bits: task t of a row of L tasks is bit t % 32 of its word t / 32;
// a row has LabelWords(L) u32 words and bits t >= L are 0. Multi-class (L = 0): no words. The
// same rows in the raw reader's label-bits.u32, in memory and in shard files (section 'labels').
constexpr uint32_t LabelWords(uint32_t label_tasks) { return (label_tasks + 31) / 32; }
constexpr bool LabelBit(const uint32_t* row, uint32_t task) { return (row[task / 32] >> (task % 32) & 1u) != 0; }

// "train", "valid" or "test" for one membership bit (also the split files' names,
// split/NAME/train.csv...); "none" for 0; nullptr for anything else (not a valid split byte).
constexpr const char* SplitName(uint8_t bits) {
  switch (bits) {
    case 0:
      return "none";
    case kSplitTrain:
      return "train";
    case kSplitValid:
      return "valid";
    case kSplitTest:
      return "test";
    default:
      return nullptr;
  }
}

}  // namespace cgcn
