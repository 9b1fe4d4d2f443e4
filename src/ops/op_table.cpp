// The one list of node kinds. (An explicit table rather than static self-registration, which a
// static library's linker would silently drop.)
#include <fmt/format.h>

#include <array>

#include "shrink/nn/op.h"

namespace shrink::nn {
namespace ops {
extern const OpRules linear_rules, conv2d_rules, batch_norm1d_rules, batch_norm2d_rules,
    relu_rules, relu6_rules, gelu_rules, silu_rules, tanh_rules, sigmoid_rules, softmax_rules,
    max_pool2d_rules, avg_pool2d_rules, adaptive_avg_pool2d_rules, flatten_rules, dropout_rules,
    add_rules, mul_rules, concat_rules, embedding_rules, layer_norm_rules, rms_norm_rules, lstm_rules,
    gru_rules, attention_rules, int4_linear_rules, dynamic_quant_linear_rules, dynamic_quant_lstm_rules,
    dynamic_quant_gru_rules, quantize_rules, dequantize_rules, quant_conv2d_rules, quant_linear_rules,
    quant_add_rules, fake_quantize_rules, position_embedding_rules, mean_pool_rules, quant_concat_rules,
    quant_adaptive_avg_pool2d_rules, reshape_rules, complex_magnitude_rules, dynamic_quant_conv2d_rules;
}  // namespace ops

namespace {
const std::array<const OpRules*, 42>& table() {
  using namespace ops;
  static const std::array<const OpRules*, 42> rules{
      &linear_rules,     &conv2d_rules,     &batch_norm1d_rules, &batch_norm2d_rules,
      &relu_rules,       &relu6_rules,      &gelu_rules,         &silu_rules,
      &tanh_rules,       &sigmoid_rules,    &softmax_rules,      &max_pool2d_rules,
      &avg_pool2d_rules, &adaptive_avg_pool2d_rules, &flatten_rules, &dropout_rules,
      &add_rules,        &mul_rules,        &concat_rules,       &embedding_rules,
      &layer_norm_rules, &rms_norm_rules,     &lstm_rules,         &gru_rules,
      &attention_rules,  &int4_linear_rules, &dynamic_quant_linear_rules, &dynamic_quant_lstm_rules, &dynamic_quant_gru_rules,
      &quantize_rules, &dequantize_rules, &quant_conv2d_rules, &quant_linear_rules, &quant_add_rules,
      &fake_quantize_rules, &position_embedding_rules, &mean_pool_rules, &quant_concat_rules,
      &quant_adaptive_avg_pool2d_rules, &reshape_rules, &complex_magnitude_rules, &dynamic_quant_conv2d_rules};
  return rules;
}
}  // namespace

const OpRules& op_rules(std::string_view kind) {
  for (const OpRules* rules : table())
    if (rules->kind == kind) return *rules;
  throw UsageError(fmt::format("unknown node kind '{}'", kind), "graph",
                   fmt::format("known kinds: {}", fmt::join(op_kinds(), ", ")));
}

std::vector<std::string_view> op_kinds() {
  std::vector<std::string_view> kinds;
  for (const OpRules* rules : table()) kinds.push_back(rules->kind);
  return kinds;
}

}  // namespace shrink::nn
