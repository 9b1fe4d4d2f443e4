// Low-rank factorization of a language model's transformer-block Linear layers (lowrank.h),
// plain or activation-aware. The activation-aware methods calibrate block by block through the
// shared sequential driver (block_calibration.h): each block's layers see the inputs the already
// factored blocks before them produce, and their statistics (X^T X for SVD-LLM, mean |x| for
// ASVD) are gathered before the block is changed. Embedding and lm_head stay as they are.
#pragma once
#include <string>
#include <vector>

#include "shrink/compress/lowrank.h"
#include "shrink/io/llm_import.h"

namespace shrink::compress {

struct LlmFactorizeOptions {
  FactorizeConfig config;
  int64_t batch = 4;  // calibration windows per forward pass
  bool quiet = false;
};

struct LlmFactorizeReport {
  std::vector<FactorizedLayer> layers;
  int64_t calibration_tokens = 0;
  int64_t params_before = 0, params_after = 0;  // of the whole graph
  double seconds = 0;
  int64_t peak_rss_bytes = 0;
};

// UsageError for a bad config, or asvd/svd-llm without calibration windows.
LlmFactorizeReport factorize_language_model(io::LanguageModel& model,
                                            const std::vector<std::vector<int32_t>>& calibration,
                                            const LlmFactorizeOptions& options);

}  // namespace shrink::compress
