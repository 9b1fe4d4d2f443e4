// shrink info: the CPU features detected, the ISA level in force, the kernel chosen for each
// slot, and how OpenBLAS was loaded.
#include <fmt/format.h>

#include "cli/commands.h"
#include "core/weight_arena.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/cpu.h"
#include "shrink/kernels/openblas.h"
#include "shrink/kernels/registry.h"

namespace shrink::cli {

void setup_info(CLI::App& sub) {
  auto levels = std::make_shared<bool>(false);
  sub.add_flag("--levels", *levels, "Print the ISA levels this machine supports, lowest first, and nothing else");
  sub.callback([levels] {
    if (*levels) {
      for (int i = 0; i <= int(detected_isa()); ++i) fmt::print("{}\n", isa_name(Isa(i)));
      return;
    }
    const CpuFeatures& f = cpu_features();
    auto yes = [](bool b) { return b ? "yes" : "no"; };
    fmt::print("cpu                {}\n", f.brand.empty() ? "(unknown)" : f.brand);
    fmt::print("features           avx2 {} fma {} f16c {} | avx512f {} bw {} vl {} dq {} | vnni {} bf16 {} gfni {} | amx-tile {} int8 {} bf16 {} (permitted {})\n",
               yes(f.avx2), yes(f.fma), yes(f.f16c), yes(f.avx512f), yes(f.avx512bw), yes(f.avx512vl),
               yes(f.avx512dq), yes(f.avx512_vnni), yes(f.avx512_bf16), yes(f.gfni), yes(f.amx_tile), yes(f.amx_int8),
               yes(f.amx_bf16), yes(f.amx_permitted));
    fmt::print("isa                {} (detected {}; SHRINK_ISA lowers it)\n", isa_name(active_isa()), isa_name(detected_isa()));
    fmt::print("threads            {}\n", num_threads());
    const KernelTable& table = kernels();
    const OpenBlas& blas = openblas();
    if (blas.loaded) {
      fmt::print("openblas           {} core {} (OPENBLAS_CORETYPE {})\n", blas.path, blas.core_name, blas.coretype_source);
    } else {
      fmt::print("openblas           not found: fp32 GEMM uses shrink's own kernel\n");
    }
    const std::string thp = weight_arena::transparent_huge_pages();
    const bool asked = weight_arena::huge_pages_asked(), huge = asked && (thp == "always" || thp == "madvise");
    fmt::print("huge pages         transparent_hugepage {}{}: {}\n", thp.empty() ? "unreadable" : thp,
               asked ? "" : ", SHRINK_HUGE_PAGES=0",
               huge ? "decode layouts ask for 2 MB pages"
                    : "decode layouts stay in 4 KB pages (decode 0-4% slower on the Zen 5 host)");
    fmt::print("\nkernels\n");
    for (const auto& [slot, variant] : table.chosen) fmt::print("  {:<22} {}\n", slot, variant);
  });
}

}  // namespace shrink::cli
