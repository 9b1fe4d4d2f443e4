// shrink qat MODEL --out OUT: quantization-aware training. Weights are fake-quantized per output
// channel (--weight-bits), activations by FakeQuantize nodes wherever the int8 model will
// quantize; batch norms are folded (frozen) after --freeze-bn-after epochs and the activation
// ranges frozen after --freeze-observers-after; the trained graph is converted to the same int8
// model static quantization builds and saved. Reports f32, fake-quantized and int8 accuracy and
// how often the int8 model's top-1 agrees with the fake-quantized model it came from.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/training_options.h"
#include "shrink/compress/qat.h"
#include "shrink/io/native_model.h"
#include "shrink/nn/execute.h"

namespace shrink::cli {
namespace {

struct QatOptions {
  std::string model, out, data, data_dir, save_qat;
  compress::QatConfig config;
  int64_t freeze_bn_after = 1, freeze_observers_after = 2;
  bool json = false;
  TrainingOptions training;
};

// Fraction of held-out examples on which both graphs predict the same class.
double top1_agreement(nn::Graph& a, nn::Graph& b, const train::DataSource& data) {
  int64_t same = 0, total = 0;
  for (int64_t start = 0; start < data.size(); start += 100) {
    std::vector<int64_t> indices;
    for (int64_t i = start; i < std::min(data.size(), start + 100); ++i) indices.push_back(i);
    const train::Batch batch = data.gather(indices);
    const Tensor x = nn::forward(a, batch.inputs)[0].contiguous(), y = nn::forward(b, batch.inputs)[0].contiguous();
    const int64_t classes = x.shape()[1];
    for (int64_t r = 0; r < batch.size; ++r) {
      const float* p = x.data<float>() + r * classes;
      const float* q = y.data<float>() + r * classes;
      same += std::max_element(p, p + classes) - p == std::max_element(q, q + classes) - q;
      ++total;
    }
  }
  return double(same) / double(std::max<int64_t>(total, 1));
}

void run_qat(QatOptions o) {
  TrainingOptions& t = o.training;
  if (t.lr < 0) t.lr = 1e-4;  // fine-tuning a trained model
  SourceModel source = open_source_model(o.model, o.data, o.data_dir, "quantization-aware training", true);
  const train::TaskData& task = *source.task;
  if (task.metric != "accuracy") throw UsageError("QAT needs a classification model (its int8 path has no embeddings)", "--data");
  nn::Graph& graph = source.model.graph;
  const train::Evaluation f32 = evaluate_task(graph, task);
  const std::vector<std::string> inserted = compress::prepare_qat(graph, o.config);
  if (!t.quiet) fmt::print(stderr, "{} fake-quantized activations, weights at {} bits\n", inserted.size(), o.config.weight_bits);
  const train::Evaluation start = evaluate_task(graph, task);
  auto optimizer = make_optimizer(t);
  int64_t steps_per_epoch = (task.train->size() + t.batch_size - 1) / t.batch_size;
  if (t.max_steps > 0) steps_per_epoch = std::min(steps_per_epoch, t.max_steps);
  train::Schedule schedule = make_schedule(t, steps_per_epoch);
  train::TrainerHooks hooks;
  hooks.end_of_epoch = [&](train::EpochSummary& summary) {
    if (summary.epoch + 1 == o.freeze_bn_after) {
      const auto folded = compress::fold_batch_norms(graph);
      if (!t.quiet) fmt::print(stderr, "batch norms frozen (folded: {})\n", folded.size());
    }
    if (summary.epoch + 1 == o.freeze_observers_after) {
      compress::set_observing(graph, false);
      if (!t.quiet) fmt::print(stderr, "activation ranges frozen\n");
    }
  };
  auto result = train::fit(graph, *optimizer, schedule, *task.train, cross_entropy_loss(t.label_smoothing),
                           make_train_config(t), hooks, [&] { return evaluate_task(graph, task); });
  if (result.interrupted) throw InterruptedError("interrupted; nothing was written");
  const train::Evaluation fake = evaluate_task(graph, task);
  compress::StaticQuantResult converted = compress::convert_qat(graph, o.config);
  const train::Evaluation int8 = evaluate_task(converted.graph, task);
  const double agreement = top1_agreement(graph, converted.graph, *task.eval);
  nlohmann::json provenance = compression_provenance("qat", source);
  provenance["config"] = {{"weight_bits", o.config.weight_bits}, {"exclude", o.config.exclude},
                          {"freeze_bn_after", o.freeze_bn_after}, {"freeze_observers_after", o.freeze_observers_after},
                          {"data", source.data}, {"training", describe(t)}};
  provenance["result"] = {{"metric", task.metric}, {"value", int8.metric}, {"loss", int8.loss}, {"before", f32.metric},
                          {"fake_quantized", fake.metric}, {"top1_agreement", agreement}};
  io::save_model(o.out, converted.graph, provenance);
  if (!o.save_qat.empty()) io::save_model(o.save_qat, graph, provenance);
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"weight_bits", o.config.weight_bits}, {"f32", f32.metric},
                                  {"fake_quantized_start", start.metric}, {"fake_quantized", fake.metric},
                                  {"int8", int8.metric}, {"top1_agreement", agreement},
                                  {"file_bytes_before", stored_bytes(o.model)},
                                  {"file_bytes_after", stored_bytes(o.out)}};
    print_json(out);
    return;
  }
  fmt::print("held-out accuracy: f32 {}, fake-quantized {} before training and {} after, int8 {}\n",
             format_metric(task, f32.metric), format_metric(task, start.metric), format_metric(task, fake.metric),
             format_metric(task, int8.metric));
  fmt::print("int8 top-1 equals the fake-quantized model's on {:.2f}% of the held-out examples\n", 100 * agreement);
  fmt::print("file {} -> {}\nsaved {}\n", human_bytes(stored_bytes(o.model)),
             human_bytes(stored_bytes(o.out)), o.out);
}

}  // namespace

void setup_qat(CLI::App& sub) {
  auto o = std::make_shared<QatOptions>();
  o->training.epochs = 3;
  sub.add_option("MODEL", o->model, "A trained shrink model file (classification)")->required();
  sub.add_option("--out", o->out, "Where to write the converted int8 model")->required();
  sub.add_option("--weight-bits", o->config.weight_bits, "Bits of the per-channel weights (2..8)")->check(CLI::Range(2, 8));
  sub.add_option("--freeze-bn-after", o->freeze_bn_after, "Fold (freeze) batch norms after this many epochs")
      ->check(kNonNegative);
  sub.add_option("--freeze-observers-after", o->freeze_observers_after,
                 "Freeze the activation ranges after this many epochs")->check(kNonNegative);
  sub.add_option("--exclude", o->config.exclude, "Node-name globs to keep f32 (repeatable)")->take_all();
  sub.add_option("--save-qat", o->save_qat, "Also save the fake-quantized training graph here");
  sub.add_option("--data", o->data, "Dataset (default: the model's)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  add_training_options(sub, o->training);
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_qat(*o); });
}

}  // namespace shrink::cli
