#include "cli/quantize_llm.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "shrink/compress/llm_quantize.h"
#include "shrink/core/error.h"
#include "shrink/io/llm_import.h"

namespace shrink::cli {
bool is_weight_only_method(const std::string& method) { return method == "rtn" || method == "gptq" || method == "awq"; }

void run_quantize_llm(const LlmQuantizeCliOptions& o) {
  compress::LlmQuantizeOptions options;
  options.method = o.method;
  options.weights = {o.bits, o.group_size, o.symmetric};
  options.gptq.damp = o.damp;
  options.gptq.act_order = o.act_order;
  options.gptq.static_groups = o.static_groups;
  options.true_sequential = !o.no_true_sequential;
  options.samples = o.samples, options.seq_len = o.seq_len, options.seed = o.seed;
  if (!o.exclude.empty()) options.exclude.insert(options.exclude.end(), o.exclude.begin(), o.exclude.end());
  options.keep_salient = o.keep_salient;
  if (o.search_samples > 0) options.awq.search_sequences = o.search_samples;
  options.awq.scale = !o.no_awq_scale;
  options.awq.clip = !o.no_awq_clip;
  options.quiet = o.json;
  options.int8_head = o.int8_head;
  if (o.keep_salient > 0 && o.method != "rtn")
    throw UsageError("salient channels are kept with --method rtn (AWQ's scaling replaces them)", "--keep-salient");
  if ((o.method != "rtn" || o.keep_salient > 0) && o.calib.empty())
    throw UsageError(fmt::format("{} calibrates on text", o.keep_salient > 0 ? "--keep-salient" : o.method), "--calib",
                     "pass --calib FILE (e.g. the Austen training novels)");

  io::LanguageModel lm = io::load_language_model(o.model);
  std::vector<std::vector<int32_t>> calibration;
  if (!o.calib.empty()) {
    std::vector<int32_t> stream = lm.tokenizer->encode(read_text_file(o.calib, "the calibration text"));
    calibration = compress::sample_calibration(stream, o.samples, o.seq_len, o.seed);
  }
  compress::LlmQuantizeReport r = compress::quantize_language_model(lm, calibration, options);

  int64_t weights = 0, packed = 0;
  for (const auto& node : lm.graph.nodes())
    if (node.attrs.contains("weight_quant")) {
      weights += node.attrs.value("in_features", int64_t(0)) * node.attrs.value("out_features", int64_t(0));
      packed += node.kind == "Int4Linear";
    }
  // Stored as the int4 kernels and GGUF hold them: bits per weight plus an f16 scale and an f16
  // zero (or min) per group.
  double group = double(o.group_size > 0 ? o.group_size : 1 << 30);
  // Salient channels add 16 bits each (their nibbles stay in place) and a 32-bit column index
  // per layer's kept channel, spread over the layer.
  double bits_per_weight = o.bits + 32.0 / group;
  if (weights > 0) bits_per_weight += 16.0 * double(r.salient_weights) / double(weights);
  nlohmann::json provenance = {{"tool", "shrink " SHRINK_VERSION}, {"technique", "quantize"}, {"source", o.model},
                               {"config", {{"method", o.method}, {"bits", o.bits}, {"group_size", o.group_size},
                                           {"symmetric", o.symmetric}, {"act_order", o.act_order},
                                           {"static_groups", o.static_groups},
                                           {"true_sequential", !o.no_true_sequential}, {"damp", o.damp}, {"int8_head", o.int8_head},
                                           {"calib", o.calib}, {"samples", o.samples}, {"seq_len", o.seq_len},
                                           {"seed", o.seed}, {"keep_salient", o.keep_salient}, {"search_samples", options.awq.search_sequences},
                                           {"awq_scale", !o.no_awq_scale}, {"awq_clip", !o.no_awq_clip}}},
                               {"storage", packed ? "Int4Linear: packed nibbles, f16 scale and min per group"
                                                  : "dequantized f32 (values on the quantization grid)"}};
  io::save_language_model(o.out, lm, provenance);
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"method", o.method}, {"seconds", r.seconds},
                                  {"quantized_weights", weights}, {"bits_per_weight", bits_per_weight},
                                  {"calibration_tokens", r.calibration_tokens},
                                  {"hidden_state_bytes", r.hidden_state_bytes}, {"peak_rss_bytes", r.peak_rss_bytes}};
    out["salient_weights"] = r.salient_weights;
    out["awq_groups"] = nlohmann::json::array();
    for (const auto& a : r.awq_groups)
      out["awq_groups"].push_back({{"layers", a.layers}, {"folded_into", a.folded_into}, {"alpha", a.alpha},
                                   {"loss_rtn", a.loss_rtn}, {"loss", a.loss}});
    out["layers"] = nlohmann::json::array();
    for (const auto& l : r.layers)
      out["layers"].push_back({{"name", l.name}, {"loss", l.loss}, {"damp", l.damp}, {"retries", l.retries},
                               {"dead_columns", l.dead_columns}});
    print_json(out);
    return;
  }
  fmt::print("{} {}: {} Linear layers, {} weights at {:.2f} bits each ({} as int{} + f16 scale/zero per group, vs "
             "{} f32) in {:.1f} s\n",
             o.method, options.weights.describe(), r.layers.size(), with_thousands(uint64_t(weights)), bits_per_weight,
             human_bytes(uint64_t(double(weights) * bits_per_weight / 8)), o.bits, human_bytes(uint64_t(weights) * 4),
             r.seconds);
  if (r.calibration_tokens)
    fmt::print("calibration: {} tokens; hidden states {} per copy; peak memory {}\n",
               with_thousands(uint64_t(r.calibration_tokens)), human_bytes(uint64_t(r.hidden_state_bytes)),
               human_bytes(uint64_t(r.peak_rss_bytes)));
  if (!r.awq_groups.empty()) {
    double alpha = 0, ratio = 0;
    int64_t scaled = 0;
    for (const auto& a : r.awq_groups)
      if (!a.folded_into.empty() && a.loss_rtn > 0) alpha += a.alpha, ratio += a.loss / a.loss_rtn, ++scaled;
    if (scaled)
      fmt::print("AWQ: {} layer groups scaled, mean alpha {:.2f}, module output error {:.3f} of RTN's on average\n",
                 scaled, alpha / double(scaled), ratio / double(scaled));
  }
  if (r.salient_weights)
    fmt::print("salient channels: {} weights kept in f16\n", with_thousands(uint64_t(r.salient_weights)));
  fmt::print("saved {} ({})\n", o.out,
             packed ? fmt::format("{} layers as packed int4, run by the int4 kernels", packed)
                    : std::string("weights stored dequantized in f32"));
}

}  // namespace shrink::cli
