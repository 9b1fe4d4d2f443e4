#include "compress/blocked_cholesky.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "shrink/core/error.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/openblas.h"

namespace shrink::compress {
namespace {

// CBLAS's enum values.
constexpr int kColMajor = 102, kNoTrans = 111, kTrans = 112, kUpper = 121, kNonUnit = 131, kLeft = 141, kRight = 142;
// The block: wider blocks make the trailing updates' GEMMs deeper (OpenBLAS packs less per
// multiply-add) but leave more to the serial diagonal blocks. On the 2-core AMX host, 2 threads:
// 128 against 64 1.15-1.18x at n = 1536 and 4096; 256 against 128 0.93-0.98x at 1536, 1.00x at
// 2048, 1.03x at 3072, 1.06x at 4096, 1.17x at 8192.
int64_t block_for(int64_t n, int64_t block) { return block > 0 ? block : n >= 3072 ? 256 : 128; }

const OpenBlas& lapack() {
  const OpenBlas& blas = openblas();
  if (!blas.spotrf || !blas.strtri || !blas.strsm || !blas.strmm || !blas.sgemm || !blas.ssyrk)
    throw UnsupportedError("GPTQ needs LAPACK and BLAS (OpenBLAS's spotrf, strtri, trsm, trmm, gemm, syrk); none was found");
  return blas;
}

// [0, count) in one range per thread, `weight(c)` the work of the first c items (increasing), the
// ranges' ends rounded to multiples of 16; calls body(begin, end) for each non-empty range.
template <class Weight, class Body>
void split_by_work(int64_t count, const Weight& weight, const Body& body) {
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(num_threads(), count / 16));
  std::vector<int64_t> ends(static_cast<size_t>(threads + 1), count);
  ends[0] = 0;
  const double total = weight(count);
  for (int64_t t = 1; t < threads; ++t) {
    int64_t c = 0;
    while (c < count && weight(c) < total * double(t) / double(threads)) c += 16;
    ends[size_t(t)] = std::clamp(c, ends[size_t(t) - 1], count);
  }
  parallel_for(0, threads, 1, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t)
      if (ends[size_t(t)] < ends[size_t(t) + 1]) body(ends[size_t(t)], ends[size_t(t) + 1]);
  });
}

template <class Body>
void split_evenly(int64_t count, const Body& body) {
  split_by_work(count, [](int64_t c) { return double(c); }, body);
}

}  // namespace

bool cholesky_upper(float* a, int64_t n, int64_t block) {
  const OpenBlas& blas = lapack();
  const int ld = int(n);
  block = block_for(n, block);
  // Right-looking: factor the diagonal block, solve the block row right of it, and take that
  // row's outer product from the trailing matrix.
  for (int64_t j = 0; j < n; j += block) {
    const int64_t jb = std::min(block, n - j), rest = n - j - jb;
    float* a11 = a + j + j * n;
    int size = int(jb), info = 0;
    blas.spotrf("U", &size, a11, &ld, &info);
    if (info != 0) return false;
    if (rest == 0) break;
    float* a12 = a11 + jb * n;  // rows [j, j + jb), columns [j + jb, n)
    float* a22 = a12 + jb;      // rows and columns [j + jb, n)
    // R12 = R11^-T A12, its columns independent.
    split_evenly(rest, [&](int64_t c0, int64_t c1) {
      blas.strsm(kColMajor, kLeft, kUpper, kTrans, kNonUnit, int(jb), int(c1 - c0), 1.f, a11, ld, a12 + c0 * n, ld);
    });
    // A22 -= R12^T R12 on the upper triangle, in bands of columns with equal work: above each
    // band's own triangle (syrk) the rectangle of the rows before it (gemm).
    split_by_work(rest, [](int64_t c) { return double(c) * double(c); }, [&](int64_t c0, int64_t c1) {
      if (c0 > 0)
        blas.sgemm(kColMajor, kTrans, kNoTrans, int(c0), int(c1 - c0), int(jb), -1.f, a12, ld, a12 + c0 * n, ld, 1.f,
                   a22 + c0 * n, ld);
      blas.ssyrk(kColMajor, kUpper, kTrans, int(c1 - c0), int(jb), -1.f, a12 + c0 * n, ld, 1.f, a22 + c0 + c0 * n, ld);
    });
  }
  return true;
}

bool invert_upper(float* a, int64_t n, int64_t block) {
  const OpenBlas& blas = lapack();
  const int ld = int(n);
  block = block_for(n, block);
  // Block column by block column, left to right: with the blocks before j already inverted,
  // X = -R00^-1 R01 R11^-1 (trmm, then trsm with R11 as it still is), then R11 inverted. A zero
  // on R11's diagonal makes that trsm's values infinite and strtri then refuses the block.
  for (int64_t j = 0; j < n; j += block) {
    const int64_t jb = std::min(block, n - j);
    float* a01 = a + j * n;  // rows [0, j), columns [j, j + jb)
    float* a11 = a01 + j;
    if (j > 0) {
      split_evenly(jb, [&](int64_t c0, int64_t c1) {  // columns independent
        blas.strmm(kColMajor, kLeft, kUpper, kNoTrans, kNonUnit, int(j), int(c1 - c0), 1.f, a, ld, a01 + c0 * n, ld);
      });
      split_evenly(j, [&](int64_t r0, int64_t r1) {  // rows independent
        blas.strsm(kColMajor, kRight, kUpper, kNoTrans, kNonUnit, int(r1 - r0), int(jb), -1.f, a11, ld, a01 + r0, ld);
      });
    }
    int size = int(jb), info = 0;
    blas.strtri("U", "N", &size, a11, &ld, &info);
    if (info != 0) return false;
  }
  return true;
}

}  // namespace shrink::compress
