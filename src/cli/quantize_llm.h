// shrink quantize LM --method rtn|gptq|awq: weight-only quantization of a language model.
#pragma once
#include <string>
#include <vector>

namespace shrink::cli {

struct LlmQuantizeCliOptions {
  std::string model, out, method, calib;
  std::vector<std::string> exclude;
  int bits = 4;
  int64_t group_size = 128, samples = 128, seq_len = 512;
  double damp = 0.01, keep_salient = 0;
  int64_t search_samples = 0;
  bool no_awq_scale = false, no_awq_clip = false;
  bool symmetric = false, act_order = false, static_groups = false, no_true_sequential = false, int8_head = false, json = false;
  uint64_t seed = 0;
};

bool is_weight_only_method(const std::string& method);
void run_quantize_llm(const LlmQuantizeCliOptions& o);

}  // namespace shrink::cli
