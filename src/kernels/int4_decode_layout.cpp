#include "kernels/int4_decode_layout.h"

#include <cstring>

#include "core/env_switch.h"
#include "shrink/kernels/cpu.h"

namespace shrink {

Int4DecodeForm int4_decode_form(const Int4Weights& w, Isa isa) {
  static const bool row_blocks = switched_on("SHRINK_INT4_ROW_BLOCKS");
  if (row_blocks && isa >= Isa::vnni && int4_row_blocks_fit(w, 16)) return Int4DecodeForm::row_blocks_16;
  if (row_blocks && isa >= Isa::avx2 && isa < Isa::vnni && int4_row_blocks_fit(w, 8))
    return Int4DecodeForm::row_blocks_8;
  return w.k % 64 == 0 ? Int4DecodeForm::panels : Int4DecodeForm::rows;
}

Int4DecodeLayout make_int4_decode_layout(const Int4Weights& w) {
  return make_int4_decode_layout(w, int4_decode_form(w, active_isa()));
}

Int4DecodeLayout make_int4_decode_layout(const Int4Weights& w, Int4DecodeForm form) {
  Int4DecodeLayout layout;
  layout.weights = w;
  if (form == Int4DecodeForm::row_blocks_8 || form == Int4DecodeForm::row_blocks_16) {
    const int64_t rows = form == Int4DecodeForm::row_blocks_8 ? 8 : 16;
    layout.memory = weight_arena::take(static_cast<size_t>(w.n / rows * int4_row_block_bytes(w.k, w.group, rows)));
    pack_int4_row_blocks(w, rows, layout.memory.as<uint8_t>());
    layout.weights.row_blocks = layout.memory.as<uint8_t>();
    layout.weights.block_rows = rows;
    return layout;
  }
  if (form == Int4DecodeForm::rows) return layout;
  const size_t panel_bytes = static_cast<size_t>(w.n * w.k / 2), groups = static_cast<size_t>(w.n * (w.k / w.group));
  const size_t scale_at = (panel_bytes + 63) / 64 * 64, min_at = scale_at + (groups * 2 + 63) / 64 * 64;
  layout.memory = weight_arena::take(min_at + groups * 2);
  std::byte* base = layout.memory.data();
  auto* panels = reinterpret_cast<uint8_t*>(base);
  auto* scales = reinterpret_cast<uint16_t*>(base + scale_at);
  auto* mins = reinterpret_cast<uint16_t*>(base + min_at);
  pack_int4_panels(w.nibbles, w.n, w.k, panels);
  Int4Weights& with = layout.weights;
  if (w.group == 32) {
    pack_int4_panel_scales(w.scales, w.n, w.k, w.group, scales);
    with.panel_scales = scales;
  } else {
    std::memcpy(scales, w.scales, groups * 2);
    with.scales = scales;
  }
  std::memcpy(mins, w.mins, groups * 2);
  with.panels = panels;
  with.mins = mins;
  return layout;
}

}  // namespace shrink
