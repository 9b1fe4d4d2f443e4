// The u8 x s8 GEMM with AMX: C in blocks of 32 rows x 32 channels held in four 16 x 16 s32 tiles;
// per step of 64 bytes of k, two A tiles (16 rows x 64 bytes, the activations repacked so that
// each is 1 KB contiguous) and two B tiles, which are the packed layout as it is (16 consecutive
// groups of a panel = 16 rows of 16 channels x 4 bytes = the VNNI-shaped B operand of tdpbusd,
// 1 KB). The k tail (< 64 bytes), the rows left over (< 16) and small m (where AMX loses to plain
// VNNI: the brief's measurement at batch 1) go through the VNNI tiles (int8_tile_vnni.h); the
// epilogue is the VNNI one.
//
// The tile products run on their own unit, and the core is mostly idle meanwhile. So the work a
// block leaves for the core is done during the next block's products, a few 64-byte lines a step
// (amx::accumulate_steps' `between`): the previous block's epilogue (its sums wait in one of two
// buffers) and, where each thread packs its own rows, the next row block's activation tiles.
// Tile registers: 0-3 accumulate, 4-5 activations, 6-7 weights. The permission to use them was
// asked for at start-up (cpu_features.cpp); this variant is only chosen when it was granted.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
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

// Copies rows [row, row + rows) of A, a 64-byte line at a time, into 16-row tiles: tile t's step
// s at to + (t * steps + s) KB, row r of it r * 64 bytes on (loaded from the rows as they are, 16
// rows lda bytes apart, the tile loads were 1.1-1.8x slower: at lda = 4096 every row falls in the
// same L1 set). The lines go row by row, so that A is read in order.
class TilePacker {
 public:
  TilePacker(const uint8_t* a, int64_t lda, int64_t steps) : a_(a), lda_(lda), steps_(steps) {}

  void start(int64_t row, int64_t rows, uint8_t* to) {
    row_ = row;
    to_ = to;
    r_ = s_ = next_ = 0;
    lines_ = rows * steps_;
  }
  int64_t lines_left() const { return lines_ - next_; }
  // (Row and step are counted, not divided out of the line's number: a 64-bit division a line
  // cost as much as the copy.)
  void advance(int64_t count) {
    const int64_t stop = std::min(lines_, next_ + count);
    for (; next_ < stop; ++next_) {
      std::memcpy(to_ + ((r_ / kTileRows) * steps_ + s_) * kATileBytes + (r_ % kTileRows) * kStepBytes,
                  a_ + (row_ + r_) * lda_ + s_ * kStepBytes, size_t(kStepBytes));
      if (++s_ == steps_) {
        s_ = 0;
        ++r_;
      }
    }
  }
  void finish() { advance(lines_left()); }

 private:
  const uint8_t* a_;
  int64_t lda_, steps_;
  int64_t row_ = 0, r_ = 0, s_ = 0, next_ = 0, lines_ = 0;
  uint8_t* to_ = nullptr;
};

// Every full 16-row tile of A packed at once, split between the threads; for the split by
// panels, where every thread reads every row. Kept per thread, grown as needed.
const uint8_t* pack_all_tiles(const uint8_t* a, int64_t lda, int64_t tiles, int64_t steps) {
  thread_local LineBuffer<uint8_t> buffer;
  uint8_t* out = buffer.get(size_t(tiles * steps * kATileBytes));
  parallel_for(0, tiles, 1, [&](int64_t first, int64_t last) {
    TilePacker packer(a, lda, steps);
    packer.start(first * kTileRows, (last - first) * kTileRows, out + first * steps * kATileBytes);
    packer.finish();
  });
  return out;
}

// A block's epilogue: its s32 sums wait in c (32 x 32, 128-byte rows) until the next block's
// tile products give the core time for them, a few rows at a time (all of a row's channels at
// once). The f32 outputs, the common case, go through the VNNI GEMM's row loop
// (vnni::finish_rows_f32_of, with the channels' inputs loaded once in start): the choices made
// once, the pointers in locals and the row's zero point and scale broadcast once for its
// channels. finish_16 for each 16 outputs had reloaded the epilogue's
// pointers and retested its flags. Against it, alternating in one process (2 threads, the 2-core
// AMX host): 1.13-1.18x at 1024^3, 1.15x at 512 x 1024^2, 1.27x at 1024 x 512^2, 1.05x at
// 512 x 576 x 1536, 1.12x at 100 x 1536 x 576; 1.00-1.02x at 64 and 256 x 4096^2, where the
// epilogue is a smaller share. (With the loop's per-channel inputs copied to locals: 1.06x.)
class PendingEpilogue {
 public:
  void start(const int32_t* c, int64_t i, int64_t rows, int64_t panel, int64_t panels, int64_t n,
             const Int8Epilogue& e) {
    c_ = c;
    i_ = i;
    panel_ = panel;
    panels_ = panels;
    r_ = 0;
    rows_ = rows;
    for (int64_t p = 0; p < panels; ++p) channels_[p] = vnni::load_channels(e, (panel + p) * kInt8Panel, n);
  }
  int64_t rows_left() const { return rows_ - r_; }
  void advance(int64_t rows, const Int8Epilogue& e) {
    const int64_t stop = std::min(rows_, r_ + rows);
    if (r_ == stop) return;
    if (!e.out_f32) {
      for (; r_ < stop; ++r_)
        for (int64_t p = 0; p < panels_; ++p)
          vnni::finish_16(i_ + r_, (panel_ + p) * kInt8Panel, _mm512_load_si512(c_ + r_ * kBlock + p * kTileRows), e,
                          channels_[p]);
      return;
    }
    if (panels_ == 2)
      e.relu ? f32_rows<2, true>(stop, e) : f32_rows<2, false>(stop, e);
    else
      e.relu ? f32_rows<1, true>(stop, e) : f32_rows<1, false>(stop, e);
  }
  void finish(const Int8Epilogue& e) { advance(rows_left(), e); }

 private:
  template <int PANELS, bool RELU>
  void f32_rows(int64_t stop, const Int8Epilogue& e) {
    vnni::finish_rows_f32_of<PANELS, RELU, kBlock / kTileRows>(i_ + r_, stop - r_, panel_ * kInt8Panel,
                                                               c_ + r_ * kBlock, channels_, e);
    r_ = stop;
  }

  const int32_t* c_ = nullptr;
  int64_t i_ = 0, panel_ = 0, panels_ = 1, r_ = 0, rows_ = 0;
  vnni::Channels16 channels_[2];
};

// Hands out `total` units over `calls` calls as evenly as whole units go: the pending epilogue's
// rows over a block's steps. (Rounding the rows a step up, 32 rows over K = 4096's 64 steps were
// done in the first 32 and the products after ran alone: 0.93-0.96x at 64 and 256 x 4096^2.)
class EvenShares {
 public:
  EvenShares(int64_t total, int64_t calls) : total_(total), calls_(calls) {}
  int64_t next() {
    int64_t units = 0;
    for (credit_ += total_; credit_ >= calls_; credit_ -= calls_) ++units;
    return units;
  }

 private:
  int64_t total_, calls_, credit_ = 0;
};

// What one thread's blocks share: the operands, the two sums buffers the blocks take in turn,
// the pending epilogue and the packing of the next row block's tiles. `shared` has every row's
// tiles packed before (pack_all_tiles, the split by panels); nullptr: the thread packs its own
// rows, each row block's tiles during the row block before, and reads all the weights for each
// of its row blocks, from its own L2 (amx::Weights::in_l2).
struct Walk {
  int64_t n, groups, steps, panels;
  const uint8_t* a;
  int64_t lda;
  const int8_t* packed;
  const Int8Epilogue& e;
  alignas(64) int32_t sums[2][kBlock * kBlock];
  int turn = 0;
  PendingEpilogue pending;
  TilePacker packer;
  const uint8_t* shared;

  Walk(int64_t n_, int64_t groups_, const uint8_t* a_, int64_t lda_, const int8_t* packed_, const Int8Epilogue& e_,
       const uint8_t* shared_)
      : n(n_), groups(groups_), steps(groups_ / kGroupsPerStep), panels((n_ + kInt8Panel - 1) / kInt8Panel), a(a_),
        lda(lda_), packed(packed_), e(e_), packer(a_, lda_, steps), shared(shared_) {}

  // Rows [i, i + 16 RT) (their tiles at `tiles`, the second tile_stride bytes on) x panels
  // [panel, panel + CT): the tile products, with the pending epilogue and `pack_lines` lines of
  // the packing done during them; then the k tail, and this block's epilogue left pending.
  template <int RT, int CT>
  void block(int64_t i, int64_t panel, const uint8_t* tiles, int64_t tile_stride, int64_t pack_lines) {
    const int64_t panel_stride = groups * kPanelGroupBytes;
    const int8_t* b = packed + panel * panel_stride;
    EvenShares epilogue_rows(pending.rows_left(), steps);
    const int64_t pack_per_step = (pack_lines + steps - 1) / steps;
    const auto between = [&] {
      pending.advance(epilogue_rows.next(), e);
      packer.advance(pack_per_step);
    };
    amx::zero_accumulators<RT, CT>();
    if (!shared)
      amx::accumulate_steps<RT, CT, amx::Operands::u8s8, amx::Weights::in_l2>(tiles, tile_stride, b, panel_stride, 0,
                                                                             steps, between);
    else
      amx::accumulate_steps<RT, CT, amx::Operands::u8s8>(tiles, tile_stride, b, panel_stride, 0, steps, between);
    pending.finish(e);
    int32_t* c = sums[turn];
    turn ^= 1;
    amx::store_accumulators<RT, CT>(c);
    const int64_t count = std::min<int64_t>(CT, panels - panel);
    if (steps * kGroupsPerStep < groups)  // the k tail
      for (int64_t r = 0; r < RT * kTileRows; ++r)
        for (int64_t ct = 0; ct < count; ++ct)
          vnni::accumulate<1, 1>(a + (i + r) * lda, lda, b + ct * panel_stride, panel_stride, steps * kGroupsPerStep,
                                 groups, c + r * kBlock + ct * kTileRows);
    pending.start(c, i, RT * kTileRows, panel, count, n, e);
  }

  // Rows [i, i + 16 RT) past the pairs [first, last), `pack_lines` lines of packing spread over
  // them.
  template <int RT>
  void row_block(int64_t i, int64_t first, int64_t last, const uint8_t* tiles, int64_t tile_stride,
                 int64_t pack_lines) {
    const int64_t per_pair = (pack_lines + (last - first) - 1) / (last - first);
    for (int64_t pair = first; pair < last; ++pair) {
      const int64_t panel = 2 * pair;
      if (panel + 1 < panels)
        block<RT, 2>(i, panel, tiles, tile_stride, per_pair);
      else
        block<RT, 1>(i, panel, tiles, tile_stride, per_pair);
    }
  }

  // Rows [r0, r1) past the pairs [first, last): 32-row blocks, then one of 16 rows, then the
  // VNNI tiles for the rest.
  void rows_past_pairs(int64_t r0, int64_t r1, int64_t first, int64_t last) {
    const int64_t tile_stride = steps * kATileBytes;
    thread_local LineBuffer<uint8_t> own;
    uint8_t* buffers[2] = {nullptr, nullptr};
    if (!shared) {
      buffers[0] = own.get(size_t(4 * tile_stride));
      buffers[1] = buffers[0] + 2 * tile_stride;
    }
    // Rows in blocks of 32 and then one of 16, as far as they go.
    const auto rows_at = [&](int64_t i) -> int64_t {
      return i + kBlock <= r1 ? kBlock : i + kTileRows <= r1 ? kTileRows : 0;
    };
    int64_t i = r0;
    if (!shared && rows_at(i)) {
      packer.start(i, rows_at(i), buffers[0]);
      packer.finish();
    }
    for (int turn_of_rows = 0; rows_at(i); i += rows_at(i), turn_of_rows ^= 1) {
      const int64_t rows = rows_at(i), following = rows_at(i + rows);
      const uint8_t* tiles = shared ? shared + i / kTileRows * tile_stride : buffers[turn_of_rows];
      if (!shared && following) packer.start(i + rows, following, buffers[turn_of_rows ^ 1]);
      const int64_t pack_lines = shared ? 0 : packer.lines_left();
      if (rows == kBlock)
        row_block<2>(i, first, last, tiles, tile_stride, pack_lines);
      else
        row_block<1>(i, first, last, tiles, tile_stride, pack_lines);
      packer.finish();
    }
    pending.finish(e);
    for (int64_t pair = first; i < r1 && pair < last; ++pair) {
      const int64_t panel = 2 * pair, count = std::min<int64_t>(2, panels - panel);
      vnni::tiles(i, r1 - i, panel, count, n, groups, a, lda, packed, e);
    }
  }
};

}  // namespace

void gemm_u8s8__amx(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                    const Int8Epilogue& e) {
  const int64_t groups = int8_padded_k(k) / kInt8Group, panels = (n + kInt8Panel - 1) / kInt8Panel;
  if (m < kTileRows || groups < kGroupsPerStep) {
    gemm_u8s8__vnni(m, n, k, a, lda, packed_b, e);
    return;
  }
  // Each thread walks its panel pairs in chunks of about 1 MB of weights (half of L2); within a
  // chunk the rows go outermost, so a row block's activation tiles stay in L1 while the chunk's
  // weight tiles come from L2, and each row's outputs are written as one run of the chunk's
  // channels. Running every row past one pair before the next (the activations streaming from
  // L2, the outputs written as 128-byte pieces 4 KB apart at n = 1024) was 1.13-1.2x slower at
  // 1024^3 and equal at 64 and 256 x 4096^2 (alternating scratch comparison, 2 threads, on the
  // 2-core Sapphire Rapids host); rows outermost without the chunks, 0.74x at 256 x 4096^2.
  const int64_t pairs = (panels + 1) / 2, pair_bytes = 2 * groups * kPanelGroupBytes;
  const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 20) / pair_bytes);
  const auto walk = [&](int64_t r0, int64_t r1, int64_t first, int64_t last, const uint8_t* shared) {
    amx::configure_tiles();
    Walk w(n, groups, a, lda, packed_b, e, shared);
    for (int64_t c0 = first; c0 < last; c0 += chunk) w.rows_past_pairs(r0, r1, c0, std::min(last, c0 + chunk));
    _tile_release();
  };
  // The threads split the rows when all the weights fit in one core's L2 and there are rows
  // enough: each reads the weights whole (from its own L2 after the first row block) and packs
  // and reads only its own rows' tiles; split by panels, each thread would read every activation
  // tile, half of them packed on the other core. Same comparison: 1.01-1.10x at 1024^3,
  // 1.11-1.27x at 512 x 1024^2 and 1024 x 512^2; the split by panels stays where the weights are
  // larger (read once in all, not once per thread). Either way a thread walks its pairs in the
  // chunks above, past its rows. The shares follow the threads' measured speeds
  // (parallel_for_balanced): the two cores of the development VM ran at different speeds for
  // seconds at a time, and an even split left the faster thread waiting at the end.
  static ThreadSpeeds by_rows, by_pairs;
  if (n * k <= (int64_t(2) << 20) && m >= 2 * kBlock * num_threads()) {
    parallel_for_balanced(0, (m + kBlock - 1) / kBlock, 1, by_rows, [&](int64_t b0, int64_t b1) {
      walk(b0 * kBlock, std::min(m, b1 * kBlock), 0, pairs, nullptr);
    });
  } else {
    const uint8_t* shared = pack_all_tiles(a, lda, m / kTileRows, groups / kGroupsPerStep);
    parallel_for_balanced(0, pairs, 1, by_pairs, [&](int64_t first, int64_t last) { walk(0, m, first, last, shared); });
  }
}

}  // namespace shrink::kernel_variants
