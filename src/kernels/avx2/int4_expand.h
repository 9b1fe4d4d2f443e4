// The int4 prefill's weight expansion, shared by the AVX2 and AVX512-VNNI prefills: a panel of 16
// output channels from nibbles into u8 laid out like the int8 path (k in groups of 4: 16 channels x
// 4 bytes, one 32-bit word per channel and group), with the panel's scales and mins as f32
// [group][16]. Channels past n are zero. Include only from files compiled with the AVX2 flags.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "shrink/kernels/int4_gemm.h"

namespace shrink::kernel_variants {

// Room for `panels` consecutive expanded panels: panel p's words start at p * words_per_panel(w),
// its scales and mins at p * floats_per_panel(w).
struct ExpandedPanel {
  std::vector<uint32_t> words;      // [panels][k / 4][16]: four u8 weights of one channel
  std::vector<float> scales, mins;  // [panels][groups][16]
  static int64_t words_per_panel(const Int4Weights& w) { return w.k / 4 * 16; }
  static int64_t floats_per_panel(const Int4Weights& w) { return w.k / w.group * 16; }
  void resize(const Int4Weights& w, int64_t panels) {
    words.resize(size_t(panels * words_per_panel(w)));
    scales.resize(size_t(panels * floats_per_panel(w)));
    mins.resize(size_t(panels * floats_per_panel(w)));
  }
};

inline void expand_panel(const Int4Weights& w, int64_t c0, uint32_t* words, float* scales, float* mins) {
  const int64_t groups = w.k / w.group;
  std::memset(words, 0, size_t(ExpandedPanel::words_per_panel(w)) * 4);
  std::memset(scales, 0, size_t(ExpandedPanel::floats_per_panel(w)) * 4);
  std::memset(mins, 0, size_t(ExpandedPanel::floats_per_panel(w)) * 4);
  const __m256i low_mask = _mm256_set1_epi8(0x0f), high_lane_shift = _mm256_set_epi64x(4, 4, 0, 0);
  for (int64_t channel = 0; channel < 16 && c0 + channel < w.n; ++channel) {
    const int64_t c = c0 + channel;
    for (int64_t block = 0; block < w.k / 32; ++block) {
      const __m256i both = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.nibbles + c * w.k / 2 + block * 16)));
      alignas(32) uint32_t values[8];  // 32 weights in value order, four per word
      _mm256_store_si256(reinterpret_cast<__m256i*>(values), _mm256_and_si256(_mm256_srlv_epi64(both, high_lane_shift), low_mask));
      for (int word = 0; word < 8; ++word) words[(block * 8 + word) * 16 + channel] = values[word];
    }
    for (int64_t g = 0; g < groups; ++g) {
      scales[g * 16 + channel] = _cvtsh_ss(w.scales[c * groups + g]);
      mins[g * 16 + channel] = _cvtsh_ss(w.mins[c * groups + g]);
    }
  }
}

}  // namespace shrink::kernel_variants
