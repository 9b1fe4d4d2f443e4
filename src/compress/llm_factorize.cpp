// Plain and activation-aware (ASVD, SVD-LLM) factorization of a language model, block by block.
#include "shrink/compress/llm_factorize.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include "compress/block_calibration.h"
#include "shrink/compress/awq.h"
#include "shrink/compress/gptq.h"
#include "shrink/core/progress.h"

namespace shrink::compress {

LlmFactorizeReport factorize_language_model(io::LanguageModel& model,
                                            const std::vector<std::vector<int32_t>>& calibration,
                                            const LlmFactorizeOptions& o) {
  const FactorizeConfig& config = o.config;
  config.validate();
  const bool calibrated = config.method != "svd";
  if (calibrated && calibration.empty())
    throw UsageError(fmt::format("{} calibrates on text", config.method), "--calib", "pass --calib FILE");
  const auto start = std::chrono::steady_clock::now();
  nn::Graph& g = model.graph;
  std::vector<TransformerBlock> blocks = find_transformer_blocks(g);
  if (blocks.empty()) throw UnsupportedError("the model has no transformer blocks (nodes named '*.layers.<i>.*')");
  LlmFactorizeReport report;
  report.params_before = g.parameter_count();
  std::unique_ptr<BlockCalibration> calib;
  if (calibrated) {
    calib = std::make_unique<BlockCalibration>(g, calibration, o.batch, blocks[0]);
    report.calibration_tokens = calib->tokens();
  }
  ProgressLine progress(config.method + " block", int64_t(blocks.size()), o.quiet);
  for (size_t bi = 0; bi < blocks.size(); ++bi) {
    const TransformerBlock& b = blocks[bi];
    std::vector<std::string> names;
    for (size_t n : block_linears(g, b, config.exclude)) names.push_back(g.nodes()[n].name);
    std::map<std::string, InputStatistics> stats;
    if (calibrated) {
      // One accumulator per distinct input value (q/k/v and gate/up share theirs).
      std::map<int, HessianAccumulator> grams;
      std::map<int, ChannelMagnitude> magnitudes;
      for (const std::string& name : names) {
        const nn::Node& node = g.node(name);
        const int64_t dim = node.param("weight").value.shape()[1];
        if (config.method == "svd-llm") grams.try_emplace(node.inputs[0], dim);
        else magnitudes.try_emplace(node.inputs[0], dim);
      }
      std::vector<int> needed = value_keys(grams), more = value_keys(magnitudes);
      needed.insert(needed.end(), more.begin(), more.end());
      calib->observe(b, needed, [&](int value, const Tensor& x) {
        if (auto it = grams.find(value); it != grams.end()) it->second.add(x);
        if (auto it = magnitudes.find(value); it != magnitudes.end()) it->second.add(x);
      });
      std::map<int, InputStatistics> by_value;
      for (auto& [value, h] : grams) by_value[value].gram = h.hessian();
      for (auto& [value, m] : magnitudes) by_value[value].mean_abs = m.mean();
      for (const std::string& name : names) stats[name] = by_value.at(g.node(name).inputs[0]);
    }
    const size_t nodes_before = g.nodes().size();
    for (const std::string& name : names) {
      FactorizedLayer layer = factorize_layer(g, name, config, calibrated ? &stats.at(name) : nullptr);
      if (layer.factored) g.node(name).attrs["factorization"] = {{"method", config.method}, {"rank", layer.rank}};
      report.layers.push_back(layer);
    }
    // The block grew by one node per factored layer: shift the later blocks, run this one as it is now.
    const size_t added = g.nodes().size() - nodes_before;
    for (size_t later = bi + 1; later < blocks.size(); ++later) blocks[later].first += added, blocks[later].last += added;
    if (calibrated) {
      TransformerBlock grown = b;
      grown.last += added;
      calib->advance(grown);
    }
    progress.update(int64_t(bi + 1));
  }
  progress.finish();
  if (config.rank > 0 && std::none_of(report.layers.begin(), report.layers.end(), [](const auto& l) { return l.rank > 0; }))
    throw UsageError(fmt::format("rank {} is larger than every weight matrix allows", config.rank), "--rank",
                     "choose a rank below the smaller side of the matrices");
  report.params_after = g.parameter_count();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

}  // namespace shrink::compress
