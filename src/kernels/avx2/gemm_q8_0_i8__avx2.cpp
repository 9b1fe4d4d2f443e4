// Q8_0 activations times int8 row weights with AVX2 (gemm_q8_0_i8, registry.h), for decoding with
// an int8 output layer. Signed times signed through vpmaddubsw with ggml's sign trick:
// |w| (unsigned) times a * sign(w); |pair| <= 2 * 128 * 127 < 32767, so nothing saturates. Four
// weight rows share each activation block, read from 4-row panels when given (as the int4 GEMV);
// the rows are split between the threads, each walking two panel streams (SmolLM2's head, cold:
// 31-36 -> 40-44 GB/s in a one-process A/B).
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2/horizontal.h"
#include "kernels/kernel_variants.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/ggml_formats.h"

namespace shrink::kernel_variants {
namespace {

using namespace avx2;

// Weight rows c0[s] .. c0[s] + ROWS - 1 against activation row i, for each of STREAMS places;
// four rows from their panel (one stream: each 32-byte run follows the previous row's) when there
// is one. Two panels far apart walked together keep more bytes in flight than one (as the int4 GEMV).
template <int ROWS, int STREAMS = 1>
void rows(int64_t i, const int64_t (&c0)[STREAMS], const BlockQ8_0* a, const int8_t* w, const int8_t* panels,
          const float* w_scale, int64_t k, const float* bias, float* y, int64_t ldy) {
  const int64_t blocks = k / 32;
  const bool panel = ROWS == 4 && panels;
  static_assert(STREAMS == 1 || ROWS == 4);
  const int64_t row_step = panel ? 32 : k, run_step = panel ? 4 * 32 : 32;
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* base[STREAMS];
  __m256 acc[STREAMS][ROWS];
  for (int s = 0; s < STREAMS; ++s) {
    base[s] = (panel ? panels : w) + c0[s] * k;
    for (int r = 0; r < ROWS; ++r) acc[s][r] = _mm256_setzero_ps();
  }
  const BlockQ8_0* row = a + i * blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[b].qs));
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(row[b].d));
    for (int s = 0; s < STREAMS; ++s) {
      if (panel) {  // 2 KB ahead in the stream
        _mm_prefetch(reinterpret_cast<const char*>(base[s] + b * run_step + 2048), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(base[s] + b * run_step + 2048 + 64), _MM_HINT_T0);
      }
      for (int r = 0; r < ROWS; ++r) {
        const int8_t* at = base[s] + r * row_step + b * run_step;
        if (!panel && (b & 1) == 0) _mm_prefetch(reinterpret_cast<const char*>(at + ROWS * k), _MM_HINT_T0);
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at));
        const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(x, v));
        acc[s][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)), d, acc[s][r]);
      }
    }
  }
  for (int s = 0; s < STREAMS; ++s)
    for (int r = 0; r < ROWS; ++r) {
      const int64_t c = c0[s] + r;
      y[i * ldy + c] = w_scale[c] * horizontal_sum(acc[s][r]) + (bias ? bias[c] : 0.f);
    }
}

}  // namespace

void gemm_q8_0_i8__avx2(int64_t m, const void* a_blocks, const int8_t* w, const int8_t* panels, const float* w_scale,
                        int64_t n, int64_t k, const float* bias, float* y, int64_t ldy) {
  const auto* a = static_cast<const BlockQ8_0*>(a_blocks);
  const int64_t full_panels = n / 4;
  parallel_for(0, (n + 3) / 4, 16, [&](int64_t first, int64_t last) {
    int64_t p = first;
    if (panels && first < full_panels) {  // the share's full panels: its first half beside its second
      const int64_t end = std::min(last, full_panels), half = (end - first) / 2;
      for (int64_t j = 0; j < half; ++j)
        for (int64_t i = 0; i < m; ++i) rows<4, 2>(i, {(first + j) * 4, (first + half + j) * 4}, a, w, panels, w_scale, k, bias, y, ldy);
      p = first + 2 * half;
    }
    for (; p < last; ++p)
      for (int64_t i = 0; i < m; ++i) {
        const int64_t c0 = p * 4;
        if (c0 + 4 <= n) {
          rows<4>(i, {c0}, a, w, panels, w_scale, k, bias, y, ldy);
        } else {
          for (int64_t c = c0; c < n; ++c) rows<1>(i, {c}, a, w, panels, w_scale, k, bias, y, ldy);
        }
      }
  });
}

}  // namespace shrink::kernel_variants
