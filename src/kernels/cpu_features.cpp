// CPU feature detection (cpuid + xgetbv), the AMX permission request, and SHRINK_ISA.
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "shrink/core/error.h"
#include "shrink/kernels/cpu.h"

namespace shrink {
namespace {

constexpr std::string_view kIsaNames[kIsaCount] = {"ref", "avx2", "avx512", "vnni", "amx"};

uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

bool request_amx_permission() {
  constexpr long kArchReqXcompPerm = 0x1023, kArchGetXcompPerm = 0x1022;
  constexpr int kXfeatureTileData = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureTileData) != 0) return false;
  unsigned long bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0) return false;
  return (bitmask >> kXfeatureTileData) & 1;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
    f.fma = ecx >> 12 & 1;
    f.f16c = ecx >> 29 & 1;
    const bool osxsave = ecx >> 27 & 1;
    if (osxsave) {
      const uint64_t xcr0 = read_xcr0();
      f.os_avx = (xcr0 & 0x6) == 0x6;                // XMM and YMM state
      f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
      f.os_amx = (xcr0 & 0x60000) == 0x60000;       // XTILECFG, XTILEDATA
    }
  }
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    f.avx2 = ebx >> 5 & 1;
    f.avx512f = ebx >> 16 & 1;
    f.avx512dq = ebx >> 17 & 1;
    f.avx512bw = ebx >> 30 & 1;
    f.avx512vl = ebx >> 31 & 1;
    f.gfni = ecx >> 8 & 1;
    f.avx512_vnni = ecx >> 11 & 1;
    f.amx_bf16 = edx >> 22 & 1;
    f.amx_tile = edx >> 24 & 1;
    f.amx_int8 = edx >> 25 & 1;
  }
  if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) f.avx512_bf16 = eax >> 5 & 1;
  unsigned brand[12] = {};
  if (__get_cpuid_max(0x80000000, nullptr) >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2],
                  &brand[4 * i + 3]);
    f.brand.assign(reinterpret_cast<const char*>(brand), strnlen(reinterpret_cast<const char*>(brand), 48));
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
  }
  if (f.amx_tile && f.os_amx) f.amx_permitted = request_amx_permission();
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

Isa detected_isa() {
  const CpuFeatures& f = cpu_features();
  if (!(f.os_avx && f.avx2 && f.fma && f.f16c)) return Isa::ref;
  if (!(f.os_avx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)) return Isa::avx2;
  if (!f.avx512_vnni) return Isa::avx512;
  if (!(f.amx_tile && f.amx_int8 && f.amx_permitted)) return Isa::vnni;
  return Isa::amx;
}

std::string_view isa_name(Isa isa) { return kIsaNames[int(isa)]; }

std::optional<Isa> isa_from_name(std::string_view name) {
  for (int i = 0; i < kIsaCount; ++i)
    if (kIsaNames[i] == name) return Isa(i);
  return std::nullopt;
}

Isa active_isa() {
  const char* forced = std::getenv("SHRINK_ISA");
  if (!forced || !*forced) return detected_isa();
  const auto level = isa_from_name(forced);
  if (!level)
    throw UsageError("unknown ISA level '" + std::string(forced) + "'", "SHRINK_ISA",
                     "use one of ref, avx2, avx512, vnni, amx");
  if (*level > detected_isa())
    throw UsageError("this CPU does not support '" + std::string(forced) + "' (it supports up to '" +
                         std::string(isa_name(detected_isa())) + "')",
                     "SHRINK_ISA", "choose a lower level or unset SHRINK_ISA");
  return *level;
}

int64_t l1d_cache_bytes() {
  static const int64_t bytes = [] {
    const long reported = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    return reported > 0 ? int64_t(reported) : int64_t(32) * 1024;
  }();
  return bytes;
}

int64_t l2_cache_bytes() {
  static const int64_t bytes = [] {
    const long reported = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return reported > 0 ? int64_t(reported) : int64_t(256) * 1024;
  }();
  return bytes;
}

int64_t l3_cache_bytes() {
  static const int64_t bytes = [] {
    const long reported = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return reported > 0 ? int64_t(reported) : int64_t(32) << 20;
  }();
  return bytes;
}

}  // namespace shrink
