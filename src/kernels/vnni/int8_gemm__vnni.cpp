// The u8 x s8 GEMM with AVX512-VNNI: 6 rows x 4 panels (64 channels) per tile, one vpdpbusd per
// row, panel and group of 4 bytes (int8_tile_vnni.h). Threads take ranges of 4-panel blocks, or
// of row tiles when the weights fit in L2 (below); rows go in blocks that stay in L2, and k in
// blocks of 512 bytes where L1 holds 48 KB or more: a 4-panel block's slice of the weights
// (4 x 128 groups x 64 bytes = 32 KB) then stays in L1 while every 6-row tile of the row block
// passes over it, the tiles' s32 sums waiting in a per-thread buffer between k blocks.
// Walking all of k per tile had read the panel block from L2 again for every tile (64 KB at
// K = 1024, 256 KB at K = 4096); on the 2-core VNNI host (no AMX) the k blocks ran 1.16-1.24x
// faster at 1024^3 and 1.18-1.27x at 64 and 256 x 4096^2 (alternating in one process, 2 threads;
// 192 groups a block was slower again, the slice no longer fitting L1 beside the rows).
// In the last k block each tile writes its outputs as soon as its sums are complete. Finishing
// the whole row block after its last k block had written C column block by column block in one
// burst (1024 rows x 256 bytes, each row in another page) with nothing to overlap it: at 1024^3
// one thread ran ~12% faster with no epilogue at all; finishing tile by tile ran 1.02-1.15x
// faster than the burst (alternating A/B; prefetchw of a tile's C lines before its last block
// gained nothing).
// With whole-k tiles (a 32 KB L1, or one tile of rows) the first tile of each 4-panel block read
// its weights from DRAM at 1.2-1.7x the time of the tiles after it, which find them in L2 (64 x
// 4096^2, one thread, Zen 4). The second to fifth tiles of a block now ask for the next block's
// four panels into L2, a line per group (vnni::tiles' next_panels). On the 2-core Zen 4 host,
// alternating with no prefetch in one process (2 threads, 40 rounds each, medians): 1.025-1.048x
// at 64 x 4096^2, 1.050x at 32 x 4096^2, 0.998-1.012x at 256 x 4096^2, 0.995-1.004x at 1024^3,
// 0.99-1.00x at M = 12 and 16 and at SmolLM2's shapes. A prefetch on every tile (of its own
// lines, to keep one code path) cost 0.5-1% in the group loop: tiles without one run without it.
#include <algorithm>
#include <type_traits>

#include "kernels/kernel_variants.h"
#include "kernels/line_buffer.h"
#include "kernels/vnni/int8_tile_vnni.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/cpu.h"

namespace shrink::kernel_variants {
namespace {

constexpr int64_t kPanelsPerTile = 4;
constexpr int64_t kTileRows = vnni::kTileRows;
constexpr int64_t kBlockGroups = 128;  // groups of 4 bytes per k block

// Rows [i, i + rows) x panels [panel, panel + PANELS), k in blocks; sums = room for rows x PANELS
// x 16 s32 (64-byte aligned), [row][panel][channel].
// The int4 prefill walks its blocks the same way; the two share the tile walk
// (vnni::each_row_tile) but each keeps its own first-block dispatch: one helper for both that
// passed the FRESH flag as a type made GCC copy and spill the accumulators inside the group loop
// (measured with the 5 x 4 tiles of then: 1.6x slower at 1024^3).
template <int PANELS>
void rows_in_k_blocks(int64_t i, int64_t rows, int64_t panel, int64_t n, int64_t groups, const uint8_t* a, int64_t lda,
                      const int8_t* packed, const Int8Epilogue& e, int32_t* sums) {
  const int64_t panel_stride = groups * vnni::kPanelGroupBytes;
  const int8_t* b = packed + panel * panel_stride;
  for (int64_t g0 = 0; g0 < groups; g0 += kBlockGroups) {
    const int64_t g1 = std::min(groups, g0 + kBlockGroups);
    vnni::each_row_tile(rows, [&](auto tile_rows, int64_t r) {
      constexpr int R = decltype(tile_rows)::value;
      int32_t* tile_sums = sums + r * PANELS * 16;
      if (g0 == 0)
        vnni::accumulate<R, PANELS, true, /*FRESH=*/true>(a + (i + r) * lda, lda, b, panel_stride, g0, g1, tile_sums);
      else
        vnni::accumulate<R, PANELS>(a + (i + r) * lda, lda, b, panel_stride, g0, g1, tile_sums);
      if (g1 == groups) vnni::finish_rows<PANELS>(i + r, R, panel, n, tile_sums, e);
    });
  }
}

}  // namespace

void gemm_u8s8__vnni(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                     const Int8Epilogue& e) {
  const int64_t groups = int8_padded_k(k) / kInt8Group, panels = (n + kInt8Panel - 1) / kInt8Panel;
  const int64_t blocks = (panels + kPanelsPerTile - 1) / kPanelsPerTile;
  // With k in blocks a row block's activations and its sums (256 bytes a row) share 3/4 of L2.
  // A single tile of rows, or k within one block, has nothing to reuse across tiles: whole-k tiles;
  // so has a slice that L1 cannot keep (vnni::l1_keeps_slice).
  static_assert(kPanelsPerTile * kInt8Panel * kBlockGroups * kInt8Group == vnni::kL1SliceBytes);
  const bool k_blocks = m >= 2 * kTileRows && groups > kBlockGroups && vnni::l1_keeps_slice();
  const int64_t row_bytes = std::max<int64_t>(lda, 1) + (k_blocks ? kPanelsPerTile * kInt8Panel * 4 : 0);
  const int64_t block_rows = std::max<int64_t>(kTileRows, (l2_cache_bytes() * 3 / 4 / row_bytes) / kTileRows * kTileRows);
  // Rows [r_begin, r_end) past the 4-panel blocks [first, last), a row block at a time.
  const auto walk = [&](int64_t r_begin, int64_t r_end, int64_t first, int64_t last) {
    thread_local LineBuffer<int32_t> sums_buffer;
    int32_t* sums =
        k_blocks ? sums_buffer.get(size_t(std::min(r_end - r_begin, block_rows) * kPanelsPerTile * kInt8Panel)) : nullptr;
    for (int64_t r0 = r_begin; r0 < r_end; r0 += block_rows) {
      const int64_t rows = std::min(r_end, r0 + block_rows) - r0;
      for (int64_t block = first; block < last; ++block) {
        const int64_t panel = block * kPanelsPerTile, count = std::min(kPanelsPerTile, panels - panel);
        if (!k_blocks) {
          const int64_t next_panels = block + 1 < last ? std::min(kPanelsPerTile, panels - panel - count) : 0;
          vnni::tiles(r0, rows, panel, count, n, groups, a, lda, packed_b, e, next_panels);
          continue;
        }
        switch (count) {
          case 4: rows_in_k_blocks<4>(r0, rows, panel, n, groups, a, lda, packed_b, e, sums); break;
          case 3: rows_in_k_blocks<3>(r0, rows, panel, n, groups, a, lda, packed_b, e, sums); break;
          case 2: rows_in_k_blocks<2>(r0, rows, panel, n, groups, a, lda, packed_b, e, sums); break;
          default: rows_in_k_blocks<1>(r0, rows, panel, n, groups, a, lda, packed_b, e, sums); break;
        }
      }
    }
  };
  // The threads' shares follow their measured speeds, learned per shape (parallel_for_balanced):
  // on the 2-core VNNI host one core often ran 5-10% slower than the other for a while, and the
  // even split of 16 blocks at 1024^3 left the faster thread waiting (one thread done at 1634 us,
  // the other at 1776). The threads split the rows, in whole tiles, when the weights fit in half
  // of one core's L2 and there are 8 tiles a thread or more: each thread then reads all the weights
  // (from its own L2 after its first row block) and only its own rows, and the shares move in
  // steps of one tile instead of 1/16 of the work. Alternating with the even split of blocks in
  // one process (2 threads, 1024^3): 1.02-1.06x in quiet stretches, up to 1.2-1.3x when one core
  // was slowed; 1.04-1.16x at 64 and 256 x 4096^2 (blocks split by speed).
  const int64_t row_tiles = (m + kTileRows - 1) / kTileRows;
  uint64_t shape = 0x5652'4e49'4938'4757ull;  // speeds of this kernel's own, apart from other work of these sizes
  for (const int64_t size : {m, n, k}) shape = speeds_key(shape, size);
  ThreadSpeeds& speeds = thread_speeds(shape);
  if (int64_t(int8_packed_bytes(n, k)) <= l2_cache_bytes() / 2 && row_tiles >= 8 * num_threads())
    parallel_for_balanced(0, row_tiles, 1, speeds, [&](int64_t t0, int64_t t1) {
      walk(t0 * kTileRows, std::min(m, t1 * kTileRows), 0, blocks);
    });
  else
    parallel_for_balanced(0, blocks, std::max<int64_t>(1, 16 / std::max<int64_t>(m, 1)), speeds,
                          [&](int64_t first, int64_t last) { walk(0, m, first, last); });
}

}  // namespace shrink::kernel_variants
