// Silero VAD's framing, segments and comparisons (see voice_activity.h).
#include "shrink/eval/voice_activity.h"

#include <algorithm>
#include <cmath>

#include "shrink/nn/execute.h"

namespace shrink::eval {

bool is_voice_activity_model(const nn::Graph& graph) {
  if (graph.inputs().size() != 1) return false;
  const nn::Value& input = graph.values()[size_t(graph.inputs()[0])];
  return input.name == "frames" && input.info.shape.rank() == 4 && input.info.shape[3] == kVadFrame;
}

int64_t vad_chunks(size_t samples) { return std::max<int64_t>(1, (int64_t(samples) + kVadChunk - 1) / kVadChunk); }

Tensor vad_frames(std::span<const float> samples, int64_t first, int64_t count) {
  const auto n = int64_t(samples.size());
  if (count < 0) count = vad_chunks(samples.size()) - first;
  Tensor frames = Tensor::zeros(Shape{count, 1, 1, kVadFrame}, DType::f32);
  float* out = frames.mutable_data<float>();
  const auto at = [&](int64_t i) { return i >= 0 && i < n ? samples[size_t(i)] : 0.f; };
  for (int64_t c = 0; c < count; ++c) {
    float* f = out + c * kVadFrame;
    const int64_t start = (first + c) * kVadChunk - kVadContext;
    for (int64_t i = 0; i < kVadContext + kVadChunk; ++i) f[i] = at(start + i);
    // reflect (numpy/ONNX "reflect": the edge sample not repeated)
    for (int64_t i = 0; i < kVadFrame - kVadContext - kVadChunk; ++i) f[kVadContext + kVadChunk + i] = f[kVadContext + kVadChunk - 2 - i];
  }
  return frames;
}

std::vector<float> speech_probabilities(nn::Graph& graph, std::span<const float> samples) {
  const int64_t chunks = vad_chunks(samples.size());
  // The encoder works on each chunk alone: it runs on blocks of chunks (its intermediate values,
  // some 6 KB a chunk, stay in the cache and do not grow with the audio), and only the features it
  // gives (512 bytes a chunk) go to the recurrent part as one sequence.
  const int split = graph.node_index("decoder.sequence");
  Tensor p;
  if (split < 0 || chunks <= kVadEncoderBlock) {
    const Tensor frames = vad_frames(samples);
    p = nn::forward(graph, std::span<const Tensor>(&frames, 1)).at(0).contiguous();
  } else {
    const int features_value = graph.nodes()[size_t(split)].inputs.at(0);
    Tensor features;
    for (int64_t first = 0; first < chunks; first += kVadEncoderBlock) {
      const int64_t count = std::min(kVadEncoderBlock, chunks - first);
      const Tensor frames = vad_frames(samples, first, count);
      const int wanted[1] = {features_value};
      const Tensor block =
          nn::forward_segment(graph, 0, size_t(split), {{graph.inputs()[0], frames}}, wanted).at(0).contiguous();
      if (!features.defined()) features = Tensor::uninitialized(Shape{chunks, block.shape()[1]}, DType::f32);
      std::copy(block.data<float>(), block.data<float>() + block.numel(),
                features.mutable_data<float>() + first * block.shape()[1]);
    }
    const int wanted[1] = {graph.outputs().at(0)};
    p = nn::forward_segment(graph, size_t(split), graph.nodes().size(), {{features_value, features}}, wanted)
            .at(0)
            .contiguous();
  }
  if (p.numel() != chunks)
    throw UsageError("the model's output does not have one probability per chunk", "voice activity");
  return {p.data<float>(), p.data<float>() + p.numel()};
}

std::vector<SpeechSegment> speech_segments(std::span<const float> probabilities) {
  constexpr double kOn = 0.5, kOff = kOn - 0.15, kChunkSeconds = double(kVadChunk) / kVadSampleRate;
  constexpr int64_t kMinSilenceChunks = 4, kMinSpeechChunks = 8;  // 100 ms and 250 ms, rounded up to 32 ms chunks
  std::vector<SpeechSegment> segments;
  int64_t start = -1, quiet_since = -1;
  const auto close = [&](int64_t end) {
    if (end - start >= kMinSpeechChunks) segments.push_back({double(start) * kChunkSeconds, double(end) * kChunkSeconds});
    start = -1, quiet_since = -1;
  };
  for (int64_t i = 0; i < int64_t(probabilities.size()); ++i) {
    const double p = probabilities[size_t(i)];
    if (start < 0) {
      if (p >= kOn) start = i;
      continue;
    }
    if (p >= kOff) {
      quiet_since = -1;
    } else {
      if (quiet_since < 0) quiet_since = i;
      if (i + 1 - quiet_since >= kMinSilenceChunks) close(quiet_since);
    }
  }
  if (start >= 0) close(quiet_since >= 0 ? quiet_since : int64_t(probabilities.size()));
  return segments;
}

VadComparison compare_probabilities(std::span<const float> model, std::span<const float> reference) {
  if (model.size() != reference.size())
    throw UsageError("the two detectors gave different numbers of chunks", "voice activity");
  VadComparison r;
  r.chunks = int64_t(model.size());
  for (size_t i = 0; i < model.size(); ++i) {
    const double d = std::abs(double(model[i]) - reference[i]);
    r.max_abs_difference = std::max(r.max_abs_difference, d);
    r.mean_abs_difference += d;
    r.agreeing_chunks += (model[i] >= 0.5f) == (reference[i] >= 0.5f);
  }
  if (r.chunks) {
    r.mean_abs_difference /= double(r.chunks);
    r.decision_agreement = double(r.agreeing_chunks) / double(r.chunks);
  }
  return r;
}

}  // namespace shrink::eval
