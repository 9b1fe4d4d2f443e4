// What a model file is by its first bytes, whatever it is called: llama.cpp's files are not
// always named *.gguf (older ones were *.bin), and shrink's own models are safetensors files.
#pragma once
#include <string>

namespace shrink::io {

enum class ModelFileKind { gguf, safetensors, onnx, unknown };

// GGUF: the magic "GGUF"; safetensors: an 8-byte header length, then the header's JSON object;
// ONNX (a protocol-buffers ModelProto, no magic): field 1, ir_version, as a one-byte varint.
// unknown also when the file cannot be read (callers that need the reason open it themselves).
ModelFileKind sniff_model_file(const std::string& path);

}  // namespace shrink::io
