// shrink generate LM --prompt TEXT: greedy or sampled continuation, streamed token by token,
// with prefill and decode speeds on stderr.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "shrink/core/error.h"
#include "shrink/core/parallel.h"
#include "shrink/core/progress.h"
#include "shrink/io/llm_import.h"
#include "shrink/nn/decoder.h"

namespace shrink::cli {
namespace {

struct GenerateOptions {
  std::string model, prompt;
  int64_t max_tokens = 64;
  nn::SamplingOptions sampling;
  uint64_t seed = 0;
  bool chat = false, json = false, stop_at_eos = true, profile = false;
  std::string kv_cache = "f16";
};

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Per node kind: calls and milliseconds per decoded token, and the share of the decode time.
// read_ahead: the bytes of weights the team's helpers read ahead (team_prefetch) while decoding;
// weights: the bytes of weights a token reads.
void print_profile(const std::map<std::string, nn::Decoder::KindTime>& profile, size_t tokens, double decode,
                   uint64_t read_ahead, int64_t weights) {
  std::vector<std::pair<std::string, nn::Decoder::KindTime>> rows(profile.begin(), profile.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  std::fprintf(stderr, "\n%-22s %12s %14s %8s\n", "node kind", "calls/token", "ms/token", "share");
  for (const auto& [kind, t] : rows) {
    total += t.seconds;
    std::fprintf(stderr, "%-22s %12.1f %14.3f %7.1f%%\n", kind.c_str(), double(t.calls) / double(tokens),
                 1e3 * t.seconds / double(tokens), 100 * t.seconds / decode);
  }
  std::fprintf(stderr, "%-22s %12s %14.3f %7.1f%%\n", "between nodes, sampling", "",
               1e3 * (decode - total) / double(tokens), 100 * (decode - total) / decode);
  const double ahead = double(read_ahead) / double(tokens);
  std::fprintf(stderr, "read ahead by the helpers while they waited: %.1f MB/token, %.0f%% of the %.1f MB of weights a token reads\n",
               ahead / 1e6, 100 * ahead / double(std::max<int64_t>(weights, 1)), double(weights) / 1e6);
}

void run_generate(const GenerateOptions& o) {
  io::LanguageModel lm = io::load_language_model(o.model);
  if (lm.config.is_encoder()) throw UsageError("this is a sentence encoder; generate needs a decoder (e.g. SmolLM2)");
  std::string text = o.prompt;
  if (o.chat)  // the ChatML template SmolLM2's GGUF carries
    text = "<|im_start|>user\n" + o.prompt + "<|im_end|>\n<|im_start|>assistant\n";
  std::vector<int32_t> prompt = lm.tokenizer->encode(text, o.chat);
  if (lm.tokenizer->bos >= 0 && lm.tokenizer->kind() == "wordpiece") throw UsageError("BERT encoders do not generate text");
  if (prompt.empty()) throw UsageError("the prompt is empty", "--prompt");
  if (lm.config.context > 0 && int64_t(prompt.size()) + o.max_tokens > lm.config.context)
    throw UsageError(fmt::format("prompt + --max-tokens exceed the model's context of {}", lm.config.context));
  nn::Decoder decoder(lm.graph, {.kv_cache = o.kv_cache == "f32" ? DType::f32 : DType::f16});
  decoder.reserve(int64_t(prompt.size()) + o.max_tokens);
  Rng rng(o.seed);
  // Long prompts go in in chunks, with progress: each chunk attends over the cache the earlier
  // ones filled (the same logits as one call; bounded activations, and a long prefill is not
  // seconds of silence).
  constexpr size_t kPrefillChunk = 512;
  auto start = std::chrono::steady_clock::now();
  ProgressLine progress("prefill", int64_t(prompt.size()), o.json || prompt.size() <= kPrefillChunk);
  std::span<const float> logits;  // the decoder's own row (feed_view), valid until its next call
  for (size_t at = 0; at < prompt.size(); at += kPrefillChunk) {
    const size_t count = std::min(kPrefillChunk, prompt.size() - at);
    logits = decoder.feed_view(std::span<const int32_t>(prompt.data() + at, count));
    progress.update(int64_t(at + count), "prompt tokens");
  }
  progress.finish();
  double prefill = since(start);
  decoder.set_profiling(o.profile);
  if (!o.json) {
    std::fputs(o.chat ? "" : o.prompt.c_str(), stdout);
    std::fflush(stdout);
  }
  std::vector<int32_t> generated;
  auto decode_start = std::chrono::steady_clock::now();
  const uint64_t read_ahead_at_start = read_ahead_bytes();
  for (int64_t i = 0; i < o.max_tokens; ++i) {
    int32_t next = nn::sample_token(logits, o.sampling, rng);
    if (o.stop_at_eos && next == lm.tokenizer->eos) break;
    generated.push_back(next);
    if (!o.json) {
      std::string piece = lm.tokenizer->token_text(next);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    if (i + 1 < o.max_tokens) logits = decoder.feed_view(std::span<const int32_t>(&next, 1));
  }
  double decode = since(decode_start);
  if (o.profile)
    print_profile(decoder.profile(), generated.size() > 1 ? generated.size() - 1 : 1, decode,
                  read_ahead_bytes() - read_ahead_at_start, nn::weight_bytes_per_token(lm.graph));
  double prefill_rate = double(prompt.size()) / std::max(prefill, 1e-9);
  double decode_rate = generated.size() > 1 ? double(generated.size() - 1) / std::max(decode, 1e-9) : 0;
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.model}, {"prompt", o.prompt}, {"text", lm.tokenizer->decode(generated)},
                                  {"prompt_tokens", prompt.size()}, {"generated_tokens", generated.size()},
                                  {"ids", generated}, {"prefill_tokens_per_second", prefill_rate},
                                  {"decode_tokens_per_second", decode_rate},
                                  {"weight_bytes_per_token", nn::weight_bytes_per_token(lm.graph)},
                                  {"kv_cache", o.kv_cache}, {"kv_cache_bytes", decoder.kv_cache_bytes()}};
    print_json(out);
    return;
  }
  std::fputs("\n", stdout);
  std::fprintf(stderr, "[%zu prompt tokens: prefill %.1f tokens/s; %zu generated: decode %.1f tokens/s]\n",
               prompt.size(), prefill_rate, generated.size(), decode_rate);
}

}  // namespace

void setup_generate(CLI::App& sub) {
  auto o = std::make_shared<GenerateOptions>();
  sub.add_option("MODEL", o->model, "A language model (GGUF, Hugging Face folder, or shrink file)")->required();
  sub.add_option("--prompt", o->prompt, "Text to continue")->required();
  sub.add_option("--max-tokens", o->max_tokens, "Tokens to generate at most")->check(kPositive);
  sub.add_option("--temperature", o->sampling.temperature, "0: greedy; above 0: sample")->check(kNonNegative);
  sub.add_option("--top-k", o->sampling.top_k, "Sample among the k most likely tokens (0: all)")->check(kNonNegative);
  sub.add_option("--top-p", o->sampling.top_p, "Nucleus sampling mass")->check(CLI::Range(1e-6, 1.0));
  sub.add_option("--seed", o->seed, "Seed of the sampler");
  sub.add_option("--kv-cache", o->kv_cache,
                 "Precision of the key/value cache: f16 (half the memory and bytes read per token) or f32 (exact)")
      ->check(CLI::IsMember({"f16", "f32"}));
  sub.add_flag("--chat", o->chat, "Wrap the prompt in the model's chat template (ChatML)");
  sub.add_flag("!--no-stop", o->stop_at_eos, "Keep generating past the end-of-text token");
  sub.add_flag("--profile", o->profile, "After decoding, print the time per node kind (per decoded token) on stderr");
  sub.add_flag("--json", o->json, "Print the result as JSON instead of streaming");
  sub.callback([o] { run_generate(*o); });
}

}  // namespace shrink::cli
