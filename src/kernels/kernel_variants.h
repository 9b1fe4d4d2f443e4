// Declarations of every kernel variant, named "what__how" (XNNPACK's convention). Each lives in
// the folder of its ISA and is compiled with that ISA's flags; registry.cpp lists them.
#pragma once
#include <cstdint>

#include "shrink/kernels/int4_gemm.h"
#include "shrink/kernels/int8_gemm.h"
#include "shrink/kernels/requantize.h"
#include "shrink/kernels/sparse_2of4.h"

namespace shrink::kernel_variants {

// gemm_f32
void gemm_f32__ref(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                   int64_t ldc);
void gemm_f32__openblas(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                        float* c, int64_t ldc);
// syrk_f32
void syrk_f32__ref(int64_t n, int64_t k, const float* a, int64_t lda, float* c, int64_t ldc);
void syrk_f32__openblas(int64_t n, int64_t k, const float* a, int64_t lda, float* c, int64_t ldc);

// conversions
void convert_f16_to_f32__ref(const uint16_t* src, float* dst, int64_t n);
void convert_f16_to_f32__avx2(const uint16_t* src, float* dst, int64_t n);
void convert_f16_to_f32__avx512(const uint16_t* src, float* dst, int64_t n);
void convert_bf16_to_f32__ref(const uint16_t* src, float* dst, int64_t n);
void convert_bf16_to_f32__avx2(const uint16_t* src, float* dst, int64_t n);
void convert_bf16_to_f32__avx512(const uint16_t* src, float* dst, int64_t n);
void convert_f32_to_f16__ref(const float* src, uint16_t* dst, int64_t n);
void convert_f32_to_f16__avx2(const float* src, uint16_t* dst, int64_t n);
void convert_f32_to_bf16__ref(const float* src, uint16_t* dst, int64_t n);
void convert_f32_to_bf16__avx512(const float* src, uint16_t* dst, int64_t n);

// ggml block formats to f32
void dequantize_q4_0__ref(const void* blocks, float* dst, int64_t n);
void dequantize_q4_1__ref(const void* blocks, float* dst, int64_t n);
void dequantize_q5_0__ref(const void* blocks, float* dst, int64_t n);
void dequantize_q5_1__ref(const void* blocks, float* dst, int64_t n);
void dequantize_q8_0__ref(const void* blocks, float* dst, int64_t n);
void dequantize_q4_k__ref(const void* blocks, float* dst, int64_t n);
void dequantize_q6_k__ref(const void* blocks, float* dst, int64_t n);
void dequantize_q4_0__avx512(const void* blocks, float* dst, int64_t n);
void dequantize_q8_0__avx512(const void* blocks, float* dst, int64_t n);

// f32 to ggml blocks
void quantize_q8_0__ref(const float* x, void* blocks, int64_t n);
void quantize_q4_0__ref(const float* x, void* blocks, int64_t n);
void quantize_q4_1__ref(const float* x, void* blocks, int64_t n);
void quantize_q8_0__avx2(const float* x, void* blocks, int64_t n);
void quantize_q4_0__avx2(const float* x, void* blocks, int64_t n);
void quantize_q4_1__avx2(const float* x, void* blocks, int64_t n);

// the int8 path (int8_gemm.h)
// Not a kernel of the registry but the probe of the int8 multiply-add ceiling that the VNNI GEMMs
// are held to (measure_vnni_dot_peak): rounds x kDotPeakChains vpdpbusd (64 multiply-adds each)
// on independent registers; it computes nothing, so it has no scalar reference.
constexpr int kDotPeakChains = 24;
void dot_peak__vnni(int64_t rounds);
void quantize_rows_u8__ref(const float* x, int64_t m, int64_t k, int64_t ldx, uint8_t* q, int64_t ldq, float* scale,
                           int32_t* zero);
void quantize_rows_u8__avx2(const float* x, int64_t m, int64_t k, int64_t ldx, uint8_t* q, int64_t ldq, float* scale,
                            int32_t* zero);
void quantize_rows_u8__avx512(const float* x, int64_t m, int64_t k, int64_t ldx, uint8_t* q, int64_t ldq, float* scale,
                              int32_t* zero);
void gemm_u8s8__ref(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                    const Int8Epilogue& epilogue);
void gemm_u8s8__avx2(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                     const Int8Epilogue& epilogue);
void gemm_u8s8__vnni(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                     const Int8Epilogue& epilogue);
void gemm_u8s8__amx(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                    const Int8Epilogue& epilogue);

// the int4 x int8 path (int4_gemm.h)
void quantize_rows_s8__ref(const float* x, int64_t m, int64_t k, int64_t group, int8_t* q, float* scale,
                           int32_t* group_sums);
void quantize_rows_s8__avx2(const float* x, int64_t m, int64_t k, int64_t group, int8_t* q, float* scale,
                            int32_t* group_sums);
void quantize_rows_s8__avx512(const float* x, int64_t m, int64_t k, int64_t group, int8_t* q, float* scale,
                              int32_t* group_sums);
void gemm_q4s8__ref(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                    const float* bias, float* out, int64_t ldo);
void gemm_q4s8__avx2(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                     const float* bias, float* out, int64_t ldo);
void gemm_q4s8__vnni(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                     const float* bias, float* out, int64_t ldo);
void gemm_q4s8__gfni(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                     const float* bias, float* out, int64_t ldo);
void gemm_q4s8__amx(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                    const float* bias, float* out, int64_t ldo);

// Shared by every quantize_int4 variant, so their scales and zeros agree bit for bit.
void int4_group_qparams(float lo, float hi, float& scale, float& zero);
void quantize_int4__ref(const float* w, int64_t n, int64_t k, int64_t group, uint8_t* nibbles, uint16_t* scales,
                        uint16_t* mins);
void quantize_int4__avx2(const float* w, int64_t n, int64_t k, int64_t group, uint8_t* nibbles, uint16_t* scales,
                         uint16_t* mins);
void gemm_q4f32__ref(int64_t m, const float* x, const Int4Weights& w, const float* bias, float* out, int64_t ldo);
void gemm_q4f32__avx2(int64_t m, const float* x, const Int4Weights& w, const float* bias, float* out, int64_t ldo);

// the static int8 region's residual add (requantize.h)
void add_u8__ref(const uint8_t* a, const uint8_t* b, int64_t n, const AddU8Params& p, uint8_t* y);
void add_u8__avx2(const uint8_t* a, const uint8_t* b, int64_t n, const AddU8Params& p, uint8_t* y);

void sigmoid_f32__ref(const float* x, float* y, int64_t n);
void sigmoid_f32__avx2(const float* x, float* y, int64_t n);
void tanh_f32__ref(const float* x, float* y, int64_t n);
void tanh_f32__avx2(const float* x, float* y, int64_t n);
void exp_f32__ref(const float* x, float* y, int64_t n);
void exp_f32__avx2(const float* x, float* y, int64_t n);
void lstm_cell_f32__ref(float* gates, const float* recurrent, const float* c_prev, float* c, float* h_out, int64_t h);
void lstm_cell_f32__avx2(float* gates, const float* recurrent, const float* c_prev, float* c, float* h_out, int64_t h);
void gemm_q8_0_i8__ref(int64_t m, const void* a_blocks, const int8_t* w, const int8_t* w_panels, const float* w_scale,
                       int64_t n, int64_t k, const float* bias, float* y, int64_t ldy);
void gemm_q8_0_i8__avx2(int64_t m, const void* a_blocks, const int8_t* w, const int8_t* w_panels, const float* w_scale,
                        int64_t n, int64_t k, const float* bias, float* y, int64_t ldy);
void gemm_q8_0_i8__vnni(int64_t m, const void* a_blocks, const int8_t* w, const int8_t* w_panels, const float* w_scale,
                        int64_t n, int64_t k, const float* bias, float* y, int64_t ldy);
void attend_f32__ref(int64_t queries, const float* q, int64_t q_stride, const float* k, const float* v, int64_t kv_stride,
                     int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* scratch,
                     float* lse);
void attend_f32__avx2(int64_t queries, const float* q, int64_t q_stride, const float* k, const float* v, int64_t kv_stride,
                      int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* scratch, float* lse);
void attend_f16kv__ref(int64_t queries, const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v,
                       int64_t v_stride, int64_t length, int64_t dim, float scale, float* y, int64_t y_stride,
                       float* scratch, float* lse);
void attend_f16kv__avx2(int64_t queries, const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v,
                        int64_t v_stride, int64_t length, int64_t dim, float scale, float* y, int64_t y_stride,
                        float* scratch, float* lse);
void attend_f16kv__avx512(int64_t queries, const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v,
                          int64_t v_stride, int64_t length, int64_t dim, float scale, float* y, int64_t y_stride,
                          float* scratch, float* lse);
void attend_prompt_f32__ref(int64_t rows, const float* q, int64_t q_stride, const float* key_blocks, const float* v,
                            int64_t v_stride, int64_t keys, int64_t dim, float scale, int64_t diagonal, float* y,
                            int64_t y_stride);
void attend_prompt_f32__avx2(int64_t rows, const float* q, int64_t q_stride, const float* key_blocks, const float* v,
                             int64_t v_stride, int64_t keys, int64_t dim, float scale, int64_t diagonal, float* y,
                             int64_t y_stride);
void attend_prompt_f32__avx512(int64_t rows, const float* q, int64_t q_stride, const float* key_blocks, const float* v,
                               int64_t v_stride, int64_t keys, int64_t dim, float scale, int64_t diagonal, float* y,
                               int64_t y_stride);

// 2:4 sparse f32 (sparse_2of4.h)
void gemm_f32_2of4__ref(int64_t m, const float* x, int64_t ldx, const Sparse2of4Weights& w, const float* bias,
                        float* out, int64_t ldo);
void gemm_f32_2of4__avx2(int64_t m, const float* x, int64_t ldx, const Sparse2of4Weights& w, const float* bias,
                         float* out, int64_t ldo);

}  // namespace shrink::kernel_variants
