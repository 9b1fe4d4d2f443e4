// Silero VAD (the real ONNX model, imported) f32 against dynamic int8, on real speech: the nine
// ALSA recordings resampled to 16 kHz and repeated to `minutes` of audio, one graph call for the
// whole stream. Prints median milliseconds of the whole model and of each node kind (time
// between the node's start and its end, summed per node), side by side in one run, alternating
// f32 and int8 repeats so machine noise hits both; and the two detectors' agreement.
// Usage: bench_vad CACHE_DIR [threads] [repeats] [minutes] [conv]   (CACHE_DIR: the asset cache;
// "conv": the int8 model's convolutions quantized too, as `quantize --method dynamic --conv`)
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>

#include "shrink/compress/quantize_dynamic.h"
#include "shrink/core/parallel.h"
#include "shrink/eval/voice_activity.h"
#include "shrink/io/onnx_import.h"
#include "shrink/io/wav.h"
#include "shrink/nn/execute.h"

using namespace shrink;
using Clock = std::chrono::steady_clock;

namespace {

struct Timing {
  double total_ms = 0;
  std::map<std::string, double> per_node_ms;  // node name -> ms
};

Timing timed_forward(nn::Graph& graph, const Tensor& frames) {
  Timing t;
  auto last = Clock::now();
  nn::RunOptions options;
  options.after_node = [&](const nn::Node& node, std::span<const Tensor>) {
    const auto now = Clock::now();
    t.per_node_ms[node.name] += std::chrono::duration<double, std::milli>(now - last).count();
    last = now;
  };
  const auto start = last;
  std::vector<Tensor> inputs{frames};
  nn::forward(graph, inputs, options);
  t.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_vad CACHE_DIR [threads] [repeats] [minutes] [conv]\n");
    return 2;
  }
  const std::string cache = argv[1];
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2, repeats = argc > 3 ? std::atoi(argv[3]) : 9;
  const double minutes = argc > 4 ? std::atof(argv[4]) : 10;
  set_num_threads(threads);
  try {
    std::vector<float> speech;
    for (const char* name : {"Front_Center", "Front_Left", "Front_Right", "Noise", "Rear_Center", "Rear_Left",
                             "Rear_Right", "Side_Left", "Side_Right"}) {
      const io::Audio audio = io::read_wav(cache + "/speech/" + name + ".wav");
      const auto s = io::resample(audio.samples, audio.sample_rate, eval::kVadSampleRate);
      speech.insert(speech.end(), s.begin(), s.end());
    }
    std::vector<float> stream;
    while (double(stream.size()) < minutes * 60 * eval::kVadSampleRate) stream.insert(stream.end(), speech.begin(), speech.end());
    const Tensor frames = eval::vad_frames(stream);
    nn::Graph f32 = io::import_onnx(cache + "/silero-vad/silero_vad.onnx").graph;
    nn::Graph int8 = io::import_onnx(cache + "/silero-vad/silero_vad.onnx").graph;
    compress::DynamicQuantConfig config;
    config.convolutions = argc > 5 && std::string(argv[5]) == "conv";
    compress::quantize_dynamic(int8, config);
    timed_forward(f32, frames), timed_forward(int8, frames);  // warm-up (int8 packs its weights)
    std::map<std::string, std::vector<double>> a, b;
    std::vector<double> ta, tb;
    for (int r = 0; r < repeats; ++r) {
      const Timing x = timed_forward(f32, frames), y = timed_forward(int8, frames);
      ta.push_back(x.total_ms), tb.push_back(y.total_ms);
      for (const auto& [node, ms] : x.per_node_ms) a[node].push_back(ms);
      for (const auto& [node, ms] : y.per_node_ms) b[node].push_back(ms);
    }
    const auto pf = eval::speech_probabilities(f32, stream), pq = eval::speech_probabilities(int8, stream);
    const eval::VadComparison c = eval::compare_probabilities(pq, pf);
    fmt::print("Silero VAD v5, {:.1f} min of 16 kHz speech ({} chunks), {} threads, medians of {} alternating repeats\n\n",
               double(stream.size()) / eval::kVadSampleRate / 60, frames.shape()[0], threads, repeats);
    fmt::print("| node | kind (f32 / int8) | f32 ms | int8 ms | f32 / int8 |\n|---|---|---:|---:|---:|\n");
    for (const nn::Node& node : f32.nodes()) {
      const nn::Node& q = int8.node(node.name);
      const double x = median(a[node.name]), y = median(b[node.name]);
      fmt::print("| {} | {}{} | {:.2f} | {:.2f} | {:.2f}x |\n", node.name, node.kind, q.kind != node.kind ? " / " + q.kind : "",
                 x, y, x / y);
    }
    fmt::print("| **whole model** | | **{:.1f}** | **{:.1f}** | **{:.2f}x** |\n\n", median(ta), median(tb), median(ta) / median(tb));
    fmt::print("int8 against f32: max |dp| {:.5f}, mean |dp| {:.5f}, {:.2f}% of chunks decided alike; "
               "{:.0f}x faster than real time (int8)\n",
               c.max_abs_difference, c.mean_abs_difference, 100 * c.decision_agreement,
               double(stream.size()) / eval::kVadSampleRate / (median(tb) / 1000));
  } catch (const Error& e) {
    fmt::print(stderr, "bench_vad: {}\n", e.what());
    return 1;
  }
}
