// Loads OpenBLAS with dlopen after choosing OPENBLAS_CORETYPE (see openblas.h for why).
#include "shrink/kernels/openblas.h"

#include <dlfcn.h>

#include <strings.h>

#include <cstdlib>
#include <string>

#include "shrink/core/parallel.h"
#include "shrink/kernels/cpu.h"

namespace shrink {
namespace {

// The instruction set an x86 OpenBLAS core type's kernels use at most (the names OPENBLAS_CORETYPE
// takes; see OpenBLAS's dynamic.c): AVX-512, AVX2, or older (anything else; an unknown name too).
Isa coretype_isa(const char* name) {
  for (const char* n : {"SkylakeX", "CooperLake", "SapphireRapids"})
    if (strcasecmp(name, n) == 0) return Isa::avx512;
  for (const char* n : {"Haswell", "Zen"})
    if (strcasecmp(name, n) == 0) return Isa::avx2;
  return Isa::ref;
}

OpenBlas load() {
  OpenBlas blas;
  const Isa isa = detected_isa();
  const char* best = isa >= Isa::avx512 ? "SkylakeX" : isa >= Isa::avx2 ? "Haswell" : nullptr;
  if (const char* forced = std::getenv("SHRINK_OPENBLAS_CORETYPE"); forced && *forced) {
    setenv("OPENBLAS_CORETYPE", forced, 1);
    blas.coretype_source = "from SHRINK_OPENBLAS_CORETYPE";
  } else if (const char* preset = std::getenv("OPENBLAS_CORETYPE"); preset && *preset) {
    // A preset below what the CPU runs is overruled: a machine's environment can carry one set for
    // another CPU (the 2-core AMD EPYC Zen 5 host of 2026-12-03 had OPENBLAS_CORETYPE=Haswell:
    // sgemm 246 GFLOP/s on two threads against 470 with SkylakeX), and shrink's fp32 path must
    // not inherit that silently. SHRINK_OPENBLAS_CORETYPE forces a core type when one is wanted.
    if (best && coretype_isa(preset) < coretype_isa(best)) {
      blas.coretype_source = std::string("set by shrink; the environment's ") + preset +
                             " would leave this CPU's wider instructions unused (SHRINK_OPENBLAS_CORETYPE forces one)";
      setenv("OPENBLAS_CORETYPE", best, 1);
    } else {
      blas.coretype_source = "from the environment";
    }
  } else if (best) {
    setenv("OPENBLAS_CORETYPE", best, 0);
    blas.coretype_source = "set by shrink";
  } else {
    blas.coretype_source = "not set";
  }
  // shrink calls OpenBLAS from one thread at a time and splits work over its own workers; with
  // one thread from the start OpenBLAS creates no server threads, which otherwise spin in
  // sched_yield for ~0.1 s after loading, beside shrink's first parallel work (seen as the OpenMP
  // worker getting half a core in the first tenth of a second of an int8 GEMM benchmark).
  setenv("OPENBLAS_NUM_THREADS", "1", 0);
  for (const char* name : {"libopenblas.so.0", "libopenblas.so"}) {
    void* handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!handle) continue;
    blas.sgemm = reinterpret_cast<decltype(blas.sgemm)>(dlsym(handle, "cblas_sgemm"));
    blas.sgesdd = reinterpret_cast<decltype(blas.sgesdd)>(dlsym(handle, "sgesdd_"));
    blas.sgemv = reinterpret_cast<decltype(blas.sgemv)>(dlsym(handle, "cblas_sgemv"));
    blas.ssyrk = reinterpret_cast<decltype(blas.ssyrk)>(dlsym(handle, "cblas_ssyrk"));
    blas.strsm = reinterpret_cast<decltype(blas.strsm)>(dlsym(handle, "cblas_strsm"));
    blas.strmm = reinterpret_cast<decltype(blas.strmm)>(dlsym(handle, "cblas_strmm"));
    blas.dpotrf = reinterpret_cast<decltype(blas.dpotrf)>(dlsym(handle, "dpotrf_"));
    blas.dpotri = reinterpret_cast<decltype(blas.dpotri)>(dlsym(handle, "dpotri_"));
    blas.spotrf = reinterpret_cast<decltype(blas.spotrf)>(dlsym(handle, "spotrf_"));
    blas.strtri = reinterpret_cast<decltype(blas.strtri)>(dlsym(handle, "strtri_"));
    blas.dgemm = reinterpret_cast<decltype(blas.dgemm)>(dlsym(handle, "cblas_dgemm"));
    blas.set_num_threads =
        reinterpret_cast<decltype(blas.set_num_threads)>(dlsym(handle, "openblas_set_num_threads"));
    auto corename = reinterpret_cast<const char* (*)()>(dlsym(handle, "openblas_get_corename"));
    auto config = reinterpret_cast<const char* (*)()>(dlsym(handle, "openblas_get_config"));
    if (!blas.sgemm) continue;
    blas.loaded = true;
    blas.path = name;
    if (corename) blas.core_name = corename();
    if (config) blas.config = config();
    if (blas.set_num_threads) blas.set_num_threads(1);  // shrink splits GEMMs over its own workers
    break;
  }
  return blas;
}

}  // namespace

const OpenBlas& openblas() {
  static const OpenBlas blas = load();
  return blas;
}

}  // namespace shrink
