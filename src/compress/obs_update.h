// The optimal-brain-surgeon column step that GPTQ (gptq.cpp) and SparseGPT (llm_prune.cpp) share,
// as their reference code takes it: with U the upper Cholesky factor of H^-1, each column of a
// lazy block of the weights is replaced (quantized, or pruned), its error divided by U's diagonal
// is spread over the block's later columns, and after the block the accumulated errors update the
// columns to its right in one GEMM.
#pragma once
#include <cstdint>

#include "shrink/core/parallel.h"
#include "shrink/kernels/registry.h"

namespace shrink::compress {

// The lazy block w1 (rows x count: the weights' columns [i1, i1 + count)), with u = &U[i1, i1]
// (row-major, `stride` wide): for every row r, column by column, x = w1[r, i] becomes
// q = replace(r, i, x); e = (x - q) / d goes to err[r, i] and is spread as
// w1[r, j] -= e * U[i1 + i, i1 + j] for j > i; losses[r] gains (x - q)^2 / (2 d^2), d = U's
// diagonal entry of the column. A row's steps touch only that row, so the threads split the rows
// once a block (a parallel region per column had cost 1536 of them for one 1536-wide layer), and
// each row takes the same steps in the same order as column by column over all rows.
template <class Replace>
void obs_block(int64_t rows, int64_t count, const float* u, int64_t stride, float* w1, float* err, double* losses,
               const Replace& replace) {
  parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = w1 + r * count;
      for (int64_t i = 0; i < count; ++i) {
        const float* hrow = u + i * stride;  // U[i1 + i, i1 .. i1 + count)
        const float d = hrow[i], x = row[i], q = replace(r, i, x);
        losses[r] += double(x - q) * double(x - q) / (double(d) * d) / 2;
        const float e = (x - q) / d;
        for (int64_t j = i + 1; j < count; ++j) row[j] -= e * hrow[j];
        err[r * count + i] = e;
      }
    }
  });
}

// After the block of columns [i1, i2): W[:, i2:] -= Err U[i1:i2, i2:] (w and U row-major, cols wide;
// err rows x (i2 - i1)).
inline void obs_block_update(int64_t rows, int64_t cols, int64_t i1, int64_t i2, const float* err, const float* hinv,
                             float* w) {
  if (i2 < cols)
    kernels().gemm_f32(false, false, rows, cols - i2, i2 - i1, -1.f, err, i2 - i1, hinv + i1 * cols + i2, cols, 1.f,
                       w + i2, cols);
}

}  // namespace shrink::compress
