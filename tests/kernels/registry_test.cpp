// The registry: feature detection is coherent, SHRINK_ISA is honoured and validated, every slot
// has a reference variant, and each level's table only uses variants allowed at that level.
#include <gtest/gtest.h>

#include <cstdlib>

#include "shrink/core/error.h"
#include "shrink/kernels/cpu.h"
#include "shrink/kernels/registry.h"

namespace shrink {
namespace {

TEST(Cpu, DetectedLevelMatchesFeatures) {
  const CpuFeatures& f = cpu_features();
  const Isa level = detected_isa();
  if (level >= Isa::avx2) {
    EXPECT_TRUE(f.avx2 && f.fma && f.f16c && f.os_avx);
  }
  if (level >= Isa::avx512) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl && f.os_avx512);
  }
  if (level >= Isa::vnni) {
    EXPECT_TRUE(f.avx512_vnni);
  }
  if (level >= Isa::amx) {
    EXPECT_TRUE(f.amx_int8 && f.amx_permitted);
  }
  for (int i = 0; i < kIsaCount; ++i) EXPECT_EQ(isa_from_name(isa_name(Isa(i))), Isa(i));
}

TEST(Cpu, ShrinkIsaIsValidated) {
  const char* saved = std::getenv("SHRINK_ISA");
  const std::string restore = saved ? saved : "";
  setenv("SHRINK_ISA", "pentium", 1);
  EXPECT_THROW(active_isa(), UsageError);
  setenv("SHRINK_ISA", "ref", 1);
  EXPECT_EQ(active_isa(), Isa::ref);
  if (detected_isa() < Isa::amx) {
    setenv("SHRINK_ISA", "amx", 1);
    EXPECT_THROW(active_isa(), UsageError);
  }
  if (saved) setenv("SHRINK_ISA", restore.c_str(), 1); else unsetenv("SHRINK_ISA");
}

TEST(Registry, EachLevelUsesOnlyItsVariants) {
  for (int i = 0; i <= int(detected_isa()); ++i) {
    const KernelTable table = make_kernel_table(Isa(i));
#define SHRINK_CHECK_SLOT(slot, Fn)                                        \
  {                                                                        \
    EXPECT_NE(table.slot, nullptr) << #slot;                               \
    bool found = false;                                                    \
    for (const auto& v : slot##_variants())                                \
      if (v.fn == table.slot) {                                            \
        found = true;                                                      \
        EXPECT_LE(int(v.isa), i) << v.name;                                \
      }                                                                    \
    EXPECT_TRUE(found) << #slot;                                           \
    EXPECT_TRUE(std::string(slot##_variants().front().name).ends_with("__ref")); \
  }
    SHRINK_KERNEL_SLOTS(SHRINK_CHECK_SLOT)
#undef SHRINK_CHECK_SLOT
    EXPECT_EQ(table.chosen.size(), size_t(kKernelSlotCount));
  }
  // At level ref only scalar code runs.
  for (const auto& [slot, name] : make_kernel_table(Isa::ref).chosen) EXPECT_TRUE(name.ends_with("__ref")) << name;
}

TEST(Registry, DequantizeKernelsCoverTheReadersFormats) {
  for (GgmlType type : {GgmlType::q4_0, GgmlType::q4_1, GgmlType::q5_0, GgmlType::q5_1, GgmlType::q8_0,
                        GgmlType::q4_k, GgmlType::q6_k})
    EXPECT_NE(dequantize_kernel(type), nullptr);
  EXPECT_EQ(dequantize_kernel(GgmlType::iq2_xxs), nullptr);
}

}  // namespace
}  // namespace shrink
