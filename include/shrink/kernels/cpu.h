// What this CPU can do, detected once at start-up (cpuid, xgetbv, and the Linux permission
// request AMX needs), and the ISA level kernels are dispatched at (SHRINK_ISA may lower it).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shrink {

// Ordered: each level includes the ones before it.
enum class Isa { ref = 0, avx2 = 1, avx512 = 2, vnni = 3, amx = 4 };
constexpr int kIsaCount = 5;

struct CpuFeatures {
  std::string brand;
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_vnni = false, avx512_bf16 = false, gfni = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  bool os_avx = false, os_avx512 = false, os_amx = false;  // the OS saves these registers
  bool amx_permitted = false;                              // arch_prctl(ARCH_REQ_XCOMP_PERM) ok
};

const CpuFeatures& cpu_features();
Isa detected_isa();  // highest level this machine supports
// Level in force: detected_isa(), or SHRINK_ISA when set. Throws UsageError when SHRINK_ISA
// names an unknown level or one this machine lacks.
Isa active_isa();
std::string_view isa_name(Isa isa);
std::optional<Isa> isa_from_name(std::string_view name);
// L1 data cache per core in bytes, from the C library (32 KB where it does not say): the VNNI int8
// GEMM and int4 prefill block k only where a block's 32 KB of weights stay in it beside the rows.
int64_t l1d_cache_bytes();
// L2 cache per core in bytes, from the C library (256 KB where it does not say): the GEMMs size
// their blocks of activation rows by it.
int64_t l2_cache_bytes();
// Last-level (L3) cache in bytes, 32 MB where the C library does not say: benchmarks of cold
// weights rotate through several times this much.
int64_t l3_cache_bytes();

}  // namespace shrink
