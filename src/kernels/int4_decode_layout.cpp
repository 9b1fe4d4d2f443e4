#include "kernels/int4_decode_layout.h"

#include <cstring>

namespace shrink {

Int4DecodeLayout make_int4_decode_layout(const Int4Weights& w) {
  Int4DecodeLayout layout;
  layout.weights = w;
  if (w.k % 64 != 0) return layout;
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
