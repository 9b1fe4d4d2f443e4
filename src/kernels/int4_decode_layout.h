// The int4 weights as the decode GEMV reads them, in one span of 2 MB pages
// (core/weight_arena.h). Int4Linear makes this once, on its first decoded token; `shrink bench
// kernels` makes its cold copies the same way, so that it times what a decoded token reads.
#pragma once
#include "core/weight_arena.h"
#include "shrink/kernels/cpu.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink {

enum class Int4DecodeForm {
  rows,           // none: k % 64 != 0, the kernels read the input's rows
  panels,         // the nibbles in 4-row panels, the scales (in the panels' order at groups of 32) and the mins
  row_blocks_8,   // nibbles, scales and mins in 8-row blocks (pack_int4_row_blocks): the AVX2 kernel's
  row_blocks_16,  // the same in 16-row blocks: the AVX512-VNNI kernel's
};

// The form the kernels at `isa` decode fastest from: row blocks where they fit, 16 rows where the
// VNNI kernel runs and 8 where the AVX2 one does (unless SHRINK_INT4_ROW_BLOCKS=0,
// core/env_switch.h), else panels where k % 64 == 0.
Int4DecodeForm int4_decode_form(const Int4Weights& w, Isa isa);

struct Int4DecodeLayout {
  weight_arena::Block memory;  // empty for Int4DecodeForm::rows: weights are the input's
  Int4Weights weights;         // the input's, with the layout's parts pointing into memory
};

// In the form for the active ISA level.
Int4DecodeLayout make_int4_decode_layout(const Int4Weights& w);
Int4DecodeLayout make_int4_decode_layout(const Int4Weights& w, Int4DecodeForm form);

}  // namespace shrink
