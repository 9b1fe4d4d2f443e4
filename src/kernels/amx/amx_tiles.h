// The tile configuration both AMX kernels use: palette 1, all eight tiles 16 rows x 64 bytes
// (accumulators 16 x 16 s32, operands 16 rows x 64 bytes of int8). Include only from files
// compiled with the AMX flags; call from a thread that was granted the tile state (cpu_features.cpp
// asks at start-up; the registry only chooses AMX variants when it was).
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
  _tile_loadconfig(&config);
}

}  // namespace shrink::kernel_variants::amx
