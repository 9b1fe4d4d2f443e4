// Convolutions as one GEMM over im2col rows of a channels-last (N, H, W, C) input, the form the
// int8 convolutions take (QuantConv2d on u8, DynamicQuantConv2d on f32): the geometry, the
// gathering of one row (columns (ky, kx, channel of the group), as the packed weights of
// packed_int8_groups(..., channels_last = true) expect), and the results' way back to NCHW.
#pragma once
#include <algorithm>
#include <cstring>

#include "ops/op_support.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {

// memcpy for im2col's short pieces: common sizes become plain vector moves, a few bytes (a
// one-channel input's taps) a byte loop, instead of a library call each.
inline void copy_run(uint8_t* to, const uint8_t* from, int64_t n) {
  switch (n) {
    case 16: std::memcpy(to, from, 16); return;
    case 32: std::memcpy(to, from, 32); return;
    case 64: std::memcpy(to, from, 64); return;
    case 96: std::memcpy(to, from, 96); return;
    case 192: std::memcpy(to, from, 192); return;
    default:
      if (n <= 8) {
        for (int64_t i = 0; i < n; ++i) to[i] = from[i];
      } else {
        std::memcpy(to, from, size_t(n));
      }
  }
}
inline void copy_run(float* to, const float* from, int64_t n) { std::copy_n(from, n, to); }

struct ConvRows {
  ConvAttrs a;
  int64_t n, h, w, oh, ow, positions, cg, ocg, k;

  ConvRows(const ConvAttrs& attrs, int64_t images, int64_t height, int64_t width)
      : a(attrs), n(images), h(height), w(width), oh(attrs.out_h(height)), ow(attrs.out_w(width)),
        positions(oh * ow), cg(attrs.c / attrs.groups), ocg(attrs.oc / attrs.groups), k(cg * attrs.kh * attrs.kw) {}
  int64_t rows() const { return n * positions; }

  // Row r (image, oy, ox) of group `group` into row[0, k); taps outside the image are `pad`.
  template <class T>
  void gather(const T* nhwc, int64_t group, int64_t r, T pad, T* row) const {
    const int64_t image = r / positions, oy = r % positions / ow, ox = r % ow;
    const int64_t ix0 = ox * a.sw - a.pw;
    // With one group and no dilation a kernel row's taps are kw * C contiguous input values.
    const bool whole_rows = a.groups == 1 && a.dw == 1 && ix0 >= 0 && ix0 + a.kw <= w;
    for (int64_t ky = 0; ky < a.kh; ++ky) {
      const int64_t iy = oy * a.sh - a.ph + ky * a.dh;
      if (iy < 0 || iy >= h) {
        row = std::fill_n(row, a.kw * cg, pad);
        continue;
      }
      const T* line = nhwc + (image * h + iy) * w * a.c;
      if (whole_rows) {
        copy_run(row, line + ix0 * a.c, a.kw * cg);
        row += a.kw * cg;
        continue;
      }
      for (int64_t kx = 0; kx < a.kw; ++kx, row += cg) {
        const int64_t ix = ix0 + kx * a.dw;
        if (ix < 0 || ix >= w) {
          std::fill_n(row, cg, pad);
        } else {
          copy_run(row, line + ix * a.c + group * cg, cg);
        }
      }
    }
  }

  // Calls convolve(first, last, parallel_inside) over the batch's rows. With enough images each
  // thread convolves blocks of 1024 of its rows with cache-resident buffers (the GEMM inside runs
  // single-threaded: parallel_for does not nest); else blocks of 16,384 rows, the work parallel
  // inside (one large image's buffers stay bounded: 16,384 rows of 3 x 3 x 64 inputs are 9 MB).
  template <class Convolve>
  void for_row_blocks(const Convolve& convolve) const {
    if (n >= 2 * num_threads()) {
      parallel_for(0, rows(), positions, [&](int64_t first, int64_t last) {
        for (int64_t r = first; r < last; r += 1024) convolve(r, std::min(last, r + 1024), false);
      });
    } else {
      for (int64_t r = 0; r < rows(); r += 16384) convolve(r, std::min(rows(), r + 16384), true);
    }
  }

  // Results of rows [first, last) ((position, channel), row stride oc) into y (N, OC, OH, OW).
  void to_nchw(const float* result, int64_t first, int64_t last, float* y) const {
    for (int64_t r = first; r < last; ++r)
      for (int64_t ch = 0; ch < a.oc; ++ch)
        y[(r / positions * a.oc + ch) * positions + r % positions] = result[(r - first) * a.oc + ch];
  }
};

}  // namespace shrink::nn::ops
