// Loads OpenBLAS with dlopen after choosing OPENBLAS_CORETYPE (see openblas.h for why).
#include "shrink/kernels/openblas.h"

#include <dlfcn.h>

#include <cstdlib>

#include "shrink/core/parallel.h"
#include "shrink/kernels/cpu.h"

namespace shrink {
namespace {

OpenBlas load() {
  OpenBlas blas;
  if (const char* preset = std::getenv("OPENBLAS_CORETYPE"); preset && *preset) {
    blas.coretype_source = "from the environment";
  } else if (detected_isa() >= Isa::avx2) {
    setenv("OPENBLAS_CORETYPE", detected_isa() >= Isa::avx512 ? "SkylakeX" : "Haswell", 0);
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
    blas.dpotrf = reinterpret_cast<decltype(blas.dpotrf)>(dlsym(handle, "dpotrf_"));
    blas.dpotri = reinterpret_cast<decltype(blas.dpotri)>(dlsym(handle, "dpotri_"));
    blas.spotrf = reinterpret_cast<decltype(blas.spotrf)>(dlsym(handle, "spotrf_"));
    blas.spotri = reinterpret_cast<decltype(blas.spotri)>(dlsym(handle, "spotri_"));
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
