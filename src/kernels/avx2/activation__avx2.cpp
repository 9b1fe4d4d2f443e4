// exp, sigmoid and tanh, 8 floats at a time, and the LSTM cell built from them. exp is exp8.h's
// (Cephes' expf); tanh follows Cephes' tanhf: an odd polynomial for |x| < 0.625, 1 - 2 / (exp(2|x|) + 1)
// with the sign restored above.
#include <immintrin.h>

#include <cmath>

#include "kernels/avx2/exp8.h"
#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {
namespace {

using namespace avx2;

__m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

__m256 tanh8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256 ax = _mm256_andnot_ps(sign, x);
  // |x| >= 0.625: 1 - 2 / (exp(2|x|) + 1), sign restored.
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 e = exp8(_mm256_add_ps(ax, ax));
  __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(e, one)));
  big = _mm256_or_ps(big, _mm256_and_ps(sign, x));
  // |x| < 0.625: x + x z P(z), z = x^2.
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-5.70498872745E-3f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954E-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531E-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036E-1f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422E-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
}

template <__m256 (*F)(__m256)> void apply(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, keep_nan<F>(_mm256_loadu_ps(x + i)));
  if (i < n) {
    alignas(32) float tmp[8] = {};
    for (int64_t j = i; j < n; ++j) tmp[j - i] = x[j];
    _mm256_store_ps(tmp, keep_nan<F>(_mm256_load_ps(tmp)));
    for (int64_t j = i; j < n; ++j) y[j] = tmp[j - i];
  }
}

// Eight hidden units of an LSTM step (lstm_cell_f32): the four gates of units j .. j + 7 are 8
// floats each, h apart. All in registers, one pass; the same arithmetic as the unfused slots.
inline void lstm_cell8(float* a, const float* rec, const float* c_prev, float* c, float* h_out, int64_t h) {
  auto gate = [&](int64_t at) { return _mm256_add_ps(_mm256_loadu_ps(a + at), _mm256_loadu_ps(rec + at)); };
  const __m256 i = keep_nan<sigmoid8>(gate(0)), f = keep_nan<sigmoid8>(gate(h));
  const __m256 g = keep_nan<tanh8>(gate(2 * h)), o = keep_nan<sigmoid8>(gate(3 * h));
  _mm256_storeu_ps(a, i);
  _mm256_storeu_ps(a + h, f);
  _mm256_storeu_ps(a + 2 * h, g);
  _mm256_storeu_ps(a + 3 * h, o);
  const __m256 cell = _mm256_add_ps(_mm256_mul_ps(f, _mm256_loadu_ps(c_prev)), _mm256_mul_ps(i, g));
  _mm256_storeu_ps(c, cell);
  _mm256_storeu_ps(h_out, _mm256_mul_ps(o, keep_nan<tanh8>(cell)));
}

}  // namespace

void lstm_cell_f32__avx2(float* a, const float* rec, const float* c_prev, float* c, float* h_out, int64_t h) {
  int64_t j = 0;
  for (; j + 8 <= h; j += 8) lstm_cell8(a + j, rec + j, c_prev + j, c + j, h_out + j, h);
  if (j == h) return;
  // The last h % 8 units through zero-padded copies laid out as h = 8.
  const int64_t rest = h - j;
  alignas(32) float ta[32] = {}, tr[32] = {}, tp[8] = {}, tc[8], th[8];
  for (int k = 0; k < 4; ++k)
    for (int64_t u = 0; u < rest; ++u) {
      ta[8 * k + u] = a[k * h + j + u];
      tr[8 * k + u] = rec[k * h + j + u];
    }
  for (int64_t u = 0; u < rest; ++u) tp[u] = c_prev[j + u];
  lstm_cell8(ta, tr, tp, tc, th, 8);
  for (int k = 0; k < 4; ++k)
    for (int64_t u = 0; u < rest; ++u) a[k * h + j + u] = ta[8 * k + u];
  for (int64_t u = 0; u < rest; ++u) {
    c[j + u] = tc[u];
    h_out[j + u] = th[u];
  }
}

void sigmoid_f32__avx2(const float* x, float* y, int64_t n) { apply<sigmoid8>(x, y, n); }
void tanh_f32__avx2(const float* x, float* y, int64_t n) { apply<tanh8>(x, y, n); }
void exp_f32__avx2(const float* x, float* y, int64_t n) { apply<exp_saturating8>(x, y, n); }

}  // namespace shrink::kernel_variants
