// What both AMX kernels share: the tile configuration (palette 1, all eight tiles 16 rows x 64
// bytes: accumulators 16 x 16 s32, operands 16 rows x 64 bytes of int8) and the block of up to
// 32 rows x 32 channels in four accumulator tiles: tiles 0-3 accumulate, 4-5 hold the rows'
// operand, 6-7 the channels'. Include only from files compiled with the AMX flags; run from a
// thread that was granted the tile state (cpu_features.cpp asks at start-up; the registry only
// chooses AMX variants when it was).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace shrink::kernel_variants::amx {

constexpr int64_t kTileRows = 16;   // rows of every tile
constexpr int64_t kStepBytes = 64;  // bytes per tile row: k bytes per step

// Palette 1's configuration (Intel SDM vol. 1, "Tile configuration"): 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

inline void configure_tiles() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = uint8_t(kTileRows);
    config.bytes_per_row[t] = uint16_t(kStepBytes);
  }
  // GCC's _tile_loadconfig tells the compiler it reads 8 bytes of the configuration, so inlined
  // into a large enough frame the other stores to it were dropped (the kernel faulted in
  // ldtilecfg at -O3): the barrier makes all 64 bytes count.
  __asm__ __volatile__("" : : "r"(&config) : "memory");
  _tile_loadconfig(&config);
}

constexpr int64_t kTileBytes = kTileRows * kStepBytes;  // 1 KB: one operand tile
constexpr int64_t kBlock = 2 * kTileRows;               // a block: 32 rows, 32 channels

// Which tile product: u8 rows x s8 channels (the int8 GEMM's activations and weights) or s8 rows
// x u8 channels (the int4 prefill's activations and expanded weights).
enum class Operands { u8s8, s8u8 };

// GCC's tile intrinsics are macros that paste their tile numbers into the assembly text, so the
// numbers must be literals where they are used (a template parameter would paste its name).
#define SHRINK_WEIGHT_TILE_LOAD(T, P, S)                             \
  do {                                                               \
    if constexpr (W == Weights::in_l2) _tile_stream_loadd(T, P, S); \
    else _tile_loadd(T, P, S);                                       \
  } while (0)
#define SHRINK_TILE_PRODUCT(O, C, A, B)                  \
  do {                                                   \
    if constexpr ((O) == Operands::u8s8) _tile_dpbusd(C, A, B); \
    else _tile_dpbsud(C, A, B);                          \
  } while (0)

// Accumulators 0-3 (16 RT rows x 16 CT channels) += steps [s0, s1) of the row tiles at `a` (step
// s at a + s KB, the second 16 rows a_tile_stride bytes on) times the channel tiles at `b` (the
// same, the second 16 channels b_tile_stride bytes on). Software-pipelined: tile registers are
// not renamed, so each operand tile is loaded with the next step's data as soon as this step's
// last product reading it has been issued, and the load overlaps the products still running
// (loading all four at the top of a step had waited for the whole previous step). The channel
// tiles (weights) are prefetched into L1 two steps ahead when the range has them (the int8 GEMM
// runs all of k; the int4 prefill one group, 2 steps at g128, so there only the order counts);
// prefetching the row tiles as well, or one step ahead, measured no better. Against loading at
// the top of each step with both operands prefetched one step ahead, alternating in one process
// on the 2-core Sapphire Rapids host: the int8 GEMM 1.11x at 1024^3, 1.05-1.08x at 256 and
// 64 x 4096^2; the int4 prefill 1.15-1.2x at 512 x 4096^2 g128.
// `between()` runs once a step, after the step's products and loads are issued: work for the core
// while the tile unit multiplies (a product takes ~16 cycles and leaves the core idle). Run
// after the step's first two products instead, it cost the int8 GEMM 0.84-0.91x at 1024 x 512^2.
//
// Where the weights come from: `streamed` from beyond L2, prefetched as above; `in_l2` (a thread
// that reads the same weights for every row block) loaded with the non-temporal hint
// (tileloaddt1) and not prefetched, so that they pass through L1 without pushing out the
// activation tiles that the next blocks read again. In_l2 against streamed, alternating in one
// process on a 2-core AMX host (2 MB L2): the int8 GEMM's tile products alone at 1024^3 1.19x
// faster (222 against 263 us), the whole GEMM 1.08-1.12x; streamed stays where the weights come
// from L3 (4096^2: in_l2 there 0.96-0.98x), and for the int4 prefill (in_l2 0.85-0.90x).
enum class Weights { streamed, in_l2 };
struct NothingBetween {
  void operator()() const {}
};
template <int RT, int CT, Operands O, Weights W = Weights::streamed, typename Between = NothingBetween>
inline void accumulate_steps(const void* a, int64_t a_tile_stride, const void* b, int64_t b_tile_stride, int64_t s0,
                             int64_t s1, Between&& between = {}) {
  if (s0 >= s1) return;
  const char* rows = static_cast<const char*>(a);
  const char* channels = static_cast<const char*>(b);
  _tile_loadd(4, rows + s0 * kTileBytes, kStepBytes);
  SHRINK_WEIGHT_TILE_LOAD(6, channels + s0 * kTileBytes, kStepBytes);
  if constexpr (CT == 2) SHRINK_WEIGHT_TILE_LOAD(7, channels + b_tile_stride + s0 * kTileBytes, kStepBytes);
  if constexpr (RT == 2) _tile_loadd(5, rows + a_tile_stride + s0 * kTileBytes, kStepBytes);
  for (int64_t s = s0; s < s1; ++s) {
    const bool next = s + 1 < s1;
    const char* a1 = rows + (s + 1) * kTileBytes;
    const char* b1 = channels + (s + 1) * kTileBytes;
    if (W == Weights::streamed && s + 2 < s1) {
      const char* ahead = channels + (s + 2) * kTileBytes;
      for (int64_t line = 0; line < kTileBytes; line += 64) {
        _mm_prefetch(ahead + line, _MM_HINT_T0);
        if constexpr (CT == 2) _mm_prefetch(ahead + b_tile_stride + line, _MM_HINT_T0);
      }
    }
    SHRINK_TILE_PRODUCT(O, 0, 4, 6);
    if constexpr (CT == 2) SHRINK_TILE_PRODUCT(O, 1, 4, 7);
    if (next) _tile_loadd(4, a1, kStepBytes);
    if constexpr (RT == 2) SHRINK_TILE_PRODUCT(O, 2, 5, 6);
    if (next) SHRINK_WEIGHT_TILE_LOAD(6, b1, kStepBytes);
    if constexpr (RT == 2 && CT == 2) SHRINK_TILE_PRODUCT(O, 3, 5, 7);
    if (next) {
      if constexpr (CT == 2) SHRINK_WEIGHT_TILE_LOAD(7, b1 + b_tile_stride, kStepBytes);
      if constexpr (RT == 2) _tile_loadd(5, a1 + a_tile_stride, kStepBytes);
    }
    between();
  }
}
#undef SHRINK_TILE_PRODUCT
#undef SHRINK_WEIGHT_TILE_LOAD

template <int RT, int CT>
inline void zero_accumulators() {
  _tile_zero(0);
  if constexpr (CT == 2) _tile_zero(1);
  if constexpr (RT == 2) _tile_zero(2);
  if constexpr (RT == 2 && CT == 2) _tile_zero(3);
}

// c[r][ch] (32 x 32 s32, 128-byte rows) = the accumulators.
template <int RT, int CT>
inline void store_accumulators(int32_t* c) {
  constexpr int64_t stride = kBlock * 4;
  _tile_stored(0, c, stride);
  if constexpr (CT == 2) _tile_stored(1, c + kTileRows, stride);
  if constexpr (RT == 2) _tile_stored(2, c + kTileRows * kBlock, stride);
  if constexpr (RT == 2 && CT == 2) _tile_stored(3, c + kTileRows * kBlock + kTileRows, stride);
}

}  // namespace shrink::kernel_variants::amx
