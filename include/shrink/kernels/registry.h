// The kernel table: one function pointer per kernel slot, filled once at start-up with the best
// variant for the active ISA level. Every variant of every slot is listed (for tests and
// benchmarks, which run each one against the slot's __ref variant). Call sites never dispatch.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shrink/kernels/cpu.h"
#include "shrink/kernels/ggml_formats.h"
#include "shrink/kernels/int4_gemm.h"
#include "shrink/kernels/int8_gemm.h"
#include "shrink/kernels/requantize.h"
#include "shrink/kernels/sparse_2of4.h"

namespace shrink {

// Row-major C(m,n) = alpha * op(A)(m,k) * op(B)(k,n) + beta * C; op transposes when asked.
using GemmF32Fn = void (*)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                           float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                           float beta, float* c, int64_t ldc);
// The Gram matrix of A's rows: row-major C(n,n)'s upper triangle (i <= j) += A^T A, for A (k, n)
// row-major; the lower triangle is not touched. One thread (callers split the triangle).
using SyrkF32Fn = void (*)(int64_t n, int64_t k, const float* a, int64_t lda, float* c, int64_t ldc);
// Element-wise conversions of n values.
using ConvertToF32Fn = void (*)(const uint16_t* src, float* dst, int64_t n);
using ConvertFromF32Fn = void (*)(const float* src, uint16_t* dst, int64_t n);
// n values (a multiple of the format's block size) from consecutive blocks.
using DequantizeFn = void (*)(const void* blocks, float* dst, int64_t n);
// n values (a multiple of the block size) to consecutive blocks.
using QuantizeBlocksFn = void (*)(const float* src, void* blocks, int64_t n);

// y[i] = f(x[i]) for n values; y may be x (in place).
using UnaryF32Fn = void (*)(const float* x, float* y, int64_t n);

// One LSTM step of one sequence with hidden size h: gates (4h pre-activations i, f, g, o from the
// input side) += recurrent (4h); i, f, o through the sigmoid and g through tanh, written back in
// place (backward needs them); then c = f * c_prev + i * g and h_out = o * tanh(c), in that order of
// operations (c must not alias c_prev).
using LstmCellFn = void (*)(float* gates, const float* recurrent, const float* c_prev, float* c, float* h_out, int64_t h);

// Attention of `queries` single query rows that share one key/value head (grouped-query
// attention) over `length` positions: y[r] = sum_j p[r][j] v[j], p[r] = softmax_j(scale * q[r].k[j])
// (the maximum subtracted first). q, k, v and y rows are q_stride, kv_stride, kv_stride and
// y_stride floats apart, dim values each; scratch holds queries * length floats. When lse is not
// null, lse[r] = log sum_j exp(scale * q[r].k[j]): what merging the results of several position
// ranges needs (flash-decoding; ops/attention.cpp).
using AttendF32Fn = void (*)(int64_t queries, const float* q, int64_t q_stride, const float* k, const float* v,
                             int64_t kv_stride, int64_t length, int64_t dim, float scale, float* y, int64_t y_stride,
                             float* scratch, float* lse);
// attend_f32 over the decoder's half-precision KV cache (half the bytes a long context reads per
// token): f16 values in rows v_stride apart, and f16 keys in blocks of kKeyBlock positions, block
// b at k + b * kKeyBlock * dim holding key[b * kKeyBlock + i][d] at d * kKeyBlock + i (dimension-
// major, so that a block's scores are kKeyBlock-wide multiply-adds with no horizontal sums); the
// last block may be partial (its entries past `length` are ignored).
constexpr int64_t kKeyBlock = 16;
// Where entry d of position j sits in such blocks, dim entries a position.
constexpr int64_t key_block_index(int64_t j, int64_t d, int64_t dim) {
  return (j / kKeyBlock) * kKeyBlock * dim + d * kKeyBlock + j % kKeyBlock;
}
using AttendF16KvFn = void (*)(int64_t queries, const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v,
                               int64_t v_stride, int64_t length, int64_t dim, float scale, float* y, int64_t y_stride,
                               float* scratch, float* lse);

// Attention of `rows` query rows of one head (a prompt's, or an encoder's) over `keys` positions:
// y[i] = sum_j p[i][j] v[j], p[i] = softmax over j < visible(i) of scale * q[i].k[j], where
// visible(i) = min(keys, diagonal + i + 1) (causal: `diagonal` is the first query's position;
// diagonal >= keys - 1 lets every row see every key); diagonal >= 0 and keys >= 1. Keys in f32
// blocks of kKeyBlock positions laid out as attend_f16kv's, padded to a multiple of 32 positions
// (the padding's entries are read and ignored, whatever they hold); values in rows v_stride apart.
// The vector variants take head widths up to 256 that are a multiple of their lanes (others go
// to the next variant down); ops::attend uses the slot where the AVX-512 variant runs.
using AttendPromptF32Fn = void (*)(int64_t rows, const float* q, int64_t q_stride, const float* key_blocks,
                                   const float* v, int64_t v_stride, int64_t keys, int64_t dim, float scale,
                                   int64_t diagonal, float* y, int64_t y_stride);

// m rows (1-4: decoding) of activations as Q8_0 blocks (k / 32 per row, ggml's s8 values with an
// f16 scale per 32) times i8 weights [n][k] with a scale per row: y[i][c] = w_scale[c] * sum_b
// d[i][b] * sum_{j in b} q[i][j] w[c][j] + bias[c] (bias may be null); k % 32 == 0. w_panels, when
// given, holds the same rows as pack_row_panels(w, n, k) arranges them (variants may read either).
using GemmQ8_0I8Fn = void (*)(int64_t m, const void* a_blocks, const int8_t* w, const int8_t* w_panels,
                              const float* w_scale, int64_t n, int64_t k, const float* bias, float* y, int64_t ldy);

// slot name, function type
#define SHRINK_KERNEL_SLOTS(X)                   \
  X(gemm_f32, GemmF32Fn)                         \
  X(syrk_f32, SyrkF32Fn)                         \
  X(convert_f16_to_f32, ConvertToF32Fn)          \
  X(convert_bf16_to_f32, ConvertToF32Fn)         \
  X(convert_f32_to_f16, ConvertFromF32Fn)        \
  X(convert_f32_to_bf16, ConvertFromF32Fn)       \
  X(dequantize_q4_0, DequantizeFn)               \
  X(dequantize_q4_1, DequantizeFn)               \
  X(dequantize_q5_0, DequantizeFn)               \
  X(dequantize_q5_1, DequantizeFn)               \
  X(dequantize_q8_0, DequantizeFn)               \
  X(dequantize_q4_k, DequantizeFn)               \
  X(dequantize_q6_k, DequantizeFn)               \
  X(quantize_q8_0, QuantizeBlocksFn)             \
  X(quantize_q4_0, QuantizeBlocksFn)             \
  X(quantize_q4_1, QuantizeBlocksFn)             \
  X(quantize_rows_u8, QuantizeRowsU8Fn)          \
  X(gemm_u8s8, GemmU8S8Fn)                       \
  X(quantize_rows_s8, QuantizeRowsS8Fn)          \
  X(gemm_q4s8, GemmQ4S8Fn)                       \
  X(gemm_q4f32, GemmQ4F32Fn)                     \
  X(quantize_int4, QuantizeInt4Fn)               \
  X(gemm_f32_2of4, GemmF32Sparse2of4Fn)          \
  X(sigmoid_f32, UnaryF32Fn)                     \
  X(tanh_f32, UnaryF32Fn)                        \
  X(exp_f32, UnaryF32Fn)                         \
  X(lstm_cell_f32, LstmCellFn)                   \
  X(attend_f32, AttendF32Fn)                     \
  X(attend_f16kv, AttendF16KvFn)                 \
  X(attend_prompt_f32, AttendPromptF32Fn)        \
  X(gemm_q8_0_i8, GemmQ8_0I8Fn)                  \
  X(add_u8, AddU8Fn)

template <class Fn> struct KernelVariant {
  const char* name;   // "what__how", e.g. "convert_f16_to_f32__avx512"
  Isa isa;            // the lowest ISA level at which it may be chosen
  bool (*usable)();   // a further run-time condition (library loaded, feature bit), or nullptr
  Fn fn;
  bool runs_here(Isa level) const { return isa <= level && (!usable || usable()); }
};

#define SHRINK_COUNT_SLOT(slot, Fn) +1
constexpr int kKernelSlotCount = 0 SHRINK_KERNEL_SLOTS(SHRINK_COUNT_SLOT);
#undef SHRINK_COUNT_SLOT

struct KernelTable {
#define SHRINK_DECLARE_SLOT(slot, Fn) Fn slot = nullptr;
  SHRINK_KERNEL_SLOTS(SHRINK_DECLARE_SLOT)
#undef SHRINK_DECLARE_SLOT
  Isa isa = Isa::ref;
  std::vector<std::pair<std::string, std::string>> chosen;  // slot -> variant name
};

// The table for active_isa(), built on first use. Throws UsageError for a bad SHRINK_ISA.
const KernelTable& kernels();
// A table for a given level (tests use it to run each level in one process).
KernelTable make_kernel_table(Isa level);

// All variants of each slot, the __ref variant first.
#define SHRINK_DECLARE_VARIANTS(slot, Fn) std::span<const KernelVariant<Fn>> slot##_variants();
SHRINK_KERNEL_SLOTS(SHRINK_DECLARE_VARIANTS)
#undef SHRINK_DECLARE_VARIANTS

// The dequantization kernel for a ggml type in the active table, or nullptr when shrink cannot
// dequantize that type.
DequantizeFn dequantize_kernel(GgmlType type);

}  // namespace shrink
