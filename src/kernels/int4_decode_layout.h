// The int4 weights as the decode GEMV reads them: the nibbles in 4-row panels, the scales (in the
// panels' order at groups of 32) and the mins, one after another in one span of 2 MB pages
// (core/weight_arena.h). Int4Linear makes this once, on its first decoded token; `shrink bench
// kernels` makes its cold copies the same way, so that it times what a decoded token reads.
#pragma once
#include "core/weight_arena.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink {

struct Int4DecodeLayout {
  weight_arena::Block memory;  // empty when k % 64 != 0 (no panel layout): weights are the input's
  Int4Weights weights;         // the input's, with panels, scales, mins (and panel_scales) moved into memory
};

Int4DecodeLayout make_int4_decode_layout(const Int4Weights& w);

}  // namespace shrink
