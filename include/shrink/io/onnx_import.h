// ONNX models into shrink's graph. ONNX files are whole programs (Silero VAD's holds If branches
// for two sample rates, shape arithmetic and a streaming state); shrink recognises the networks
// it knows by their weights' names and shapes and builds the same computation from its own ops:
//
// - Silero VAD v5 (PyPI silero-vad 5.x, silero_vad.onnx or silero_vad_half.onnx), its 16 kHz
//   branch: a frame of 640 samples (64 of context from the previous chunk, the chunk's 512, and
//   64 reflected at the end) -> STFT as a stride-128 convolution with 258 cos/sin bases ->
//   magnitude (129 bins x 4) -> four Conv1d(k3)+ReLU (strides 1, 2, 2, 1) -> an LSTM(128) over
//   the chunks in order -> ReLU -> Linear(128 -> 1) -> Sigmoid: the speech probability of each
//   32 ms chunk, as the ONNX model returns it called chunk by chunk with its state carried.
//   Graph input "frames" (chunks, 1, 1, 640) from eval/voice_activity.h; output (1, chunks, 1).
#pragma once
#include <string>

#include "shrink/io/native_model.h"

namespace shrink::io {

// Throws FormatError for a damaged file and UnsupportedError for an ONNX network shrink does not
// know (naming its op types). provenance: {"source": "onnx", "architecture": "silero-vad-5", ...}.
LoadedModel import_onnx(const std::string& path);
// The same from a file already read (io/onnx_reader.h; `path` names it in errors).
struct OnnxModel;
LoadedModel import_onnx(const OnnxModel& model, const std::string& path);

}  // namespace shrink::io
