// shrink eval MODEL --data NAME: a model's quality on the held-out split.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "shrink/core/error.h"
#include "shrink/core/progress.h"
#include "shrink/eval/evaluate.h"
#include "shrink/eval/embedding_similarity.h"
#include "shrink/eval/perplexity.h"
#include "shrink/eval/voice_activity.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/native_model.h"
#include "shrink/io/wav.h"
#include "shrink/nn/zoo.h"
#include "shrink/train/task_data.h"

namespace shrink::cli {
namespace {

struct EvalOptions {
  std::string model, data, data_dir, perplexity, embeddings, reference;
  std::vector<std::string> audio;
  int64_t batch_size = 64, context = 512, max_windows = 0, sentences = 200;
  bool json = false;
};

// shrink eval LM --perplexity TEXT: see eval/perplexity.h for the protocol.
void run_perplexity(const EvalOptions& o) {
  io::LanguageModel lm = io::load_language_model(o.model);
  if (lm.config.is_encoder())
    throw UsageError("perplexity needs a decoder; this is a sentence encoder", "--perplexity",
                     "use --embeddings TEXT --reference F32_MODEL");
  // As generate refuses to run past the context: positions beyond it were never trained (SmolLM2,
  // 8,192: --ctx 16384 had run 94 s and reported 53.0, a number of RoPE extrapolation, not the model).
  if (lm.config.context > 0 && o.context > lm.config.context)
    throw UsageError(fmt::format("--ctx {} exceeds the model's context of {}", o.context, lm.config.context), "--ctx");
  std::vector<int32_t> stream = lm.tokenizer->encode(read_text_file(o.perplexity));
  ProgressLine progress("perplexity window", 0, true);
  eval::PerplexityReport r = eval::evaluate_perplexity(
      lm.graph, stream, o.context, o.max_windows, [&](int64_t done, int64_t total, double ppl) {
        if (done == 1) progress = ProgressLine("perplexity window", total, o.json);
        progress.update(done, fmt::format("perplexity so far {:.3f}", ppl));
      });
  progress.finish();
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.model}, {"text", o.perplexity}, {"context", r.context},
                                  {"windows", r.windows}, {"predicted_tokens", r.predicted},
                                  {"stream_tokens", r.stream_tokens}, {"nll", r.nll},
                                  {"perplexity", r.perplexity()}, {"seconds", r.seconds}};
    print_json(out);
    return;
  }
  fmt::print("{} on {}: perplexity {:.3f} ({} windows of {} tokens, {} tokens scored of {}; {:.1f} s)\n", o.model,
             o.perplexity, r.perplexity(), r.windows, r.context, with_thousands(uint64_t(r.predicted)),
             with_thousands(uint64_t(r.stream_tokens)), r.seconds);
}

// shrink eval ENCODER --embeddings TEXT --reference F32: see eval/embedding_similarity.h.
void run_embedding_similarity(const EvalOptions& o) {
  if (o.reference.empty())
    throw UsageError("embedding similarity compares against a reference model", "--reference",
                     "pass the fp32 model (e.g. the MiniLM folder)");
  io::LanguageModel model = io::load_language_model(o.model), reference = io::load_language_model(o.reference);
  if (!model.config.is_encoder() || !reference.config.is_encoder())
    throw UsageError("--embeddings compares sentence encoders (BERT/MiniLM); for decoders use --perplexity");
  std::vector<std::string> sentences = eval::pick_sentences(read_text_file(o.embeddings), o.sentences);
  eval::EmbeddingSimilarity r = eval::compare_embeddings(model, reference, sentences);
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.model}, {"reference", o.reference}, {"text", o.embeddings},
                                  {"sentences", r.sentences}, {"tokens", r.tokens}, {"mean_cosine", r.mean_cosine},
                                  {"min_cosine", r.min_cosine}, {"seconds_model", r.seconds_model},
                                  {"seconds_reference", r.seconds_reference}};
    print_json(out);
    return;
  }
  fmt::print("{} vs {} on {} sentences of {} ({} tokens): mean cosine {:.5f}, min {:.5f}; {:.2f} s vs {:.2f} s\n",
             o.model, o.reference, r.sentences, o.embeddings, with_thousands(uint64_t(r.tokens)), r.mean_cosine,
             r.min_cosine, r.seconds_model, r.seconds_reference);
}

// The first few segments (all of them are in --json).
std::string segments_text(const std::vector<eval::SpeechSegment>& segments) {
  constexpr size_t kShown = 6;
  std::vector<std::string> parts;
  for (size_t i = 0; i < std::min(kShown, segments.size()); ++i)
    parts.push_back(fmt::format("{:.2f}-{:.2f}", segments[i].start, segments[i].end));
  if (segments.size() > kShown) parts.push_back(fmt::format("... ({} segments)", segments.size()));
  return parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, ", "));
}

nn::Graph load_voice_activity_model(const std::string& path) {
  io::LoadedModel model = io::load_model(path);
  if (!eval::is_voice_activity_model(model.graph))
    throw UsageError("--audio runs voice-activity detectors (Silero VAD); this model does not take audio frames",
                     path);
  return std::move(model.graph);
}

// shrink eval VAD --audio WAV... [--reference VAD]: see eval/voice_activity.h.
void run_voice_activity(const EvalOptions& o) {
  nn::Graph model = load_voice_activity_model(o.model);
  std::optional<nn::Graph> reference;
  if (!o.reference.empty()) reference = load_voice_activity_model(o.reference);
  nlohmann::ordered_json rows = nlohmann::json::array();
  std::vector<std::string> segment_texts;  // the table's column, one per file
  double seconds_model = 0, seconds_reference = 0, audio_seconds = 0, worst = 0, difference_sum = 0;
  int64_t chunks = 0, agreeing = 0;
  for (const std::string& path : o.audio) {
    const io::Audio audio = io::read_wav(path);
    const std::vector<float> samples = io::resample(audio.samples, audio.sample_rate, eval::kVadSampleRate);
    auto start = std::chrono::steady_clock::now();
    const std::vector<float> p = eval::speech_probabilities(model, samples);
    seconds_model += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    audio_seconds += audio.seconds();
    const auto segments = eval::speech_segments(p);
    int64_t speech = 0;
    for (float v : p) speech += v >= 0.5f;
    nlohmann::ordered_json row = {{"file", path}, {"seconds", audio.seconds()}, {"sample_rate", audio.sample_rate},
                                  {"chunks", p.size()}, {"speech_chunks", speech}, {"segments", nlohmann::json::array()}};
    for (const auto& s : segments) row["segments"].push_back({s.start, s.end});
    if (reference) {
      start = std::chrono::steady_clock::now();
      const std::vector<float> q = eval::speech_probabilities(*reference, samples);
      seconds_reference += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const eval::VadComparison c = eval::compare_probabilities(p, q);
      row.update({{"max_abs_difference", c.max_abs_difference}, {"mean_abs_difference", c.mean_abs_difference},
                  {"decision_agreement", c.decision_agreement},
                  {"reference_segments", eval::speech_segments(q).size()}});
      worst = std::max(worst, c.max_abs_difference);
      difference_sum += c.mean_abs_difference * double(c.chunks);
      agreeing += c.agreeing_chunks;
    }
    chunks += int64_t(p.size());
    segment_texts.push_back(segments_text(segments));
    rows.push_back(row);
  }
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.model}, {"files", rows}, {"chunks", chunks},
                                  {"audio_seconds", audio_seconds}, {"seconds_model", seconds_model}};
    if (reference)
      out.update({{"reference", o.reference}, {"max_abs_difference", worst},
                  {"mean_abs_difference", difference_sum / double(std::max<int64_t>(chunks, 1))},
                  {"decision_agreement", double(agreeing) / double(std::max<int64_t>(chunks, 1))},
                  {"seconds_reference", seconds_reference}});
    print_json(out);
    return;
  }
  size_t width = 4;
  for (const auto& row : rows) width = std::max(width, row["file"].get<std::string>().size());
  fmt::print("{:<{}} {:>7} {:>6} {:>7}{}  speech segments (s)\n", "file", width, "seconds", "chunks", "speech",
             reference ? fmt::format(" {:>10} {:>10} {:>7}", "max |dp|", "mean |dp|", "agree") : "");
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    fmt::print("{:<{}} {:>7.2f} {:>6} {:>6.1f}%{}  {}\n", row["file"].get<std::string>(), width,
               row["seconds"].get<double>(), row["chunks"].get<int64_t>(),
               100.0 * double(row["speech_chunks"].get<int64_t>()) / double(row["chunks"].get<int64_t>()),
               reference ? fmt::format(" {:>10.5f} {:>10.5f} {:>6.1f}%", row["max_abs_difference"].get<double>(),
                                       row["mean_abs_difference"].get<double>(),
                                       100 * row["decision_agreement"].get<double>())
                         : "",
               segment_texts[i]);
  }
  fmt::print("{} chunks of 32 ms ({:.1f} s of audio) in {:.3f} s", chunks, audio_seconds, seconds_model);
  if (reference)
    fmt::print("; against {}: max |dp| {:.5f}, mean |dp| {:.5f}, {:.2f}% of chunks decided alike (reference {:.3f} s)",
               o.reference, worst, difference_sum / double(std::max<int64_t>(chunks, 1)),
               100.0 * double(agreeing) / double(std::max<int64_t>(chunks, 1)), seconds_reference);
  fmt::print("\n");
}

void run_eval(const EvalOptions& o) {
  if (!o.audio.empty()) return run_voice_activity(o);
  if (!o.perplexity.empty()) return run_perplexity(o);
  if (!o.embeddings.empty()) return run_embedding_similarity(o);
  io::LoadedModel model = io::load_model(o.model);
  if (eval::is_voice_activity_model(model.graph))
    throw UsageError("a voice-activity detector is measured on audio", "--audio",
                     "pass --audio WAV..., and --reference F32_MODEL to compare");
  std::string data = o.data;
  if (data.empty() && model.provenance.contains("config"))
    data = model.provenance["config"].value("data", "");
  if (data.empty()) throw UsageError("the model does not say what it was trained on", "--data", "pass --data NAME");
  int64_t context = train::kDefaultContext;
  if (model.provenance.contains("config")) context = model.provenance["config"].value("context", context);
  train::TaskData task = train::load_task_data(data, o.data_dir, false, context);
  eval::CrossEntropyReport r = eval::evaluate_cross_entropy(model.graph, *task.eval, o.batch_size);
  bool text = task.metric == "ppl";
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.model}, {"data", data}, {"count", r.count}, {"loss", r.loss},
                                  {"accuracy", r.accuracy}, {"seconds", r.seconds}};
    if (text) {
      out["perplexity"] = r.perplexity();  // per token (per character for "austen")
      out["bits_per_character"] = r.bits() / task.characters_per_token;
      out["characters_per_token"] = task.characters_per_token;
      out["unigram_perplexity"] = std::exp(task.unigram_cross_entropy);
    }
    print_json(out);
    return;
  }
  if (text)
    fmt::print("{} on {} ({} held-out tokens, windows of {}): perplexity {:.3f} per token, {:.3f} bits per "
               "character (unigram baseline: perplexity {:.3f} per token); next-token accuracy {:.2f}% ({:.1f} s)\n",
               o.model, data, with_thousands(uint64_t(r.count)), context, r.perplexity(),
               r.bits() / task.characters_per_token, std::exp(task.unigram_cross_entropy), 100 * r.accuracy, r.seconds);
  else
    fmt::print("{} on {} ({} held-out examples): accuracy {:.2f}%, loss {:.4f} ({:.1f} s)\n", o.model, data,
               with_thousands(uint64_t(r.count)), 100 * r.accuracy, r.loss, r.seconds);
}

}  // namespace

void setup_eval(CLI::App& sub) {
  auto o = std::make_shared<EvalOptions>();
  sub.add_option("MODEL", o->model, "A shrink model file, or a language model (GGUF, Hugging Face folder)")->required();
  sub.add_option("--perplexity", o->perplexity, "Language models: perplexity on this text file (GPTQ/AWQ protocol)");
  sub.add_option("--embeddings", o->embeddings,
                 "Sentence encoders: cosine similarity to --reference of the embeddings of sentences from this text");
  sub.add_option("--audio", o->audio,
                 "Voice-activity detectors (Silero VAD): speech probability per 32 ms chunk of these WAV files")
      ->check(CLI::ExistingFile);
  sub.add_option("--reference", o->reference, "The fp32 model the --embeddings or --audio comparison is against");
  sub.add_option("--sentences", o->sentences, "Sentences --embeddings compares (evenly spaced through the text)")
      ->check(kPositive);
  sub.add_option("--ctx", o->context, "Tokens per perplexity window")->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  sub.add_option("--max-windows", o->max_windows, "Score only the first N windows (0: all)")->check(kNonNegative);
  sub.add_option("--data", o->data, "Dataset (default: the one the model was trained on)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  sub.add_option("--batch-size", o->batch_size, "Examples per forward pass")->check(kPositive);
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_eval(*o); });
}

}  // namespace shrink::cli
