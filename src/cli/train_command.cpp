// shrink train: build a zoo architecture, train it on a named dataset with progress, evaluate on
// the held-out split after each epoch and save a checkpoint (atomically) after each epoch.
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/training_options.h"
#include "shrink/core/parallel.h"
#include "shrink/eval/evaluate.h"
#include "shrink/compress/distill.h"
#include "shrink/io/native_model.h"
#include "shrink/nn/zoo.h"
#include "shrink/train/task_data.h"

namespace shrink::cli {
namespace {

struct TrainOptions {
  std::string arch, data, data_dir, out;
  int64_t width = 0, layers = 0, context = train::kDefaultContext;
  bool json = false;
  TrainingOptions training;
  // distill: the teacher model and the loss mix
  std::string teacher, teacher_cache;
  compress::DistillConfig distill;
};

void run_train(TrainOptions o) {
  if (o.training.epochs <= 0) throw UsageError("train needs at least one epoch", "--epochs");
  const nn::ArchitectureInfo& info = nn::architecture(o.arch);
  if (o.data.empty()) o.data = info.data;
  if (o.data != info.data && o.data.rfind(info.data + "-", 0) != 0)
    throw UsageError(fmt::format("architecture '{}' is built for {}, not {}", o.arch, info.data, o.data), "--data");
  train::TaskData task = train::load_task_data(o.data, o.data_dir, true, o.context);
  nn::ZooOptions zoo;
  zoo.seed = o.training.seed;
  zoo.width = o.width;
  zoo.layers = o.layers;
  zoo.vocabulary = task.vocabulary;
  nn::Graph graph = nn::build_architecture(o.arch, zoo);
  TrainingOptions& t = o.training;
  auto optimizer = make_optimizer(t);
  train::Schedule schedule = make_schedule(t, (task.train->size() + t.batch_size - 1) / t.batch_size);
  train::TrainConfig config = make_train_config(t);
  if (!t.quiet)
    fmt::print(stderr, "training {} ({} parameters) on {} ({} examples), {} threads, {}\n", o.arch,
               with_thousands(uint64_t(graph.parameter_count())), o.data,
               with_thousands(uint64_t(task.train->size())), num_threads(), optimizer->describe());
  nlohmann::json provenance = {{"tool", std::string("shrink ") + SHRINK_VERSION},
                               {"technique", "train"},
                               {"config", describe(t)}};
  provenance["config"].update({{"arch", o.arch}, {"data", o.data}, {"width", o.width}, {"layers", o.layers},
                               {"context", o.context}, {"optimizer_detail", optimizer->describe()}});
  train::TrainerHooks hooks;
  hooks.end_of_epoch = [&](train::EpochSummary& s) {
    provenance["epochs_completed"] = s.epoch + 1;
    provenance["result"] = {{"metric", task.metric}, {"value", s.eval_metric}, {"loss", s.eval_loss},
                            {"train_samples_per_second", s.samples_per_second}};
    nn::Graph saved = graph;
    compress::detach_feature_hint(saved);  // the hidden-state projection only serves training
    io::save_model(o.out, saved, provenance);
  };
  auto evaluate = [&] { return evaluate_task(graph, task); };
  train::LossFunction loss = cross_entropy_loss(t.label_smoothing);
  std::unique_ptr<io::LoadedModel> teacher;
  std::shared_ptr<compress::TeacherOutputs> teacher_outputs;
  uint64_t fingerprint = 0;
  if (!o.teacher.empty()) {
    o.distill.validate();
    if (!o.teacher_cache.empty() && !o.distill.cache_teacher)
      throw UsageError("--teacher-cache keeps the cached outputs; it cannot go with --no-cache", "--teacher-cache");
    teacher = std::make_unique<io::LoadedModel>(io::load_model(o.teacher));
    train::Evaluation t_eval = evaluate_task(teacher->graph, task);
    if (o.distill.feature_weight > 0) compress::attach_feature_hint(graph, teacher->graph, o.distill, t.seed);
    teacher_outputs = std::make_shared<compress::TeacherOutputs>(teacher->graph, o.distill.cache_teacher);
    if (!o.teacher_cache.empty())  // after attaching the hint: the teacher's outputs are part of it
      fingerprint = compress::teacher_fingerprint(
          teacher->graph, fmt::format("{} context {} examples {}", o.data, o.context, task.train->size()));
    if (!o.teacher_cache.empty() && std::filesystem::exists(o.teacher_cache)) {
      bool loaded = teacher_outputs->load(o.teacher_cache, fingerprint);
      if (!t.quiet)
        fmt::print(stderr, "{}\n", loaded ? fmt::format("teacher outputs for {} examples read from {}",
                                                        teacher_outputs->cached(), o.teacher_cache)
                                          : fmt::format("{} holds another teacher's or dataset's outputs; "
                                                        "it will be rewritten", o.teacher_cache));
    }
    loss = compress::distillation_loss(teacher_outputs, o.distill);
    provenance["technique"] = "distill";
    provenance["config"].update({{"teacher", o.teacher}, {"alpha", o.distill.alpha},
                                 {"temperature", o.distill.temperature}, {"teacher_" + task.metric, t_eval.metric}});
    if (o.distill.feature_weight > 0)
      provenance["config"].update({{"hint_weight", o.distill.feature_weight},
                                   {"hint_student", o.distill.student_feature},
                                   {"hint_teacher", o.distill.teacher_feature}});
    if (!t.quiet)
      fmt::print(stderr, "teacher {}: held-out {} {:.4f}; alpha {}, temperature {}{}\n", o.teacher, task.metric,
                 t_eval.metric, o.distill.alpha, o.distill.temperature,
                 o.distill.feature_weight > 0 ? fmt::format(", hidden-state weight {}", o.distill.feature_weight) : "");
  }
  train::TrainResult result = train::fit(graph, *optimizer, schedule, *task.train, loss, config, hooks, evaluate);
  if (teacher_outputs && !o.teacher_cache.empty()) teacher_outputs->save(o.teacher_cache, fingerprint);
  if (result.interrupted)
    throw InterruptedError(result.epochs.empty()
                               ? "interrupted before the first epoch ended; nothing was written"
                               : fmt::format("interrupted; the checkpoint of epoch {} is intact at {}",
                                             result.epochs.size(), o.out));
  double total_seconds = 0;
  for (const auto& e : result.epochs) total_seconds += e.seconds;
  const train::EpochSummary& last = result.epochs.back();
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"metric", task.metric}, {"value", last.eval_metric},
                                  {"loss", last.eval_loss}, {"train_seconds", total_seconds},
                                  {"train_samples_per_second", last.samples_per_second}};
    print_json(out);
    return;
  }
  std::string quality = task.metric == "ppl"
                            ? fmt::format("perplexity {:.3f} per token, {:.3f} bits per character (unigram baseline: "
                                          "perplexity {:.3f} per token)",
                                          last.eval_metric, last.eval_loss / std::log(2.0) / task.characters_per_token,
                                          std::exp(task.unigram_cross_entropy))
                            : fmt::format("accuracy {:.2f}%", 100 * last.eval_metric);
  fmt::print("{}: held-out {}, loss {:.4f}; trained {} epochs in {:.1f} s ({:.0f} samples/s); saved {}\n", o.arch,
             quality, last.eval_loss, result.epochs.size(), total_seconds, last.samples_per_second, o.out);
}

}  // namespace

void setup_train(CLI::App& sub) {
  auto o = std::make_shared<TrainOptions>();
  std::vector<std::string> arch_names;
  for (const auto& a : nn::architectures()) arch_names.push_back(a.name);
  sub.add_option("--arch", o->arch, "Architecture from the zoo")->required()->check(CLI::IsMember(arch_names));
  sub.add_option("--data", o->data, "Dataset (default: the one the architecture is built for)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  sub.add_option("--out", o->out, "Where to write the model (rewritten atomically after each epoch)")->required();
  add_training_options(sub, o->training);
  sub.add_option("--width", o->width, "Override the architecture's width")->check(kNonNegative);
  sub.add_option("--layers", o->layers, "Override the architecture's depth")->check(kNonNegative);
  sub.add_option("--context", o->context, "Text: tokens per training window")->check(kPositive);
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_train(*o); });
}

void setup_distill(CLI::App& sub) {
  auto o = std::make_shared<TrainOptions>();
  std::vector<std::string> arch_names;
  for (const auto& a : nn::architectures()) arch_names.push_back(a.name);
  sub.add_option("--teacher", o->teacher, "The trained teacher model")->required();
  sub.add_option("--arch", o->arch, "The student's architecture from the zoo")->required()->check(CLI::IsMember(arch_names));
  sub.add_option("--data", o->data, "Dataset (default: the one the architecture is built for)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  sub.add_option("--out", o->out, "Where to write the student (rewritten atomically after each epoch)")->required();
  sub.add_option("--alpha", o->distill.alpha, "Weight of the label loss; 1 - alpha goes to the teacher")->check(CLI::Range(0.0, 1.0));
  sub.add_option("--temperature", o->distill.temperature, "Softening temperature T")->check(kPositive);
  sub.add_flag("!--no-cache", o->distill.cache_teacher, "Run the teacher on every batch instead of caching its outputs");
  sub.add_option("--teacher-cache", o->teacher_cache,
                 "Keep the teacher's outputs in this file: read at the start when it matches, written at the end");
  sub.add_option("--hint-weight", o->distill.feature_weight,
                 "Weight of the hidden-state MSE term (0: off); a learned projection bridges different widths")
      ->check(kNonNegative);
  sub.add_option("--hint-student", o->distill.student_feature,
                 "Student value the hidden-state term reads (default: the input of its final Linear)");
  sub.add_option("--hint-teacher", o->distill.teacher_feature,
                 "Teacher value it is compared with (default: the input of its final Linear)");
  add_training_options(sub, o->training);
  sub.add_option("--width", o->width, "Override the student's width")->check(kNonNegative);
  sub.add_option("--layers", o->layers, "Override the student's depth")->check(kNonNegative);
  sub.add_option("--context", o->context, "Text: tokens per training window")->check(kPositive);
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_train(*o); });
}

}  // namespace shrink::cli
