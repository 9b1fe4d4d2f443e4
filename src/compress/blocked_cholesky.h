// The two factorisations GPTQ and SparseGPT spend their per-layer time in (gptq.cpp,
// inverse_hessian_factor), blocked as LAPACK's spotrf and strtri are, with each block step's
// BLAS-3 work split over shrink's threads. OpenBLAS runs single-threaded inside shrink (its own
// threads would spin beside shrink's), so LAPACK's routines called whole used one core: for a
// 1536-wide Hessian that was 60% of one layer's GPTQ.
// Column-major n x n matrices, as LAPACK's; internal to compress/. `block`: the block size, 0 to
// choose it by n (what the tests vary).
#pragma once
#include <cstdint>

namespace shrink::compress {

// A = R^T R, R upper triangular with a positive diagonal, written over A's upper triangle (the
// strictly lower part is left as it was; only the upper part is read), as spotrf("U"). False
// when A is not positive definite.
bool cholesky_upper(float* a, int64_t n, int64_t block = 0);

// R^-1 in place, for R upper triangular with a non-zero diagonal (the strictly lower part is
// neither read nor written), as strtri("U", "N"). False on a zero on the diagonal.
bool invert_upper(float* a, int64_t n, int64_t block = 0);

}  // namespace shrink::compress
