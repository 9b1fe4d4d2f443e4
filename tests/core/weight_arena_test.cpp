#include "core/weight_arena.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/memory_budget.h"
#include "shrink/core/error.h"

namespace shrink {
namespace {

bool aligned(const void* p, size_t to) { return reinterpret_cast<uintptr_t>(p) % to == 0; }

// Small blocks are cut one after another (64-byte aligned) from shared chunks, so the layouts of
// consecutive layers lie side by side; none overlaps another, and each keeps what was written.
TEST(WeightArena, SmallBlocksAreCutInOrderWithoutOverlap) {
  std::vector<weight_arena::Block> blocks;
  size_t next_to_chunk = 0, side_by_side = 0;
  for (int i = 0; i < 80; ++i) {  // 80 x ~450 KB: more than two chunks
    blocks.push_back(weight_arena::take(size_t(450000 + 100 * i)));
    const weight_arena::Block& b = blocks.back();
    ASSERT_TRUE(aligned(b.data(), 64));
    std::memset(b.data(), i + 1, b.size());
    if (i > 0) {
      const weight_arena::Block& before = blocks[size_t(i - 1)];
      if (b.data() == before.data() + (before.size() + 63) / 64 * 64) {
        ++side_by_side;
      } else {
        EXPECT_TRUE(aligned(b.data(), size_t(2) << 20)) << "a block not after the last starts a chunk";
        ++next_to_chunk;
      }
    }
  }
  EXPECT_GE(next_to_chunk, 1u);
  EXPECT_GE(side_by_side, 70u);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto* bytes = blocks[i].as<const uint8_t>();
    for (size_t j = 0; j < blocks[i].size(); j += 4093) ASSERT_EQ(bytes[j], uint8_t(i + 1)) << "block " << i;
    ASSERT_EQ(bytes[blocks[i].size() - 1], uint8_t(i + 1));
  }
}

TEST(WeightArena, ALargeBlockGetsAChunkOfItsOwnOnA2MbBoundary) {
  const weight_arena::Block small = weight_arena::take(1000);
  const weight_arena::Block large = weight_arena::take(weight_arena::kChunkBytes / 2 + 1);
  EXPECT_TRUE(aligned(large.data(), size_t(2) << 20));
  std::memset(large.data(), 7, large.size());
  const weight_arena::Block after = weight_arena::take(1000);  // still cut from the small one's chunk
  EXPECT_EQ(after.data(), small.data() + 1024);
}

TEST(WeightArena, BlocksCountInTheMemoryBudgetWhileTheyLive) {
  const uint64_t before = memory_budget::reserved_bytes();
  {
    const weight_arena::Block block = weight_arena::take(100000);
    EXPECT_EQ(memory_budget::reserved_bytes(), before + 100032);
    const weight_arena::Block copy = block;  // shares the lease
    EXPECT_EQ(memory_budget::reserved_bytes(), before + 100032);
  }
  EXPECT_EQ(memory_budget::reserved_bytes(), before);
  EXPECT_TRUE(weight_arena::take(0).empty());
  EXPECT_EQ(memory_budget::reserved_bytes(), before);
}

TEST(WeightArena, ABlockTheBudgetRefusesIsAnErrorAndReservesNothing) {
  const uint64_t before = memory_budget::reserved_bytes();
  memory_budget::set_available_for_testing(size_t(1) << 20);
  EXPECT_THROW(weight_arena::take(size_t(64) << 20), Error);
  memory_budget::set_available_for_testing(0);
  EXPECT_EQ(memory_budget::reserved_bytes(), before);
}

TEST(WeightArena, AnImpossibleSizeIsAnErrorAndReservesNothing) {
  const uint64_t before = memory_budget::reserved_bytes();
  EXPECT_THROW(weight_arena::take(~size_t(0) - 10), Error);  // would wrap when rounded up to 64
  EXPECT_EQ(memory_budget::reserved_bytes(), before);
}

TEST(WeightArena, TheHugePageModeIsOneTheKernelNames) {
  const std::string mode = weight_arena::transparent_huge_pages();
  EXPECT_TRUE(mode.empty() || mode == "always" || mode == "madvise" || mode == "never") << mode;
}

}  // namespace
}  // namespace shrink
