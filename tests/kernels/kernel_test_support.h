// Runs a test body for every variant of a slot that can run at the active ISA level.
#pragma once
#include <gtest/gtest.h>

#include "shrink/kernels/registry.h"

namespace shrink::testing {

// Awkward lengths: around SIMD widths and block counts (after ggml's test habits).
inline constexpr int64_t kAwkwardSizes[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 257};

template <class Fn, class Body> int for_each_variant(std::span<const KernelVariant<Fn>> variants, Body&& body) {
  EXPECT_TRUE(std::string(variants.front().name).ends_with("__ref")) << "the first variant must be __ref";
  int ran = 0;
  for (const auto& variant : variants) {
    if (!variant.runs_here(active_isa())) continue;
    SCOPED_TRACE(variant.name);
    body(variant);
    ++ran;
  }
  return ran;
}

}  // namespace shrink::testing
