// Voice-activity detection with Silero VAD (imported from ONNX, see io/onnx_import.h), and how a
// compressed detector compares with its reference.
//
// Protocol: the audio averaged to mono and resampled to 16 kHz (io::resample), cut into chunks of
// 512 samples (32 ms; the last one zero-padded), each chunk framed as Silero's streaming wrapper
// frames it (the 64 samples before it, zeros at the start, then the chunk, then 64 samples
// reflected at its end); one graph call gives every chunk's speech probability, the LSTM carrying
// its state from chunk to chunk as the ONNX model's state input does when called chunk by chunk.
// Segments follow the defaults of Silero's get_speech_timestamps without its padding: speech
// starts at a chunk with p >= 0.5 and ends once p stays below 0.35 for 100 ms; segments shorter
// than 250 ms are dropped.
#pragma once
#include <span>
#include <vector>

#include "shrink/core/tensor.h"
#include "shrink/nn/graph.h"

namespace shrink::eval {

inline constexpr int kVadSampleRate = 16000, kVadChunk = 512, kVadContext = 64, kVadFrame = 640;
inline constexpr int64_t kVadEncoderBlock = 2048;  // chunks the convolutions see at once (65 s)

// True when the graph takes Silero VAD's frames (its input is (?, 1, 1, 640) named "frames").
bool is_voice_activity_model(const nn::Graph& graph);

// The number of chunks of `samples` 16 kHz samples (at least one), and the frames (count, 1, 1,
// 640) of chunks first .. first + count (count < 0: to the end), each with its context from the
// samples before it.
int64_t vad_chunks(size_t samples);
Tensor vad_frames(std::span<const float> samples, int64_t first = 0, int64_t count = -1);

// Every chunk's speech probability (the convolutions on blocks of kVadEncoderBlock chunks, the
// LSTM over all of them: the same numbers as one call on every frame).
std::vector<float> speech_probabilities(nn::Graph& graph, std::span<const float> samples);

struct SpeechSegment {
  double start = 0, end = 0;  // seconds
};
std::vector<SpeechSegment> speech_segments(std::span<const float> probabilities);

struct VadComparison {
  int64_t chunks = 0, agreeing_chunks = 0;  // chunks, and those on the same side of 0.5
  double max_abs_difference = 0, mean_abs_difference = 0;
  double decision_agreement = 0;  // fraction of chunks on the same side of 0.5
};
VadComparison compare_probabilities(std::span<const float> model, std::span<const float> reference);

}  // namespace shrink::eval
