// SmolLM2-135M's shapes with random weights, for machines that cannot have the model file (the
// lent device machines reach nothing outside and take at most 64 MiB along; the GGUF is 98 MB):
// GPTQ of the whole model on random token windows as the main job runs it (int4 g128, act-order,
// static groups, int8 head; the arithmetic does not depend on the values, so the time is the real
// model's), then decoding with f32 weights and with the quantized result, tokens/s against the
// read bandwidth measured in the same run.
// Usage: bench_llm_synthetic [threads] [samples] [decode tokens] [repeats]
//   samples 0: RTN instead of GPTQ (no calibration; decoding only).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "shrink/compress/llm_quantize.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/eval/kernel_benchmarks.h"
#include "shrink/nn/decoder.h"

namespace {
using namespace shrink;

io::LanguageModel smollm2_shaped(uint64_t seed) {
  io::LmConfig c;  // SmolLM2-135M (its GGUF's metadata)
  c.vocabulary = 49152, c.dim = 576, c.layers = 30, c.heads = 9, c.kv_heads = 3, c.hidden = 1536, c.context = 2048;
  c.rope_theta = 100000, c.norm_eps = 1e-5;
  Rng rng(seed);
  io::LanguageModel lm;
  lm.config = c;
  lm.graph = io::build_llama(c, [&](const std::string& name, const Shape& shape) {
    Tensor t = Tensor::uninitialized(shape, DType::f32);
    const bool norm = name.find("norm") != std::string::npos;
    float* v = t.mutable_data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) v[i] = norm ? 1.f + 0.05f * rng.normal() : 0.02f * rng.normal();
    return t;
  });
  return lm;
}

std::vector<int32_t> random_tokens(Rng& rng, int64_t count, int64_t vocabulary) {
  std::vector<int32_t> out(static_cast<size_t>(count));
  for (int32_t& t : out) t = int32_t(rng.below(uint64_t(vocabulary)));
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct DecodeSpeed {
  double prefill = 0, decode = 0;  // tokens/s, medians
};

// A 26-token prompt, then `tokens` greedy tokens, `repeats` times from an empty cache, after one
// untimed run (the first call of each int4 layer lays out its decode panels).
DecodeSpeed decode_speed(io::LanguageModel& lm, int64_t tokens, int repeats) {
  Rng rng(7);
  const std::vector<int32_t> prompt = random_tokens(rng, 26, lm.config.vocabulary);
  std::vector<double> prefill, decode;
  nn::Decoder decoder(lm.graph);
  decoder.reserve(int64_t(prompt.size()) + tokens);
  decoder.feed(prompt);
  for (int r = 0; r < repeats; ++r) {
    decoder.reset();
    auto start = std::chrono::steady_clock::now();
    std::span<const float> logits = decoder.feed_view(prompt);
    prefill.push_back(double(prompt.size()) / seconds_since(start));
    start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < tokens; ++i) {
      const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      logits = decoder.feed_view(std::span<const int32_t>(&next, 1));
    }
    decode.push_back(double(tokens) / seconds_since(start));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {median(prefill), median(decode)};
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int64_t samples = argc > 2 ? std::atoll(argv[2]) : 128, tokens = argc > 3 ? std::atoll(argv[3]) : 64;
  const int repeats = argc > 4 ? std::max(1, std::atoi(argv[4])) : 5;
  set_num_threads(threads);
  fmt::print("SmolLM2-135M shapes, random weights, {} thread(s)\n", threads);
  std::fflush(stdout);
  const double bandwidth_before = measure_read_bandwidth();

  io::LanguageModel f32 = smollm2_shaped(1), quantized = smollm2_shaped(1);
  compress::LlmQuantizeOptions o;
  o.method = samples > 0 ? "gptq" : "rtn";
  o.weights = {4, 128, false};
  o.gptq.act_order = o.gptq.static_groups = true;
  o.int8_head = true;
  Rng rng(0);
  std::vector<std::vector<int32_t>> windows;
  for (int64_t s = 0; s < samples; ++s) windows.push_back(random_tokens(rng, o.seq_len, f32.config.vocabulary));
  const compress::LlmQuantizeReport report = compress::quantize_language_model(quantized, windows, o);
  const std::string label = samples > 0 ? "GPTQ" : "RTN";
  fmt::print("{} int4 g128{} + int8 head: {:.1f} s, peak memory {:.2f} GB\n", label,
             samples > 0 ? fmt::format(" (act-order, static groups; {} x {} random tokens)", samples, o.seq_len) : "",
             report.seconds, double(report.peak_rss_bytes) / 1e9);
  std::fflush(stdout);

  struct Row {
    std::string name;
    io::LanguageModel* model;
    DecodeSpeed speed;
  };
  Row rows[] = {{"f32", &f32, {}}, {label + " int4 g128 + int8 head", &quantized, {}}};
  for (Row& row : rows) row.speed = decode_speed(*row.model, tokens, repeats);
  const double bandwidth = std::max(bandwidth_before, measure_read_bandwidth());
  fmt::print("read bandwidth {:.1f} GB/s (the higher of before and after the models)\n\n", bandwidth / 1e9);
  fmt::print("| model | weight bytes/token | prefill tokens/s | decode tokens/s | effective GB/s | of the read bandwidth |\n");
  fmt::print("|---|---:|---:|---:|---:|---:|\n");
  for (const Row& row : rows) {
    const double bytes = double(nn::weight_bytes_per_token(row.model->graph)), rate = bytes * row.speed.decode;
    fmt::print("| {} | {:.1f} MB | {:.0f} | {:.1f} | {:.1f} | {:.0f}% |\n", row.name, bytes / 1e6, row.speed.prefill,
               row.speed.decode, rate / 1e9, 100 * rate / bandwidth);
  }
  fmt::print("\n({} decoded tokens after a 26-token prompt, medians of {} runs)\n", tokens, repeats);
  return 0;
}
