// Model files told apart by their first bytes (see file_kind.h).
#include "io/file_kind.h"

#include <cstring>
#include <fstream>

namespace shrink::io {

ModelFileKind sniff_model_file(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  char head[9] = {};
  if (!stream.read(head, sizeof head)) return ModelFileKind::unknown;
  if (std::memcmp(head, "GGUF", 4) == 0) return ModelFileKind::gguf;
  if (head[8] == '{') return ModelFileKind::safetensors;
  if (head[0] == 0x08 && head[1] > 0 && uint8_t(head[1]) < 0x80) return ModelFileKind::onnx;
  return ModelFileKind::unknown;
}

}  // namespace shrink::io
