// shrink eval MODEL --data NAME: a model's quality on the held-out split.
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "shrink/eval/evaluate.h"
#include "shrink/io/native_model.h"
#include "shrink/nn/zoo.h"
#include "shrink/train/task_data.h"

namespace shrink::cli {
namespace {

struct EvalOptions {
  std::string model, data, data_dir;
  int64_t batch_size = 64;
  bool json = false;
};

void run_eval(const EvalOptions& o) {
  io::LoadedModel model = io::load_model(o.model);
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
    fmt::print("{}\n", out.dump(2));
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
  sub.add_option("MODEL", o->model, "A shrink model file")->required();
  sub.add_option("--data", o->data, "Dataset (default: the one the model was trained on)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  sub.add_option("--batch-size", o->batch_size, "Examples per forward pass")->check(CLI::PositiveNumber);
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_eval(*o); });
}

}  // namespace shrink::cli
