// GGUF writing and the Llama export (see gguf_writer.h).
#include "shrink/io/gguf_writer.h"

#include <fmt/format.h>

#include <cstring>

#include "shrink/core/atomic_file.h"
#include "shrink/core/error.h"
#include "shrink/core/half.h"
#include "shrink/kernels/registry.h"

namespace shrink {
namespace {

class Buffer {
 public:
  std::vector<uint8_t> bytes;
  template <class T> void put(T v) {
    size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
  }
  void text(const std::string& s) {
    put<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void value(const GgufValue& v) {
    switch (v.type) {
      case GgufValueType::u8: put<uint8_t>(uint8_t(v.integer)); break;
      case GgufValueType::i8: put<int8_t>(int8_t(v.integer)); break;
      case GgufValueType::u16: put<uint16_t>(uint16_t(v.integer)); break;
      case GgufValueType::i16: put<int16_t>(int16_t(v.integer)); break;
      case GgufValueType::u32: put<uint32_t>(uint32_t(v.integer)); break;
      case GgufValueType::i32: put<int32_t>(int32_t(v.integer)); break;
      case GgufValueType::u64: put<uint64_t>(uint64_t(v.integer)); break;
      case GgufValueType::i64: put<int64_t>(v.integer); break;
      case GgufValueType::f32: put<float>(float(v.real)); break;
      case GgufValueType::f64: put<double>(v.real); break;
      case GgufValueType::boolean: put<uint8_t>(v.integer ? 1 : 0); break;
      case GgufValueType::string: text(v.text); break;
      case GgufValueType::array:
        put<uint32_t>(uint32_t(v.element_type));
        put<uint64_t>(v.elements.size());
        for (const GgufValue& e : v.elements) value(e);
        break;
    }
  }
};

GgufValue scalar(GgufValueType type, int64_t i) {
  GgufValue v;
  v.type = type;
  v.integer = i;
  return v;
}
GgufValue real(double x) {
  GgufValue v;
  v.type = GgufValueType::f32;
  v.real = x;
  return v;
}
GgufValue string_value(const std::string& s) {
  GgufValue v;
  v.type = GgufValueType::string;
  v.text = s;
  return v;
}
template <class T> GgufValue array(GgufValueType element, const std::vector<T>& items) {
  GgufValue v;
  v.type = GgufValueType::array;
  v.element_type = element;
  for (const T& item : items) {
    if constexpr (std::is_same_v<T, std::string>) v.elements.push_back(string_value(item));
    else v.elements.push_back(scalar(element, int64_t(item)));
  }
  return v;
}

// llama.cpp's interleaved rotary layout for q/k rows, on rows of any byte width.
std::vector<uint8_t> permute_rows(const uint8_t* data, int64_t rows, size_t row_bytes, int64_t heads) {
  std::vector<uint8_t> out(size_t(rows) * row_bytes);
  int64_t half = rows / heads / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < half; ++j) {
        int64_t hf = (h * 2 + i) * half + j, gg = (h * half + j) * 2 + i;
        std::memcpy(out.data() + size_t(gg) * row_bytes, data + size_t(hf) * row_bytes, row_bytes);
      }
  return out;
}

std::vector<uint8_t> f32_bytes(const Tensor& t) {
  const Tensor c = t.contiguous();
  std::vector<uint8_t> out(size_t(c.numel()) * 4);
  std::memcpy(out.data(), c.data<float>(), out.size());
  return out;
}

std::vector<uint8_t> q8_0_bytes(const Tensor& t) {
  const Tensor c = t.contiguous();
  int64_t k = c.shape()[c.rank() - 1];
  if (k % 32) throw UsageError(fmt::format("Q8_0 needs rows of a multiple of 32 values, not {}", k));
  std::vector<uint8_t> out(size_t(c.numel() / 32) * sizeof(BlockQ8_0));
  kernels().quantize_q8_0(c.data<float>(), out.data(), c.numel());
  return out;
}

// An Int4Linear's packed weights as Q4_1 (or Q4_0) blocks, row by row.
std::vector<uint8_t> int4_blocks(const nn::Node& node, bool as_q4_0) {
  const Tensor nibbles = node.param("nibbles").value.contiguous(), scales = node.param("scales").value.contiguous(),
               mins = node.param("mins").value.contiguous();
  int64_t n = node.attrs.at("out_features"), k = node.attrs.at("in_features"), group = node.attrs.at("group_size");
  const auto* s = static_cast<const uint16_t*>(scales.raw_data());
  const auto* m = static_cast<const uint16_t*>(mins.raw_data());
  const uint8_t* q = nibbles.data<uint8_t>();
  size_t block_bytes = as_q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1);
  std::vector<uint8_t> out(size_t(n * k / 32) * block_bytes);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t b = 0; b < k / 32; ++b) {
      int64_t g = r * (k / group) + b * 32 / group;
      uint8_t* dst = out.data() + size_t(r * (k / 32) + b) * block_bytes;
      const uint8_t* src = q + r * (k / 2) + b * 16;
      if (as_q4_0) {
        BlockQ4_0 block{s[g], {}};
        std::memcpy(block.qs, src, 16);
        std::memcpy(dst, &block, sizeof block);
      } else {
        BlockQ4_1 block{s[g], m[g], {}};
        std::memcpy(block.qs, src, 16);
        std::memcpy(dst, &block, sizeof block);
      }
    }
  return out;
}

// A DynamicQuantLinear's (or an int8 Embedding's) int8 weights times their per-row scales.
Tensor dequantize_rows(const nn::Node& node) {
  const Tensor q = node.param("weight").value.contiguous(), scale = node.param("weight_scale").value.contiguous();
  int64_t rows = q.shape()[0], cols = q.shape()[1];
  Tensor w = Tensor::uninitialized(q.shape(), DType::f32);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      w.mutable_data<float>()[r * cols + j] = float(q.data<int8_t>()[r * cols + j]) * scale.data<float>()[r];
  return w;
}

bool symmetric_int4(const nn::Node& node) {
  const Tensor scales = node.param("scales").value.contiguous(), mins = node.param("mins").value.contiguous();
  const auto* s = static_cast<const uint16_t*>(scales.raw_data());
  const auto* m = static_cast<const uint16_t*>(mins.raw_data());
  for (int64_t i = 0; i < scales.numel(); ++i)
    if (f16_to_f32(m[i]) != -8.f * f16_to_f32(s[i])) return false;
  return true;
}

}  // namespace

void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorData>& tensors) {
  constexpr uint64_t kAlignment = 32;
  Buffer head;
  head.put<uint32_t>(0x46554747);  // "GGUF"
  head.put<uint32_t>(3);
  head.put<uint64_t>(tensors.size());
  head.put<uint64_t>(metadata.size());
  for (const auto& [key, value] : metadata) {
    head.text(key);
    head.put<uint32_t>(uint32_t(value.type));
    head.value(value);
  }
  uint64_t offset = 0;
  for (const GgufTensorData& t : tensors) {
    std::optional<GgmlTypeInfo> info = ggml_type_info(uint32_t(t.type));
    if (!info) throw UsageError("unknown ggml type for tensor " + t.name);
    uint64_t numel = uint64_t(t.shape.numel());
    if (numel % info->block_size || numel / info->block_size * info->block_bytes != t.bytes.size())
      throw UsageError(fmt::format("tensor '{}': {} bytes do not hold {} values of {}", t.name, t.bytes.size(), numel,
                                   info->name));
    head.text(t.name);
    head.put<uint32_t>(uint32_t(t.shape.rank()));
    for (int d = t.shape.rank() - 1; d >= 0; --d) head.put<uint64_t>(uint64_t(t.shape[d]));  // innermost first
    head.put<uint32_t>(uint32_t(t.type));
    head.put<uint64_t>(offset);
    offset += (t.bytes.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  AtomicFileWriter out(path);
  out.write(head.bytes.data(), head.bytes.size());
  out.write_zeros((kAlignment - head.bytes.size() % kAlignment) % kAlignment);
  for (const GgufTensorData& t : tensors) {
    out.write(t.bytes.data(), t.bytes.size());
    out.write_zeros((kAlignment - t.bytes.size() % kAlignment) % kAlignment);
  }
  out.commit();
}

GgufExportReport export_llama_gguf(const io::LanguageModel& model, const std::string& path,
                                   const GgufExportOptions& o) {
  if (o.other_matrices != GgmlType::f32 && o.other_matrices != GgmlType::q8_0)
    throw UsageError("other matrices export as F32 or Q8_0");
  for (const nn::Node& node : model.graph.nodes())
    if (node.find_param("salient_columns"))
      throw UnsupportedError(fmt::format("'{}' keeps salient channels in f16 beside its 4-bit weights; GGUF has no "
                                         "such mixed-precision tensor", node.name),
                             "", "quantize without --keep-salient to export GGUF");
  if (!model.tokenizer) throw UsageError("the model has no tokenizer to write into the GGUF file");
  if (model.config.architecture != "llama")
    throw UnsupportedError(fmt::format("GGUF export of a '{}' model (shrink writes llama GGUF files)", model.config.architecture));
  const io::LmConfig& c = model.config;
  const nlohmann::json tok = model.tokenizer->to_json();
  if (tok.value("type", "") != "byte-bpe") throw UnsupportedError("GGUF export of a non-BPE tokenizer");
  std::vector<std::pair<std::string, GgufValue>> meta;
  using T = GgufValueType;
  meta.emplace_back("general.architecture", string_value("llama"));
  meta.emplace_back("general.name", string_value("exported by shrink " SHRINK_VERSION));
  meta.emplace_back("general.alignment", scalar(T::u32, 32));
  meta.emplace_back("llama.block_count", scalar(T::u32, c.layers));
  meta.emplace_back("llama.context_length", scalar(T::u32, c.context > 0 ? c.context : 2048));
  meta.emplace_back("llama.embedding_length", scalar(T::u32, c.dim));
  meta.emplace_back("llama.feed_forward_length", scalar(T::u32, c.hidden));
  meta.emplace_back("llama.attention.head_count", scalar(T::u32, c.heads));
  meta.emplace_back("llama.attention.head_count_kv", scalar(T::u32, c.kv_heads));
  meta.emplace_back("llama.rope.freq_base", real(c.rope_theta));
  meta.emplace_back("llama.rope.dimension_count", scalar(T::u32, c.head_dim()));
  meta.emplace_back("llama.attention.layer_norm_rms_epsilon", real(c.norm_eps));
  meta.emplace_back("llama.vocab_size", scalar(T::u32, c.vocabulary));
  meta.emplace_back("tokenizer.ggml.model", string_value("gpt2"));
  meta.emplace_back("tokenizer.ggml.pre", string_value(tok.value("isolate_digits", false) ? "smollm" : "gpt-2"));
  std::vector<std::string> tokens = tok.at("tokens");
  std::vector<int32_t> types(tokens.size(), 1);  // NORMAL
  for (int64_t id : tok.at("special").get<std::vector<int64_t>>()) types[size_t(id)] = 3;  // CONTROL
  meta.emplace_back("tokenizer.ggml.tokens", array(T::string, tokens));
  meta.emplace_back("tokenizer.ggml.token_type", array(T::i32, types));
  meta.emplace_back("tokenizer.ggml.merges", array(T::string, tok.at("merges").get<std::vector<std::string>>()));
  for (const char* key : {"bos", "eos", "unknown", "padding"}) {
    int64_t id = tok.value(key, int64_t(-1));
    std::string name = std::string("tokenizer.ggml.") + (std::string(key) == "unknown" ? "unknown" : key) + "_token_id";
    if (id >= 0) meta.emplace_back(name, scalar(T::u32, id));
  }
  meta.emplace_back("tokenizer.ggml.add_bos_token", scalar(T::boolean, 0));
  meta.emplace_back("general.quantization_version", scalar(T::u32, 2));

  GgufExportReport report;
  std::vector<GgufTensorData> tensors;
  for (const nn::Node& node : model.graph.nodes()) {
    std::string hf = node.name + ".weight";
    std::string name = io::hf_to_gguf_name(hf);
    if (node.kind == "Linear" && node.name == "lm_head" && c.tied_embeddings) continue;
    if (name.empty()) {
      if (node.params.empty()) continue;
      throw UnsupportedError(fmt::format("node '{}' ({}) has no GGUF counterpart", node.name, node.kind));
    }
    int64_t heads = name.find("attn_q.") != std::string::npos ? c.heads
                    : name.find("attn_k.") != std::string::npos ? c.kv_heads : 0;
    GgufTensorData t{name, GgmlType::f32, {}, {}};
    if (node.kind == "Int4Linear") {
      bool q4_0 = o.prefer_q4_0 && symmetric_int4(node);
      t.type = q4_0 ? GgmlType::q4_0 : GgmlType::q4_1;
      t.shape = Shape{node.attrs.at("out_features").get<int64_t>(), node.attrs.at("in_features").get<int64_t>()};
      t.bytes = int4_blocks(node, q4_0);
      (q4_0 ? report.q4_0 : report.q4_1)++;
    } else if (node.kind == "Linear" || node.kind == "Embedding" || node.kind == "RMSNorm" ||
               node.kind == "DynamicQuantLinear") {
      const Tensor w = node.find_param("weight_scale") ? dequantize_rows(node) : node.param("weight").value;
      t.shape = w.shape();
      bool matrix = w.rank() == 2 && w.shape()[1] % 32 == 0;
      if (matrix && o.other_matrices == GgmlType::q8_0) {
        t.type = GgmlType::q8_0;
        t.bytes = q8_0_bytes(w);
        report.q8_0++;
      } else {
        t.bytes = f32_bytes(w);
        report.f32++;
      }
    } else {
      throw UnsupportedError(fmt::format("node '{}' ({}) does not export to GGUF", node.name, node.kind));
    }
    if (heads) t.bytes = permute_rows(t.bytes.data(), t.shape[0], t.bytes.size() / size_t(t.shape[0]), heads);
    tensors.push_back(std::move(t));
  }
  int file_type = report.q4_0 ? 2 : report.q4_1 ? 3 : report.q8_0 ? 7 : 0;  // llama.cpp's LLAMA_FTYPE_*
  meta.emplace_back("general.file_type", scalar(T::u32, file_type));
  write_gguf(path, meta, tensors);
  for (const auto& t : tensors) report.bytes += t.bytes.size();
  return report;
}

}  // namespace shrink
