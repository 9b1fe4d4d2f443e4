// OpenBLAS, loaded at run time rather than linked, so that shrink can choose the core type before
// the library initialises: Debian's OpenBLAS 0.3.21 misdetects recent Xeons as "Prescott" and
// runs sgemm 6-8x below its best. shrink sets OPENBLAS_CORETYPE from the detected ISA (SkylakeX
// for AVX-512, Haswell for AVX2) before dlopen when it is unset or names a core type of an older
// instruction set than the CPU has (SHRINK_OPENBLAS_CORETYPE forces any). LAPACK routines come
// from the same library.
#pragma once
#include <string>

namespace shrink {

struct OpenBlas {
  bool loaded = false;
  std::string path;       // the library that was loaded
  std::string core_name;  // what OpenBLAS says it runs on (openblas_get_corename)
  std::string config;     // openblas_get_config
  std::string coretype_source;  // "set by shrink" (and why), "from the environment", ... or "not set"
  // cblas_sgemm with CBLAS's enum values as ints (row major 101, no-trans 111, trans 112).
  void (*sgemm)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                const float* a, int lda, const float* b, int ldb, float beta, float* c,
                int ldc) = nullptr;
  // cblas_ssyrk: C = alpha op(A)^T op(A) + beta C on one triangle (row major 101, upper 121).
  void (*ssyrk)(int order, int uplo, int trans, int n, int k, float alpha, const float* a, int lda, float beta,
                float* c, int ldc) = nullptr;
  // cblas_strsm: B = alpha op(A)^-1 B (side left 141) or alpha B op(A)^-1 (right 142), A triangular
  // (upper 121, lower 122; non-unit diagonal 131); cblas_strmm: B = alpha op(A) B or alpha B op(A).
  void (*strsm)(int order, int side, int uplo, int trans, int diag, int m, int n, float alpha, const float* a, int lda,
                float* b, int ldb) = nullptr;
  void (*strmm)(int order, int side, int uplo, int trans, int diag, int m, int n, float alpha, const float* a, int lda,
                float* b, int ldb) = nullptr;
  // cblas_sgemv: y = alpha op(A) x + beta y (the decode case, one activation row).
  void (*sgemv)(int order, int trans, int m, int n, float alpha, const float* a, int lda, const float* x, int incx,
                float beta, float* y, int incy) = nullptr;
  void (*set_num_threads)(int) = nullptr;
  // LAPACK's sgesdd (Fortran interface, column-major): A = U diag(S) VT.
  void (*sgesdd)(const char* jobz, const int* m, const int* n, float* a, const int* lda, float* s, float* u,
                 const int* ldu, float* vt, const int* ldvt, float* work, const int* lwork, int* iwork,
                 int* info) = nullptr;
  // LAPACK's Cholesky factorisation (dpotrf) and inverse from it (dpotri), column-major; uplo
  // "L" or "U" names the triangle used; info > 0: not positive definite.
  void (*dpotrf)(const char* uplo, const int* n, double* a, const int* lda, int* info) = nullptr;
  void (*dpotri)(const char* uplo, const int* n, double* a, const int* lda, int* info) = nullptr;
  void (*spotrf)(const char* uplo, const int* n, float* a, const int* lda, int* info) = nullptr;
  // LAPACK's inverse of a triangular matrix in place (diag "N": not unit), column-major.
  void (*strtri)(const char* uplo, const char* diag, const int* n, float* a, const int* lda, int* info) = nullptr;
  // cblas_dgemm (same conventions as sgemm), for the f64 Hessian updates of GPTQ.
  void (*dgemm)(int order, int trans_a, int trans_b, int m, int n, int k, double alpha, const double* a, int lda,
                const double* b, int ldb, double beta, double* c, int ldc) = nullptr;
};

// Loads on first call; loaded is false when no OpenBLAS is installed.
const OpenBlas& openblas();

}  // namespace shrink
