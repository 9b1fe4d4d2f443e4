// The u8 x s8 GEMM with AVX512-VNNI: 5 rows x 4 panels (64 channels) per tile, one vpdpbusd per
// row, panel and group of 4 bytes (int8_tile_vnni.h). Threads take ranges of 4-panel blocks; rows
// go in blocks that fill 3/4 of L2, as in the AVX2 variant.
#include "kernels/kernel_variants.h"
#include "kernels/vnni/int8_tile_vnni.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/cpu.h"

namespace shrink::kernel_variants {

void gemm_u8s8__vnni(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                     const Int8Epilogue& e) {
  constexpr int64_t kPanelsPerTile = 4;
  const int64_t groups = int8_padded_k(k) / kInt8Group, panels = (n + kInt8Panel - 1) / kInt8Panel;
  const int64_t blocks = (panels + kPanelsPerTile - 1) / kPanelsPerTile;
  const int64_t block_rows = std::max<int64_t>(5, (l2_cache_bytes() * 3 / 4 / std::max<int64_t>(lda, 1)) / 5 * 5);
  parallel_for(0, blocks, std::max<int64_t>(1, 16 / std::max<int64_t>(m, 1)), [&](int64_t first, int64_t last) {
    for (int64_t r0 = 0; r0 < m; r0 += block_rows) {
      const int64_t rows = std::min(m, r0 + block_rows) - r0;
      for (int64_t block = first; block < last; ++block) {
        const int64_t panel = block * kPanelsPerTile;
        vnni::tiles(r0, rows, panel, std::min(kPanelsPerTile, panels - panel), n, groups, a, lda, packed_b, e);
      }
    }
  });
}

}  // namespace shrink::kernel_variants
