// The u8 x s8 GEMM with AMX: C in blocks of 32 rows x 32 channels held in four 16 x 16 s32 tiles;
// per step of 64 bytes of k, two A tiles (16 rows x 64 bytes, the activations repacked so that
// each is 1 KB contiguous) and two B tiles, which are the packed layout as it is (16 consecutive
// groups of a panel = 16 rows of 16 channels x 4 bytes = the VNNI-shaped B operand of tdpbusd,
// 1 KB). The k tail (< 64 bytes), the rows left over (< 16) and small m (where AMX loses to plain
// VNNI: the brief's measurement at batch 1) go through the VNNI tiles (int8_tile_vnni.h); the
// epilogue is the VNNI one.
// Tile registers: 0-3 accumulate, 4-5 activations, 6-7 weights. The permission to use them was
// asked for at start-up (cpu_features.cpp); this variant is only chosen when it was granted.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <type_traits>

#include "kernels/amx/amx_tiles.h"
#include "kernels/kernel_variants.h"
#include "kernels/line_buffer.h"
#include "kernels/vnni/int8_tile_vnni.h"
#include "shrink/core/parallel.h"

namespace shrink::kernel_variants {
namespace {

using vnni::kPanelGroupBytes;

using amx::kStepBytes;
using amx::kTileRows;
using amx::kBlock;
constexpr int64_t kGroupsPerStep = kStepBytes / kInt8Group;  // 16: one B tile
constexpr int64_t kATileBytes = amx::kTileBytes;
static_assert(kGroupsPerStep * kPanelGroupBytes == amx::kTileBytes, "16 groups of a panel are one B tile");

// c[r][ch] (32 x 32 s32, 128-byte rows) = the A tiles at a (16 RT rows, packed: 1 KB per tile and
// step, the second tile's steps `a_tile_stride` bytes further) x channels [0, 16 CT) of the panels
// at b (the second panel_stride bytes further), over `steps` steps of 64 bytes of k.
template <int RT, int CT>
void accumulate_steps(const uint8_t* a, int64_t a_tile_stride, const int8_t* b, int64_t panel_stride, int64_t steps,
                      int32_t* c) {
  amx::zero_accumulators<RT, CT>();
  amx::accumulate_steps<RT, CT, amx::Operands::u8s8>(a, a_tile_stride, b, panel_stride, 0, steps);
  amx::store_accumulators<RT, CT>(c);
}

// The activations' full 16-row tiles over the full 64-byte steps, each tile and step 1 KB
// contiguous (loaded from the rows as they are, 16 rows lda bytes apart, the tile loads were 1.1-1.8x
// slower: at lda = 4096 every row falls in the same L1 set). Kept per thread, grown as needed.
struct PackedActivations {
  const uint8_t* data = nullptr;
  int64_t tile_stride = 0;  // bytes between consecutive 16-row tiles
};

PackedActivations pack_activations(const uint8_t* a, int64_t lda, int64_t tiles, int64_t steps) {
  thread_local LineBuffer<uint8_t> buffer;
  uint8_t* out = buffer.get(size_t(tiles * steps * kATileBytes));
  parallel_for(0, tiles, 1, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t)
      for (int64_t s = 0; s < steps; ++s)
        for (int64_t r = 0; r < kTileRows; ++r)
          std::memcpy(out + (t * steps + s) * kATileBytes + r * kStepBytes, a + (t * kTileRows + r) * lda + s * kStepBytes,
                      size_t(kStepBytes));
  });
  return {out, steps * kATileBytes};
}

// Rows [i, i + 16 RT) x panels [panel, panel + CT): the tiles, the k tail, the epilogue.
template <int RT, int CT>
void block(int64_t i, int64_t panel, int64_t n, int64_t groups, const uint8_t* a, int64_t lda,
           const PackedActivations& tiles, const int8_t* packed, const Int8Epilogue& e) {
  alignas(64) int32_t c[kBlock * kBlock];
  const int64_t panel_stride = groups * kPanelGroupBytes, steps = groups / kGroupsPerStep;
  const uint8_t* rows = a + i * lda;
  const int8_t* b = packed + panel * panel_stride;
  accumulate_steps<RT, CT>(tiles.data + i / kTileRows * tiles.tile_stride, tiles.tile_stride, b, panel_stride, steps, c);
  for (int ct = 0; ct < CT; ++ct) {
    const int64_t channel = (panel + ct) * kInt8Panel;
    if (channel >= n) break;
    const vnni::Channels16 channels = vnni::load_channels(e, channel, n);
    for (int r = 0; r < RT * kTileRows; ++r) {
      int32_t* sums = c + r * kBlock + ct * kTileRows;
      if (steps * kGroupsPerStep < groups)  // the k tail
        vnni::accumulate<1, 1>(rows + r * lda, lda, b + ct * panel_stride, panel_stride, steps * kGroupsPerStep, groups,
                               sums);
      vnni::finish_16(i + r, channel, _mm512_load_si512(sums), e, channels);
    }
  }
}

// Rows [r0, r1) past panels [panel, panel + CT) for each panel pair in [first, last): 32-row
// blocks, then one of 16 rows, then the VNNI tiles for the rest.
void rows_past_pairs(int64_t r0, int64_t r1, int64_t first, int64_t last, int64_t panels, int64_t n, int64_t groups,
                     const uint8_t* a, int64_t lda, const PackedActivations& tiles, const int8_t* packed,
                     const Int8Epilogue& e) {
  auto each_pair = [&](auto&& run) {
    for (int64_t pair = first; pair < last; ++pair) {
      const int64_t panel = 2 * pair;
      if (panel + 1 < panels)
        run(panel, std::integral_constant<int, 2>());
      else
        run(panel, std::integral_constant<int, 1>());
    }
  };
  int64_t i = r0;
  for (; i + kBlock <= r1; i += kBlock)
    each_pair([&](int64_t panel, auto ct) { block<2, decltype(ct)::value>(i, panel, n, groups, a, lda, tiles, packed, e); });
  if (i + kTileRows <= r1) {
    each_pair([&](int64_t panel, auto ct) { block<1, decltype(ct)::value>(i, panel, n, groups, a, lda, tiles, packed, e); });
    i += kTileRows;
  }
  if (i < r1)
    each_pair([&](int64_t panel, auto ct) { vnni::tiles(i, r1 - i, panel, decltype(ct)::value, n, groups, a, lda, packed, e); });
}

}  // namespace

void gemm_u8s8__amx(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                    const Int8Epilogue& e) {
  const int64_t groups = int8_padded_k(k) / kInt8Group, panels = (n + kInt8Panel - 1) / kInt8Panel;
  if (m < kTileRows || groups < kGroupsPerStep) {
    gemm_u8s8__vnni(m, n, k, a, lda, packed_b, e);
    return;
  }
  const PackedActivations tiles = pack_activations(a, lda, m / kTileRows, groups / kGroupsPerStep);
  // Each thread walks its panel pairs in chunks of about 1 MB of weights (half of L2); within a
  // chunk the rows go outermost, so a row block's activation tiles stay in L1 while the chunk's
  // weight tiles come from L2, and each row's outputs are written as one run of the chunk's
  // channels. Running every row past one pair before the next (the activations streaming from
  // L2, the outputs written as 128-byte pieces 4 KB apart at n = 1024) was 1.13-1.2x slower at
  // 1024^3 and equal at 64 and 256 x 4096^2 (alternating scratch comparison, 2 threads, on the
  // 2-core Sapphire Rapids host); rows outermost without the chunks, 0.74x at 256 x 4096^2.
  const int64_t pairs = (panels + 1) / 2, pair_bytes = 2 * groups * kPanelGroupBytes;
  const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 20) / pair_bytes);
  // The threads split the rows when all the weights fit in one core's L2 and there are rows
  // enough: each reads the weights whole (from its own L2 after the first row block) and its own
  // rows' activation tiles, which the packing's static split mostly gave to the same thread; split
  // by panels, each thread would read every activation tile, half of them packed on the other
  // core. Same comparison: 1.01-1.10x at 1024^3, 1.11-1.27x at 512 x 1024^2 and 1024 x 512^2; the
  // split by panels stays where the weights are larger (read once in all, not once per thread).
  // Either way a thread walks its pairs in the chunks above, past its rows.
  const auto walk = [&](int64_t r0, int64_t r1, int64_t first, int64_t last) {
    amx::configure_tiles();
    for (int64_t c0 = first; c0 < last; c0 += chunk)
      rows_past_pairs(r0, r1, c0, std::min(last, c0 + chunk), panels, n, groups, a, lda, tiles, packed_b, e);
    _tile_release();
  };
  // The shares follow the threads' measured speeds (parallel_for_balanced): the two cores of
  // the development VM ran at different speeds for seconds at a time, and an even split left the
  // faster thread waiting at the end.
  static ThreadSpeeds by_rows, by_pairs;
  if (n * k <= (int64_t(2) << 20) && m >= 2 * kBlock * num_threads())
    parallel_for_balanced(0, (m + kBlock - 1) / kBlock, 1, by_rows,
                          [&](int64_t b0, int64_t b1) { walk(b0 * kBlock, std::min(m, b1 * kBlock), 0, pairs); });
  else
    parallel_for_balanced(0, pairs, 1, by_pairs, [&](int64_t first, int64_t last) { walk(0, m, first, last); });
}

}  // namespace shrink::kernel_variants
