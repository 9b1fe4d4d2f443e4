// shrink quantize MODEL --out OUT --method dynamic|static:
//   dynamic — int8 weights per output channel for Linear, LSTM and GRU layers, activations
//             quantized per row at run time;
//   static  — batch norms folded, activations calibrated on training examples with an observer,
//             Conv2d/Linear/Add (+ReLU) fused into int8 layers with int8 activations between
//             them, a per-layer error table, and --max-drop keeping the worst layers f32 until
//             the accuracy on a validation slice of the training split is within budget.
// Both print what was and was not quantized, the held-out metric before and after, and sizes.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/quantize_llm.h"
#include "cli/training_options.h"
#include "shrink/compress/quantize_dynamic.h"
#include "shrink/compress/quantize_static.h"
#include "shrink/core/rng.h"
#include "shrink/eval/evaluate.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/native_model.h"

namespace shrink::cli {
namespace {

struct QuantizeOptions {
  std::string model, out, method = "dynamic", data, data_dir, observer = "histogram", calibration_from;
  std::vector<std::string> layers, exclude;
  int64_t calib_samples = 1024, validation_samples = 5000;
  int weight_bits = 8;
  double max_drop = -1;
  uint64_t seed = 0;
  bool json = false;
  bool save_calibration = false;  // static: store the observers' state (it can outweigh the int8 model)
  bool convolutions = false;      // dynamic: Conv2d too
  bool embeddings = false;        // dynamic: Embedding tables too
  LlmQuantizeCliOptions llm;  // rtn, gptq
};

struct Row {  // one line of the layer table
  std::string node, kind, status;
  nlohmann::ordered_json extra;
};

struct Outcome {
  std::vector<Row> rows;
  std::vector<std::string> notes;
  int64_t quantized_bytes_before = 0, quantized_bytes_after = 0;
  nlohmann::json config;
  nlohmann::json calibration;  // static: the observers' state, stored in the file
};

Outcome quantize_dynamic(nn::Graph& graph, const QuantizeOptions& o) {
  Outcome out;
  // Convolutions run faster with their batch norms folded in (exact at inference), as the
  // static path does; asked for by --conv or by naming a Conv2d in --layers.
  const compress::DynamicQuantConfig config{o.layers, o.exclude, o.convolutions, o.embeddings};
  if (compress::quantizes_convolutions(graph, config)) {
    const std::vector<std::string> folded = compress::fold_batch_norms(graph);
    if (!folded.empty()) out.notes.push_back(fmt::format("folded or removed: {}", fmt::join(folded, ", ")));
  }
  for (const auto& l : compress::quantize_dynamic(graph, config)) {
    Row row{l.node, l.kind, l.quantized ? "int8" : "f32: " + l.reason, {}};
    // a tied output layer: its weight counted at the table
    if (!l.shares_weight_with.empty()) row.extra["shares_weight_with"] = l.shares_weight_with;
    row.extra["bytes"] = l.bytes_before;
    row.extra["bytes_after"] = l.bytes_after;
    out.rows.push_back(row);
    if (l.quantized) out.quantized_bytes_before += l.bytes_before, out.quantized_bytes_after += l.bytes_after;
  }
  // Nothing quantized (a model quantized already, or --exclude covering every layer) would save the
  // model again unchanged and report "0 of N layers, 0.00x smaller".
  if (std::none_of(out.rows.begin(), out.rows.end(), [](const Row& r) { return r.status == "int8"; }))
    throw UsageError("no layer left to quantize: the model has no f32 Linear, LSTM or GRU layer (is it quantized "
                     "already?), or --exclude covers them all");
  out.config = {{"layers", o.layers}, {"exclude", o.exclude}, {"convolutions", o.convolutions},
                {"embeddings", o.embeddings},
                {"weights", "int8 symmetric per output channel"},
                {"activations", "u8 per row at run time"}};
  return out;
}

std::vector<Tensor> first_inputs(const train::DataSource& data, int64_t count) {
  std::vector<int64_t> indices;
  for (int64_t i = 0; i < std::min(count, data.size()); ++i) indices.push_back(i);
  return data.gather(indices).inputs;
}

double accuracy(nn::Graph& graph, const train::DataSource& data) {
  return eval::evaluate_cross_entropy(graph, data, 100).accuracy;
}

Outcome quantize_static(nn::Graph& graph, const train::TaskData& task, const QuantizeOptions& o) {
  Outcome out;
  if (!task.train) throw UsageError("static quantization calibrates on the training split", "--data");
  const auto& nodes = graph.nodes();
  // Checked before calibrating, which would take seconds for nothing (convert_static lists every
  // Linear and Conv2d it meets, quantized or kept f32, so this is the only way to find none).
  const auto quantizable = [](const nn::Node& n) { return n.kind == "Linear" || n.kind == "Conv2d"; };
  if (std::none_of(nodes.begin(), nodes.end(), quantizable))
    throw UsageError("the model has no f32 Linear or Conv2d layer to quantize (is it quantized already?)");
  const std::vector<std::string> folded = compress::fold_batch_norms(graph);
  if (!folded.empty()) out.notes.push_back(fmt::format("folded or removed: {}", fmt::join(folded, ", ")));
  ObserverConfig observer;
  observer.kind = observer_kind_from_name(o.observer);
  const int64_t size = task.train->size();
  const int64_t validation = o.max_drop >= 0 ? std::min(o.validation_samples, size / 2) : 0;
  compress::Calibrator calibrator(observer);
  int64_t calibration_samples = 0;  // 0: restored from --calibration-from
  if (!o.calibration_from.empty()) {  // the observers another static quantization stored
    const nlohmann::json state = io::load_model(o.calibration_from).provenance.value("calibration", nlohmann::json());
    if (state.is_null())
      throw UsageError(o.calibration_from + " holds no calibration (made by shrink quantize --method static --save-calibration?)",
                       "--calibration-from");
    calibrator = compress::Calibrator::from_state(graph, state);
    out.notes.push_back(fmt::format("calibration: the {} observers of {} ({} batches), not recalibrated",
                                    state["observer"].get<std::string>(), o.calibration_from, calibrator.batches()));
  } else {
    // Calibration: a seeded random sample of the training split, in batches of 100.
    std::vector<int64_t> order(static_cast<size_t>(size - validation));
    for (int64_t i = 0; i < int64_t(order.size()); ++i) order[size_t(i)] = i;
    Rng rng(o.seed);
    for (int64_t i = int64_t(order.size()) - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
    order.resize(size_t(std::min<int64_t>(o.calib_samples, int64_t(order.size()))));
    calibration_samples = int64_t(order.size());
    for (size_t start = 0; start < order.size(); start += 100) {
      std::vector<int64_t> batch(order.begin() + int64_t(start), order.begin() + int64_t(std::min(order.size(), start + 100)));
      calibrator.observe(graph, task.train->gather(batch).inputs);
    }
  }
  if (o.save_calibration) out.calibration = calibrator.state(graph);
  compress::StaticQuantConfig config{o.exclude, o.weight_bits};
  compress::StaticQuantResult result = compress::convert_static(graph, calibrator, config);
  const std::vector<Tensor> probe = first_inputs(*task.eval, 200);
  std::vector<compress::LayerError> errors = compress::layer_errors(graph, result.graph, result.layers, probe);
  if (o.max_drop >= 0) {
    // Keep the layer with the lowest SQNR in f32 until the validation accuracy is within budget.
    train::SubsetSource held(*task.train, size - validation, size);
    const double reference = accuracy(graph, held);
    double now = accuracy(result.graph, held);
    while (reference - now > o.max_drop) {
      auto worst = std::min_element(errors.begin(), errors.end(), [](const auto& a, const auto& b) {
        return a.sqnr_db < b.sqnr_db;
      });
      if (worst == errors.end()) break;
      out.notes.push_back(fmt::format("validation accuracy {:.2f}% vs f32 {:.2f}%: keeping {} ({:.1f} dB) in f32",
                                      100 * now, 100 * reference, worst->node, worst->sqnr_db));
      config.exclude.push_back(worst->node);
      result = compress::convert_static(graph, calibrator, config);
      errors = compress::layer_errors(graph, result.graph, result.layers, probe);
      now = accuracy(result.graph, held);
    }
    out.notes.push_back(fmt::format("validation ({} training examples held out of calibration): {:.2f}% int8 vs {:.2f}% f32",
                                    validation, 100 * now, 100 * reference));
  }
  for (const auto& l : result.layers) {
    Row row{l.node, l.kind, l.quantized_kind.empty() ? "f32: " + l.reason : l.quantized_kind, {}};
    for (const auto& e : errors)
      if (e.node == l.node) row.extra.update({{"sqnr_db", e.sqnr_db}, {"cosine", e.cosine}});
    if (!l.quantized_kind.empty()) {
      row.extra["bytes"] = graph.node(l.node).param_bytes();
      row.extra["bytes_after"] = result.graph.node(l.node).param_bytes();
      out.quantized_bytes_before += row.extra["bytes"].get<int64_t>();
      out.quantized_bytes_after += row.extra["bytes_after"].get<int64_t>();
    }
    out.rows.push_back(row);
  }
  out.config = {{"observer", std::string(observer_kind_name(calibrator.observer_kind()))}, {"weight_bits", o.weight_bits},
                {"calibration_samples", calibration_samples}, {"calibration_from", o.calibration_from}, {"exclude", config.exclude},
                {"max_drop", o.max_drop}, {"weights", "int8 symmetric per output channel"},
                {"activations", "u8 [0, 127] per tensor, calibrated"}};
  graph = std::move(result.graph);
  return out;
}

// Dynamic int8 of a language model's Linear layers (MiniLM, SmolLM2): the result keeps its
// tokenizer and config, so eval --embeddings / --perplexity run on it.
void quantize_language_model_dynamic(const QuantizeOptions& o) {
  io::LanguageModel lm = io::load_language_model(o.model);
  Outcome outcome = quantize_dynamic(lm.graph, o);
  // A quantized head or table is no longer the f32 tensor the tie names (GGUF export then writes
  // the head as output.weight; quantized together, the two still share one int8 tensor).
  for (const Row& r : outcome.rows)
    if (r.status == "int8" && (r.node == "lm_head" || r.kind == "Embedding")) lm.config.tied_embeddings = false;
  nlohmann::json provenance = {{"tool", "shrink " SHRINK_VERSION}, {"technique", "quantize"}, {"source", o.model},
                               {"config", outcome.config}};
  provenance["config"]["method"] = "dynamic";
  io::save_language_model(o.out, lm, provenance);
  int64_t quantized = 0;
  for (const Row& r : outcome.rows) quantized += r.status == "int8";
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"method", "dynamic"}, {"quantized_layers", quantized},
                                  {"quantized_layer_bytes_before", outcome.quantized_bytes_before},
                                  {"quantized_layer_bytes_after", outcome.quantized_bytes_after}};
    print_json(out);
    return;
  }
  fmt::print("dynamic int8: {} of {} layers quantized, {} -> {} ({:.2f}x smaller); file {} -> {}\nsaved {}\n", quantized,
             outcome.rows.size(), human_bytes(uint64_t(outcome.quantized_bytes_before)),
             human_bytes(uint64_t(outcome.quantized_bytes_after)),
             double(outcome.quantized_bytes_before) / double(std::max<int64_t>(1, outcome.quantized_bytes_after)),
             human_bytes(stored_bytes(o.model)), human_bytes(stored_bytes(o.out)), o.out);
}

void run_quantize(const QuantizeOptions& o) {
  if (o.convolutions && o.method != "dynamic")
    throw UsageError("--conv is an option of --method dynamic (static quantization converts convolutions anyway)",
                     "--conv");
  if (o.embeddings && o.method != "dynamic")
    throw UsageError(is_weight_only_method(o.method)
                         ? "only --method dynamic quantizes embedding tables (rtn, gptq and awq keep them; "
                           "--int8-head quantizes a tied one with the output layer)"
                         : "only --method dynamic quantizes embedding tables",
                     "--embeddings");
  if (is_weight_only_method(o.method)) {
    LlmQuantizeCliOptions llm = o.llm;
    llm.model = o.model, llm.out = o.out, llm.method = o.method, llm.exclude = o.exclude, llm.json = o.json;
    llm.seed = o.seed;
    return run_quantize_llm(llm);
  }
  if (o.method == "dynamic" && io::is_language_model_path(o.model)) return quantize_language_model_dynamic(o);
  const bool is_static = o.method == "static";
  SourceModel source = open_source_model(o.model, o.data, o.data_dir, is_static ? "calibration" : nullptr, is_static);
  nn::Graph& graph = source.model.graph;
  train::Evaluation before, after;
  if (source.task) before = evaluate_task(graph, *source.task);
  Outcome outcome = is_static ? quantize_static(graph, *source.task, o) : quantize_dynamic(graph, o);
  if (source.task) after = evaluate_task(graph, *source.task);
  nlohmann::json provenance = compression_provenance("quantize", source);
  provenance["config"] = outcome.config;
  if (!outcome.calibration.is_null()) provenance["calibration"] = outcome.calibration;
  provenance["config"].update({{"method", o.method}, {"context", source.context}});
  if (!source.data.empty()) provenance["config"]["data"] = source.data;
  provenance["result"] = held_out_result(source.task.get(), before, after);
  io::save_model(o.out, graph, provenance);
  const uint64_t file_before = stored_bytes(o.model), file_after = stored_bytes(o.out);
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"method", o.method}, {"file_bytes_before", file_before},
                                  {"file_bytes_after", file_after},
                                  {"quantized_layer_bytes_before", outcome.quantized_bytes_before},
                                  {"quantized_layer_bytes_after", outcome.quantized_bytes_after}};
    out["layers"] = nlohmann::json::array();
    for (const Row& r : outcome.rows) {
      nlohmann::ordered_json row = {{"node", r.node}, {"kind", r.kind}, {"status", r.status}};
      row.update(r.extra);
      out["layers"].push_back(row);
    }
    out["notes"] = outcome.notes;
    if (source.task) out.update({{"metric", source.task->metric}, {"before", before.metric}, {"after", after.metric}});
    print_json(out);
    return;
  }
  size_t width = 20;
  for (const Row& r : outcome.rows) width = std::max(width, r.node.size());
  fmt::print("  {:<{}} {:<16} {:>10} {:>10} {:>9} {:>8}  {}\n", "layer", width, "kind", "bytes", "after", "SQNR", "cosine", "");
  for (const Row& r : outcome.rows) {
    auto bytes = [&](const char* key) { return r.extra.contains(key) ? human_bytes(r.extra[key].get<uint64_t>()) : ""; };
    fmt::print("  {:<{}} {:<16} {:>10} {:>10} {:>9} {:>8}  {}\n", r.node, width, r.kind, bytes("bytes"),
               bytes("bytes_after"), r.extra.contains("sqnr_db") ? fmt::format("{:.1f} dB", r.extra["sqnr_db"].get<double>()) : "",
               r.extra.contains("cosine") ? fmt::format("{:.4f}", r.extra["cosine"].get<double>()) : "",
               r.extra.contains("shares_weight_with")
                   ? fmt::format("{} (weight shared with {})", r.status, r.extra["shares_weight_with"].get<std::string>())
                   : r.status);
  }
  for (const std::string& note : outcome.notes) fmt::print("{}\n", note);
  if (outcome.quantized_bytes_after > 0)
    fmt::print("\nquantized layers: {} -> {} ({:.2f}x smaller); file {} -> {}\n",
               human_bytes(uint64_t(outcome.quantized_bytes_before)), human_bytes(uint64_t(outcome.quantized_bytes_after)),
               double(outcome.quantized_bytes_before) / double(outcome.quantized_bytes_after), human_bytes(file_before),
               human_bytes(file_after));
  if (source.task)
    fmt::print("held-out {}: {} before, {} after\n", metric_title(*source.task),
               format_metric(*source.task, before.metric), format_metric(*source.task, after.metric));
  fmt::print("saved {}\n", o.out);
}

}  // namespace

void setup_quantize(CLI::App& sub) {
  auto o = std::make_shared<QuantizeOptions>();
  sub.add_option("MODEL", o->model, "A shrink model file, or for rtn/gptq/awq a language model (GGUF, Hugging Face folder)")
      ->required();
  sub.add_option("--out", o->out, "Where to write the quantized model")->required();
  sub.add_option("--method", o->method,
                 "dynamic: int8 weights, activations quantized at run time (Linear, LSTM, GRU); static: int8 "
                 "weights and calibrated int8 activations (Conv2d, Linear, Add, with batch norms folded); rtn, "
                 "gptq, awq: weight-only group-wise quantization of a language model's Linear layers")
      ->check(CLI::IsMember({"dynamic", "static", "rtn", "gptq", "awq"}));
  sub.add_option("--bits", o->llm.bits, "rtn/gptq/awq: bits per weight")->check(CLI::Range(2, 8));
  sub.add_option("--group-size", o->llm.group_size, "rtn/gptq/awq: weights per scale along the input (0: whole rows)")
      ->check(kNonNegative);
  sub.add_flag("--sym", o->llm.symmetric, "rtn/gptq/awq: symmetric grid (zero fixed at the middle)");
  sub.add_option("--calib", o->llm.calib, "gptq/awq (and rtn --keep-salient): calibration text file");
  sub.add_option("--samples", o->llm.samples, "gptq/awq: calibration windows")->check(kPositive);
  sub.add_option("--seq-len", o->llm.seq_len, "gptq/awq: tokens per calibration window")->check(kPositive);
  sub.add_option("--damp", o->llm.damp, "gptq: damping, fraction of mean(diag H)")->check(kPositive);
  sub.add_flag("--act-order", o->llm.act_order, "gptq: quantize columns by decreasing Hessian diagonal");
  sub.add_flag("--static-groups", o->llm.static_groups, "gptq: group scales from the original weights");
  sub.add_flag("--no-true-sequential", o->llm.no_true_sequential,
               "gptq: take all of a block's Hessians from the unquantized block (the paper's opt.py), instead of each "
               "layer's from the block with the layers before it quantized");
  sub.add_option("--keep-salient", o->llm.keep_salient,
                 "rtn: keep this fraction of each layer's input channels (largest mean |x| on --calib) in f16")
      ->check(CLI::Range(0.0, 0.999999));
  sub.add_option("--search-samples", o->llm.search_samples,
                 "awq: calibration windows the scale search runs the attention and MLP on (default 8)")
      ->check(kPositive);
  sub.add_flag("--no-awq-scale", o->llm.no_awq_scale, "awq: skip the scale search (clipping only)");
  sub.add_flag("--no-awq-clip", o->llm.no_awq_clip, "awq: skip the clipping search (scales only)");
  sub.add_flag("--int8-head", o->llm.int8_head, "rtn/gptq/awq: also the output layer, as int8 per channel (untied)");
  sub.add_option("--layers", o->layers,
                 "dynamic: node-name globs to quantize (default: every Linear, LSTM, GRU; a Conv2d or Embedding "
                 "named here is quantized too)")
      ->take_all();
  sub.add_flag("--conv", o->convolutions,
               "dynamic: Conv2d layers too: int8 weights per channel, each output position's inputs quantized with "
               "their own range at run time (no calibration data needed)");
  sub.add_flag("--embeddings", o->embeddings,
               "dynamic: Embedding tables too, int8 per row (a lookup dequantizes the rows it reads; MiniLM's "
               "word table is 3/4 of its Linear-quantized file)");
  sub.add_option("--exclude", o->exclude, "Node-name globs to keep f32 (repeatable)")->take_all();
  sub.add_flag("--save-calibration", o->save_calibration,
               "static: store the observers' state in the output (histograms: ~1 MB for the Fashion-MNIST CNN, "
               "more than its int8 weights) so that --calibration-from can convert again from it");
  sub.add_option("--calibration-from", o->calibration_from,
                 "static: convert with the observers stored by an earlier static quantization's --save-calibration "
                 "(other --weight-bits or --exclude without calibrating again)");
  sub.add_option("--observer", o->observer, "static: minmax, moving_average, histogram, percentile, entropy or mse");
  sub.add_option("--weight-bits", o->weight_bits, "static: bits of the per-channel weights (2..8; stored as int8)")
      ->check(CLI::Range(2, 8));
  sub.add_option("--calib-samples", o->calib_samples, "static: training examples to calibrate on")
      ->check(kPositive);
  sub.add_option("--max-drop", o->max_drop,
                 "static: accuracy budget (e.g. 0.005): keep the worst layers f32 until a validation slice of the "
                 "training split is within it")
      ->check(CLI::Range(0.0, 1.0));
  sub.add_option("--seed", o->seed, "static, gptq, awq, rtn --keep-salient: which examples or windows calibrate");
  sub.add_option("--data", o->data, "Dataset for calibration and evaluation (default: the model's)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_quantize(*o); });
}

}  // namespace shrink::cli
