#include "core/block_cache.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "shrink/core/tensor.h"

namespace shrink {
namespace {

TEST(BlockCache, ClassSizesCoverTheRequestWithBoundedWaste) {
  for (size_t bytes = 1; bytes <= (size_t(8) << 20); bytes += bytes < 4096 ? 1 : 4093) {
    const size_t size = block_cache::class_size(bytes);
    ASSERT_GE(size, bytes);
    ASSERT_EQ(size % 64, 0u) << bytes;
    if (bytes > block_cache::kMaxCachedBytes && block_cache::caching()) ASSERT_LT(size - bytes, 4096u) << bytes;  // pages
    else if (bytes <= 256 || bytes > block_cache::kMaxCachedBytes) ASSERT_LT(size - bytes, 64u) << bytes;
    else ASSERT_LE(double(size), 1.25 * double(bytes) + 64) << bytes;
    ASSERT_EQ(block_cache::class_size(size), size) << "a class size is its own class: " << bytes;
  }
}

TEST(BlockCache, FreedBlockIsReusedForTheSameClassAndAligned) {
  std::byte* a = block_cache::take(1000);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  block_cache::give_back(a, 1000);
  std::byte* b = block_cache::take(1020);  // same class (1024)
  if (block_cache::caching()) {
    EXPECT_EQ(a, b);
  }
  std::byte* c = block_cache::take(1000);  // the cache is empty again: a fresh block
  EXPECT_NE(b, c);
  block_cache::give_back(b, 1020);
  block_cache::give_back(c, 1000);
}

// Blocks above kMaxCachedBytes are recycled whichever thread gives them back: a block of the size
// asked for first, else the latest idle one resized (its contents kept up to the smaller size), and
// the cache keeps at most kMaxLargeIdle idle bytes.
TEST(BlockCache, LargeBlocksAreRecycledAcrossThreads) {
  const size_t bytes = block_cache::kMaxCachedBytes + 12345, larger = bytes + (size_t(1) << 20);
  std::byte* a = block_cache::take(bytes);
  std::byte* c = block_cache::take(larger);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  for (size_t i = 0; i < larger; i += 4096) c[i] = std::byte{7};
  std::thread([&] {
    block_cache::give_back(a, bytes);
    block_cache::give_back(c, larger);  // the latest
  }).join();
  std::byte* b = block_cache::take(bytes);  // a, though c came back after it
  std::byte* resized = block_cache::take(bytes);  // c, shrunk to this size: its pages kept
  ASSERT_NE(resized, nullptr);
  if (block_cache::caching()) {
    EXPECT_EQ(b, a);
    for (size_t i = 0; i < bytes; i += 4096) ASSERT_EQ(resized[i], std::byte{7}) << i;
  }
  // More idle bytes than the cache keeps: the blocks given back first are released, the last kept.
  std::vector<std::byte*> many;
  const size_t count = block_cache::kMaxLargeIdle / block_cache::class_size(bytes) + 2;
  for (size_t i = 0; i < count; ++i) many.push_back(block_cache::take(bytes));
  for (std::byte* m : many) block_cache::give_back(m, bytes);
  std::byte* last = block_cache::take(bytes);
  if (block_cache::caching()) {
    EXPECT_EQ(last, many.back());
  }
  block_cache::give_back(last, bytes);
  block_cache::give_back(b, bytes);
  block_cache::give_back(resized, bytes);
}

TEST(BlockCache, ZeroedTensorsStayZeroAfterRecycling) {
  {
    Tensor dirty = Tensor::uninitialized(Shape{300}, DType::f32);
    float* d = dirty.mutable_data<float>();
    for (int i = 0; i < 300; ++i) d[i] = 7.f;
  }
  const Tensor clean = Tensor::empty(Shape{300}, DType::f32);  // likely the block just freed
  for (int i = 0; i < 300; ++i) ASSERT_EQ(clean.data<float>()[i], 0.f);
}

TEST(BlockCache, ABlockMadeOnOneThreadJoinsTheCacheOfTheThreadThatFreesIt) {
  Tensor made;
  std::thread([&] {
    made = Tensor::uninitialized(Shape{5000}, DType::f32);
    for (int i = 0; i < 5000; ++i) made.mutable_data<float>()[i] = float(i);
    for (int i = 0; i < 16; ++i) Tensor::empty(Shape{100 + i}, DType::f32);  // cached, freed at exit
  }).join();
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(made.data<float>()[i], float(i));
  const void* block = made.raw_data();
  made = Tensor();
  const Tensor again = Tensor::uninitialized(Shape{5000}, DType::f32);
  if (block_cache::caching()) {
    EXPECT_EQ(again.raw_data(), block);
  }
}

}  // namespace
}  // namespace shrink
