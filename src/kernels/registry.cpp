// The list of every kernel variant, and the table chosen from it for an ISA level. Adding a
// variant here is all it takes for it to be dispatched, tested against __ref and benchmarked.
#include "shrink/kernels/registry.h"

#include "kernels/kernel_variants.h"
#include "shrink/kernels/openblas.h"

namespace shrink {
namespace {
using namespace kernel_variants;

bool has_openblas() { return openblas().loaded; }
bool has_openblas_syrk() { return openblas().loaded && openblas().ssyrk; }
bool has_gfni() { return cpu_features().gfni; }

constexpr KernelVariant<GemmF32Fn> kGemmF32[] = {
    {"gemm_f32__ref", Isa::ref, nullptr, gemm_f32__ref},
    // OpenBLAS dispatches to its own AVX2/AVX-512 kernels; at SHRINK_ISA=ref only scalar code runs.
    {"gemm_f32__openblas", Isa::avx2, has_openblas, gemm_f32__openblas},
};
constexpr KernelVariant<SyrkF32Fn> kSyrkF32[] = {
    {"syrk_f32__ref", Isa::ref, nullptr, syrk_f32__ref},
    {"syrk_f32__openblas", Isa::avx2, has_openblas_syrk, syrk_f32__openblas},
};
constexpr KernelVariant<ConvertToF32Fn> kConvertF16ToF32[] = {
    {"convert_f16_to_f32__ref", Isa::ref, nullptr, convert_f16_to_f32__ref},
    {"convert_f16_to_f32__avx2", Isa::avx2, nullptr, convert_f16_to_f32__avx2},
    {"convert_f16_to_f32__avx512", Isa::avx512, nullptr, convert_f16_to_f32__avx512},
};
constexpr KernelVariant<ConvertToF32Fn> kConvertBf16ToF32[] = {
    {"convert_bf16_to_f32__ref", Isa::ref, nullptr, convert_bf16_to_f32__ref},
    {"convert_bf16_to_f32__avx2", Isa::avx2, nullptr, convert_bf16_to_f32__avx2},
    {"convert_bf16_to_f32__avx512", Isa::avx512, nullptr, convert_bf16_to_f32__avx512},
};
constexpr KernelVariant<ConvertFromF32Fn> kConvertF32ToF16[] = {
    {"convert_f32_to_f16__ref", Isa::ref, nullptr, convert_f32_to_f16__ref},
    {"convert_f32_to_f16__avx2", Isa::avx2, nullptr, convert_f32_to_f16__avx2},
};
constexpr KernelVariant<ConvertFromF32Fn> kConvertF32ToBf16[] = {
    {"convert_f32_to_bf16__ref", Isa::ref, nullptr, convert_f32_to_bf16__ref},
    {"convert_f32_to_bf16__avx512", Isa::avx512, nullptr, convert_f32_to_bf16__avx512},
};
constexpr KernelVariant<DequantizeFn> kDequantizeQ4_0[] = {
    {"dequantize_q4_0__ref", Isa::ref, nullptr, dequantize_q4_0__ref},
    {"dequantize_q4_0__avx512", Isa::avx512, nullptr, dequantize_q4_0__avx512},
};
constexpr KernelVariant<DequantizeFn> kDequantizeQ4_1[] = {
    {"dequantize_q4_1__ref", Isa::ref, nullptr, dequantize_q4_1__ref},
};
constexpr KernelVariant<DequantizeFn> kDequantizeQ5_0[] = {
    {"dequantize_q5_0__ref", Isa::ref, nullptr, dequantize_q5_0__ref},
};
constexpr KernelVariant<DequantizeFn> kDequantizeQ5_1[] = {
    {"dequantize_q5_1__ref", Isa::ref, nullptr, dequantize_q5_1__ref},
};
constexpr KernelVariant<DequantizeFn> kDequantizeQ8_0[] = {
    {"dequantize_q8_0__ref", Isa::ref, nullptr, dequantize_q8_0__ref},
    {"dequantize_q8_0__avx512", Isa::avx512, nullptr, dequantize_q8_0__avx512},
};
constexpr KernelVariant<DequantizeFn> kDequantizeQ4_K[] = {
    {"dequantize_q4_k__ref", Isa::ref, nullptr, dequantize_q4_k__ref},
};
constexpr KernelVariant<DequantizeFn> kDequantizeQ6_K[] = {
    {"dequantize_q6_k__ref", Isa::ref, nullptr, dequantize_q6_k__ref},
};

constexpr KernelVariant<QuantizeBlocksFn> kQuantizeQ8_0[] = {
    {"quantize_q8_0__ref", Isa::ref, nullptr, quantize_q8_0__ref},
    {"quantize_q8_0__avx2", Isa::avx2, nullptr, quantize_q8_0__avx2},
};
constexpr KernelVariant<QuantizeBlocksFn> kQuantizeQ4_0[] = {
    {"quantize_q4_0__ref", Isa::ref, nullptr, quantize_q4_0__ref},
    {"quantize_q4_0__avx2", Isa::avx2, nullptr, quantize_q4_0__avx2},
};
constexpr KernelVariant<QuantizeBlocksFn> kQuantizeQ4_1[] = {
    {"quantize_q4_1__ref", Isa::ref, nullptr, quantize_q4_1__ref},
    {"quantize_q4_1__avx2", Isa::avx2, nullptr, quantize_q4_1__avx2},
};
constexpr KernelVariant<QuantizeRowsU8Fn> kQuantizeRowsU8[] = {
    {"quantize_rows_u8__ref", Isa::ref, nullptr, quantize_rows_u8__ref},
    {"quantize_rows_u8__avx2", Isa::avx2, nullptr, quantize_rows_u8__avx2},
    {"quantize_rows_u8__avx512", Isa::avx512, nullptr, quantize_rows_u8__avx512},
};
constexpr KernelVariant<GemmU8S8Fn> kGemmU8S8[] = {
    {"gemm_u8s8__ref", Isa::ref, nullptr, gemm_u8s8__ref},
    {"gemm_u8s8__avx2", Isa::avx2, nullptr, gemm_u8s8__avx2},
    {"gemm_u8s8__vnni", Isa::vnni, nullptr, gemm_u8s8__vnni},
    {"gemm_u8s8__amx", Isa::amx, nullptr, gemm_u8s8__amx},
};

constexpr KernelVariant<QuantizeRowsS8Fn> kQuantizeRowsS8[] = {
    {"quantize_rows_s8__ref", Isa::ref, nullptr, quantize_rows_s8__ref},
    {"quantize_rows_s8__avx2", Isa::avx2, nullptr, quantize_rows_s8__avx2},
    {"quantize_rows_s8__avx512", Isa::avx512, nullptr, quantize_rows_s8__avx512},
};
constexpr KernelVariant<GemmQ4S8Fn> kGemmQ4S8[] = {
    {"gemm_q4s8__ref", Isa::ref, nullptr, gemm_q4s8__ref},
    {"gemm_q4s8__avx2", Isa::avx2, nullptr, gemm_q4s8__avx2},
    {"gemm_q4s8__vnni", Isa::vnni, nullptr, gemm_q4s8__vnni},
    {"gemm_q4s8__gfni", Isa::vnni, has_gfni, gemm_q4s8__gfni},  // the VNNI kernel, its decode GEMV with GFNI
    {"gemm_q4s8__amx", Isa::amx, nullptr, gemm_q4s8__amx},
};

constexpr KernelVariant<GemmQ4F32Fn> kGemmQ4F32[] = {
    {"gemm_q4f32__ref", Isa::ref, nullptr, gemm_q4f32__ref},
    {"gemm_q4f32__avx2", Isa::avx2, nullptr, gemm_q4f32__avx2},
};

constexpr KernelVariant<QuantizeInt4Fn> kQuantizeInt4[] = {
    {"quantize_int4__ref", Isa::ref, nullptr, quantize_int4__ref},
    {"quantize_int4__avx2", Isa::avx2, nullptr, quantize_int4__avx2},
};

constexpr KernelVariant<GemmF32Sparse2of4Fn> kGemmF32Sparse2of4[] = {
    {"gemm_f32_2of4__ref", Isa::ref, nullptr, gemm_f32_2of4__ref},
    {"gemm_f32_2of4__avx2", Isa::avx2, nullptr, gemm_f32_2of4__avx2},
};

constexpr KernelVariant<UnaryF32Fn> kSigmoidF32[] = {
    {"sigmoid_f32__ref", Isa::ref, nullptr, sigmoid_f32__ref},
    {"sigmoid_f32__avx2", Isa::avx2, nullptr, sigmoid_f32__avx2},
};
constexpr KernelVariant<UnaryF32Fn> kTanhF32[] = {
    {"tanh_f32__ref", Isa::ref, nullptr, tanh_f32__ref},
    {"tanh_f32__avx2", Isa::avx2, nullptr, tanh_f32__avx2},
};
constexpr KernelVariant<UnaryF32Fn> kExpF32[] = {
    {"exp_f32__ref", Isa::ref, nullptr, exp_f32__ref},
    {"exp_f32__avx2", Isa::avx2, nullptr, exp_f32__avx2},
};

constexpr KernelVariant<LstmCellFn> kLstmCellF32[] = {
    {"lstm_cell_f32__ref", Isa::ref, nullptr, lstm_cell_f32__ref},
    {"lstm_cell_f32__avx2", Isa::avx2, nullptr, lstm_cell_f32__avx2},
};

constexpr KernelVariant<AttendF32Fn> kAttendF32[] = {
    {"attend_f32__ref", Isa::ref, nullptr, attend_f32__ref},
    {"attend_f32__avx2", Isa::avx2, nullptr, attend_f32__avx2},
};

constexpr KernelVariant<AttendF16KvFn> kAttendF16Kv[] = {
    {"attend_f16kv__ref", Isa::ref, nullptr, attend_f16kv__ref},
    {"attend_f16kv__avx2", Isa::avx2, nullptr, attend_f16kv__avx2},
    {"attend_f16kv__avx512", Isa::avx512, nullptr, attend_f16kv__avx512},
};

constexpr KernelVariant<AttendPromptF32Fn> kAttendPromptF32[] = {
    {"attend_prompt_f32__ref", Isa::ref, nullptr, attend_prompt_f32__ref},
    {"attend_prompt_f32__avx2", Isa::avx2, nullptr, attend_prompt_f32__avx2},
    {"attend_prompt_f32__avx512", Isa::avx512, nullptr, attend_prompt_f32__avx512},
};

constexpr KernelVariant<GemmQ8_0I8Fn> kGemmQ8_0I8[] = {
    {"gemm_q8_0_i8__ref", Isa::ref, nullptr, gemm_q8_0_i8__ref},
    {"gemm_q8_0_i8__avx2", Isa::avx2, nullptr, gemm_q8_0_i8__avx2},
    {"gemm_q8_0_i8__vnni", Isa::vnni, nullptr, gemm_q8_0_i8__vnni},
};

constexpr KernelVariant<AddU8Fn> kAddU8[] = {
    {"add_u8__ref", Isa::ref, nullptr, add_u8__ref},
    {"add_u8__avx2", Isa::avx2, nullptr, add_u8__avx2},
};

// The last variant that runs at this level wins: lists are ordered from slowest to fastest.
template <class Fn> const KernelVariant<Fn>& best(std::span<const KernelVariant<Fn>> variants,
                                                  Isa level) {
  const KernelVariant<Fn>* chosen = &variants.front();
  for (const auto& variant : variants)
    if (variant.runs_here(level)) chosen = &variant;
  return *chosen;
}

}  // namespace

std::span<const KernelVariant<GemmF32Fn>> gemm_f32_variants() { return kGemmF32; }
std::span<const KernelVariant<SyrkF32Fn>> syrk_f32_variants() { return kSyrkF32; }
std::span<const KernelVariant<ConvertToF32Fn>> convert_f16_to_f32_variants() { return kConvertF16ToF32; }
std::span<const KernelVariant<ConvertToF32Fn>> convert_bf16_to_f32_variants() { return kConvertBf16ToF32; }
std::span<const KernelVariant<ConvertFromF32Fn>> convert_f32_to_f16_variants() { return kConvertF32ToF16; }
std::span<const KernelVariant<ConvertFromF32Fn>> convert_f32_to_bf16_variants() { return kConvertF32ToBf16; }
std::span<const KernelVariant<DequantizeFn>> dequantize_q4_0_variants() { return kDequantizeQ4_0; }
std::span<const KernelVariant<DequantizeFn>> dequantize_q4_1_variants() { return kDequantizeQ4_1; }
std::span<const KernelVariant<DequantizeFn>> dequantize_q5_0_variants() { return kDequantizeQ5_0; }
std::span<const KernelVariant<DequantizeFn>> dequantize_q5_1_variants() { return kDequantizeQ5_1; }
std::span<const KernelVariant<DequantizeFn>> dequantize_q8_0_variants() { return kDequantizeQ8_0; }
std::span<const KernelVariant<DequantizeFn>> dequantize_q4_k_variants() { return kDequantizeQ4_K; }
std::span<const KernelVariant<DequantizeFn>> dequantize_q6_k_variants() { return kDequantizeQ6_K; }
std::span<const KernelVariant<QuantizeBlocksFn>> quantize_q8_0_variants() { return kQuantizeQ8_0; }
std::span<const KernelVariant<QuantizeBlocksFn>> quantize_q4_0_variants() { return kQuantizeQ4_0; }
std::span<const KernelVariant<QuantizeBlocksFn>> quantize_q4_1_variants() { return kQuantizeQ4_1; }
std::span<const KernelVariant<QuantizeRowsU8Fn>> quantize_rows_u8_variants() { return kQuantizeRowsU8; }
std::span<const KernelVariant<GemmU8S8Fn>> gemm_u8s8_variants() { return kGemmU8S8; }
std::span<const KernelVariant<QuantizeRowsS8Fn>> quantize_rows_s8_variants() { return kQuantizeRowsS8; }
std::span<const KernelVariant<GemmQ4S8Fn>> gemm_q4s8_variants() { return kGemmQ4S8; }
std::span<const KernelVariant<GemmQ4F32Fn>> gemm_q4f32_variants() { return kGemmQ4F32; }
std::span<const KernelVariant<QuantizeInt4Fn>> quantize_int4_variants() { return kQuantizeInt4; }
std::span<const KernelVariant<GemmF32Sparse2of4Fn>> gemm_f32_2of4_variants() { return kGemmF32Sparse2of4; }
std::span<const KernelVariant<UnaryF32Fn>> sigmoid_f32_variants() { return kSigmoidF32; }
std::span<const KernelVariant<UnaryF32Fn>> tanh_f32_variants() { return kTanhF32; }
std::span<const KernelVariant<UnaryF32Fn>> exp_f32_variants() { return kExpF32; }
std::span<const KernelVariant<LstmCellFn>> lstm_cell_f32_variants() { return kLstmCellF32; }
std::span<const KernelVariant<AttendF32Fn>> attend_f32_variants() { return kAttendF32; }
std::span<const KernelVariant<AttendF16KvFn>> attend_f16kv_variants() { return kAttendF16Kv; }
std::span<const KernelVariant<AttendPromptF32Fn>> attend_prompt_f32_variants() { return kAttendPromptF32; }
std::span<const KernelVariant<GemmQ8_0I8Fn>> gemm_q8_0_i8_variants() { return kGemmQ8_0I8; }
std::span<const KernelVariant<AddU8Fn>> add_u8_variants() { return kAddU8; }

KernelTable make_kernel_table(Isa level) {
  KernelTable table;
  table.isa = level;
#define SHRINK_FILL_SLOT(slot, Fn)                            \
  {                                                           \
    const auto& variant = best<Fn>(slot##_variants(), level); \
    table.slot = variant.fn;                                  \
    table.chosen.emplace_back(#slot, variant.name);           \
  }
  SHRINK_KERNEL_SLOTS(SHRINK_FILL_SLOT)
#undef SHRINK_FILL_SLOT
  return table;
}

const KernelTable& kernels() {
  static const KernelTable table = make_kernel_table(active_isa());
  return table;
}

DequantizeFn dequantize_kernel(GgmlType type) {
  const KernelTable& table = kernels();
  switch (type) {
    case GgmlType::q4_0: return table.dequantize_q4_0;
    case GgmlType::q4_1: return table.dequantize_q4_1;
    case GgmlType::q5_0: return table.dequantize_q5_0;
    case GgmlType::q5_1: return table.dequantize_q5_1;
    case GgmlType::q8_0: return table.dequantize_q8_0;
    case GgmlType::q4_k: return table.dequantize_q4_k;
    case GgmlType::q6_k: return table.dequantize_q6_k;
    default: return nullptr;
  }
}

}  // namespace shrink
