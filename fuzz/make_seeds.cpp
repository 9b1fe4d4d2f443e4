// Writes the seed inputs of the fuzz targets into OUT/<target>/ (and the tokenizers the encode
// target reads into OUT/tokenizers/): a tiny Llama with a byte-level BPE tokenizer as a shrink
// file, f32 and RTN int4; the same exported as GGUF (f32, Q4_1, Q4_0 + Q8_0); the GGUF and
// safetensors test fixtures; the f32 model as a Hugging Face folder with Llama and BERT configs;
// Hugging Face tokenizer.json files (byte-level BPE, WordPiece); a WordPiece tokenizer; an IDX
// file; SmolLM2's tokenizer when its GGUF is in the asset cache; dictionaries for the JSON targets;
// a small ONNX file (and Silero VAD's from the cache); two WAV files.
//   fuzz_make_seeds OUT FIXTURES_DIR
#include <algorithm>
#include <tuple>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "shrink/compress/llm_quantize.h"
#include "shrink/core/rng.h"
#include "shrink/io/datasets.h"
#include "shrink/io/gguf.h"
#include "shrink/io/gguf_writer.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/safetensors.h"
#include "shrink/io/text_tokenizer.h"
#include "../tests/io/onnx_builder.h"

namespace fs = std::filesystem;
using namespace shrink;

namespace {

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// GPT-2's byte alphabet as UTF-8: printable Latin-1 bytes stand for themselves, the others, in
// order, for the code points 256, 257, ...
std::string byte_token(int byte) {
  int code_point = byte, others = 0;
  const auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  };
  if (!printable(byte)) {
    for (int b = 0; b < byte; ++b) others += !printable(b);
    code_point = 256 + others;
  }
  std::string out;
  if (code_point < 0x80) out += char(code_point);
  else out += char(0xc0 | (code_point >> 6)), out += char(0x80 | (code_point & 0x3f));
  return out;
}

std::unique_ptr<TextTokenizer> byte_bpe() {
  ByteLevelBpeSpec spec;
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(byte_token(b));
  const std::string space = byte_token(' ');
  spec.merges = {"h e", space + " t", "l l", space + "t he"};
  for (const std::string& t : {std::string("he"), space + "t", std::string("ll"), space + "the"}) spec.tokens.push_back(t);
  spec.tokens.push_back("<|im_start|>");
  spec.special.assign(spec.tokens.size(), false);
  spec.special.back() = true;
  auto tokenizer = make_byte_level_bpe(spec);
  tokenizer->eos = int32_t(spec.tokens.size() - 1);
  return tokenizer;
}

io::LanguageModel tiny_llama(std::shared_ptr<const TextTokenizer> tokenizer) {
  io::LmConfig c;
  c.vocabulary = tokenizer->vocabulary_size(), c.dim = 64, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.hidden = 96,
  c.context = 64;
  Rng rng(7);
  io::LanguageModel lm;
  lm.config = c;
  lm.graph = io::build_llama(c, [&](const std::string& name, const Shape& shape) {
    Tensor t = Tensor::uninitialized(shape, DType::f32);
    const bool norm = name.find("norm") != std::string::npos;
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = norm ? 1.f : 0.15f * rng.normal();
    return t;
  });
  lm.tokenizer = std::move(tokenizer);
  return lm;
}

// The byte-level BPE as Hugging Face's tokenizer.json lays it out (vocabulary, merges, and its special
// tokens as added tokens).
nlohmann::json hf_tokenizer_json(const TextTokenizer& tokenizer) {
  const nlohmann::json stored = tokenizer.to_json();
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  const auto& tokens = stored.at("tokens");
  const std::vector<size_t> special = stored.at("special").get<std::vector<size_t>>();
  for (size_t id = 0; id < tokens.size(); ++id) {
    const std::string token = tokens[id].get<std::string>();
    if (std::find(special.begin(), special.end(), id) != special.end())
      added.push_back({{"id", id}, {"content", token}, {"special", true}});
    else
      vocab[token] = id;
  }
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", stored.at("merges")}}},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"added_tokens", added}};
}

// Every key and string value in a JSON document.
void collect_strings(const nlohmann::json& j, std::set<std::string>& words) {
  if (j.is_string()) words.insert(j.get<std::string>());
  if (j.is_object())
    for (const auto& [key, value] : j.items()) words.insert(key), collect_strings(value, words);
  if (j.is_array())
    for (const auto& value : j) collect_strings(value, words);
}

// A libFuzzer dictionary: one quoted string per line ("\"text\"" is its syntax for a quote).
void write_dictionary(const fs::path& path, const std::set<std::string>& words) {
  std::ofstream dict(path);
  for (const std::string& w : words) dict << nlohmann::json(w).dump() << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fuzz_make_seeds OUT FIXTURES_DIR\n");
    return 2;
  }
  const fs::path out = argv[1], fixtures = argv[2];
  for (const char* target :
       {"gguf", "safetensors", "native_model", "graph", "inspect", "hf_config", "hf_folder", "hf_tokenizer",
        "tokenizer_json", "encode", "idx", "tokenizers", "onnx", "wav"})
    fs::create_directories(out / target);

  std::shared_ptr<const TextTokenizer> bpe = byte_bpe();
  WordPieceSpec wp;
  wp.tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "##ing", "##s", "caf", "##e", ",", "!"};
  auto wordpiece = make_wordpiece(wp);
  write_text(out / "tokenizer_json" / "bpe.json", bpe->to_json().dump());
  write_text(out / "tokenizer_json" / "wordpiece.json", wordpiece->to_json().dump());
  write_text(out / "tokenizers" / "bpe.json", bpe->to_json().dump());
  write_text(out / "tokenizers" / "wordpiece.json", wordpiece->to_json().dump());
  const fs::path smol = fs::path(asset_cache_dir()) / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (fs::exists(smol))
    write_text(out / "tokenizers" / "smollm2.json", tokenizer_from_gguf(GgufFile::open(smol.string()))->to_json().dump());
  write_text(out / "encode" / "text.txt", "Hello, world! It's 2026: caf\xc3\xa9 <|im_start|>assistant\n  123456 \xf0\x9f\x98\x80");

  io::LanguageModel lm = tiny_llama(bpe);
  io::save_language_model((out / "native_model" / "tiny_f32.shrink").string(), lm, nlohmann::json::object());
  export_llama_gguf(lm, (out / "gguf" / "tiny_f32.gguf").string());
  compress::LlmQuantizeOptions rtn;
  rtn.method = "rtn", rtn.weights.group_size = 32, rtn.quiet = true, rtn.exclude = {};
  compress::quantize_language_model(lm, {}, rtn);
  io::save_language_model((out / "native_model" / "tiny_rtn4.shrink").string(), lm, nlohmann::json::object());
  export_llama_gguf(lm, (out / "gguf" / "tiny_q4_1.gguf").string());
  GgufExportOptions q4_0;
  q4_0.prefer_q4_0 = true, q4_0.other_matrices = GgmlType::q8_0;
  export_llama_gguf(lm, (out / "gguf" / "tiny_q4_0_q8_0.gguf").string(), q4_0);
  fs::copy_file(fixtures / "gguf" / "all_types.gguf", out / "gguf" / "all_types.gguf", fs::copy_options::overwrite_existing);
  // The graph target: the two models' graphs as inputs, and a dictionary of every string in them.
  std::set<std::string> words;
  for (const char* model : {"tiny_f32", "tiny_rtn4"}) {
    const SafetensorsFile file = SafetensorsFile::open((out / "native_model" / (std::string(model) + ".shrink")).string());
    for (const auto& [key, value] : file.metadata())
      if (key == "shrink.graph") {
        write_text(out / "graph" / (std::string(model) + ".json"), value);
        collect_strings(nlohmann::json::parse(value), words);
      }
  }
  write_dictionary(out / "graph.dict", words);

  // The hf_config target: the f32 model as a Hugging Face folder (hf_folder: weights in bf16 under
  // their Hugging Face names, a tokenizer.json), its config.json as the seed, and a BERT config.
  {
    io::LanguageModel f32 = tiny_llama(bpe);
    std::vector<NamedTensor> tensors;
    for (const auto& [name, p] : f32.graph.named_params())
      if (name != "lm_head.weight") tensors.push_back({name, p->value.to(DType::bf16)});
    save_safetensors((out / "hf_folder" / "model.safetensors").string(), tensors);
    write_text(out / "hf_folder" / "tokenizer.json", hf_tokenizer_json(*bpe).dump());
    // The hf_tokenizer target: that tokenizer.json and a WordPiece one, with their keys as a dictionary.
    nlohmann::json wordpiece_vocab = nlohmann::json::object();
    for (size_t id = 0; id < wp.tokens.size(); ++id) wordpiece_vocab[wp.tokens[id]] = id;
    const nlohmann::json hf_wordpiece = {
        {"model", {{"type", "WordPiece"}, {"vocab", wordpiece_vocab}, {"continuing_subword_prefix", "##"},
                   {"max_input_chars_per_word", 100}, {"unk_token", "[UNK]"}}},
        {"normalizer", {{"type", "BertNormalizer"}, {"lowercase", true}}}};
    write_text(out / "hf_tokenizer" / "bpe.json", hf_tokenizer_json(*bpe).dump());
    write_text(out / "hf_tokenizer" / "wordpiece.json", hf_wordpiece.dump());
    std::set<std::string> tokenizer_keys = {"added_tokens", "id", "content", "special", "individual_digits", "merges"};
    collect_strings(hf_wordpiece, tokenizer_keys);
    write_dictionary(out / "hf_tokenizer.dict", tokenizer_keys);
    const io::LmConfig& c = f32.config;
    write_text(out / "hf_config" / "llama.json",
               nlohmann::json{{"model_type", "llama"}, {"vocab_size", c.vocabulary}, {"hidden_size", c.dim},
                              {"num_hidden_layers", c.layers}, {"num_attention_heads", c.heads},
                              {"num_key_value_heads", c.kv_heads}, {"intermediate_size", c.hidden},
                              {"max_position_embeddings", c.context}, {"rope_theta", 10000.0},
                              {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", true}}
                   .dump(1));
    const nlohmann::json bert = {{"model_type", "bert"}, {"vocab_size", c.vocabulary}, {"hidden_size", c.dim},
                                 {"num_hidden_layers", c.layers}, {"num_attention_heads", c.heads},
                                 {"intermediate_size", c.hidden}, {"max_position_embeddings", c.context},
                                 {"hidden_act", "gelu"}, {"position_embedding_type", "absolute"},
                                 {"layer_norm_eps", 1e-12}};
    write_text(out / "hf_config" / "bert.json", bert.dump(1));
    std::set<std::string> keys = {"mistral", "num_key_value_heads", "rope_theta", "rms_norm_eps", "tie_word_embeddings"};
    collect_strings(bert, keys);
    write_dictionary(out / "hf_config.dict", keys);
  }
  Tensor a = Tensor::empty({4, 3}, DType::f32), b = Tensor::empty({7}, DType::bf16);
  save_safetensors((out / "safetensors" / "two.safetensors").string(), {{"layer.weight", a}, {"layer.bias", b}},
                   {{"format", "pt"}});
  // IDX: magic 0 0 type(0x08 = u8) rank(3), dims 2 x 3 x 3 big-endian, then 18 bytes.
  std::string idx = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3};
  for (int i = 0; i < 18; ++i) idx += char(i * 13);
  write_text(out / "idx" / "u8.idx", idx);
  // ONNX: the reader tests' sample (every field path), and Silero VAD when it is in the asset cache.
  {
    const auto onnx = testing::sample_onnx_model();
    std::ofstream(out / "onnx" / "sample.onnx", std::ios::binary)
        .write(reinterpret_cast<const char*>(onnx.data()), std::streamsize(onnx.size()));
    const fs::path silero = fs::path(asset_cache_dir()) / "silero-vad" / "silero_vad.onnx";
    if (fs::exists(silero)) fs::copy_file(silero, out / "onnx" / "silero_vad.onnx", fs::copy_options::overwrite_existing);
  }
  // WAV: 16-bit stereo at 44.1 kHz with a LIST chunk, and 32-bit float mono at 48 kHz.
  for (const auto& [name, format, channels, bits, rate] :
       {std::tuple{"s16_stereo.wav", 1, 2, 16, 44100}, std::tuple{"f32_mono.wav", 3, 1, 32, 48000}}) {
    std::string body;
    for (int i = 0; i < 64 * channels * bits / 8; ++i) body += char(i * 37);
    auto u16 = [](int v) { return std::string{char(v & 0xff), char(v >> 8 & 0xff)}; };
    auto u32 = [&](uint32_t v) { return u16(int(v & 0xffff)) + u16(int(v >> 16)); };
    std::string fmt = u16(format) + u16(channels) + u32(uint32_t(rate)) + u32(uint32_t(rate * channels * bits / 8)) +
                      u16(channels * bits / 8) + u16(bits);
    std::string chunks = "fmt " + u32(16) + fmt + "LIST" + u32(3) + std::string("abc\0", 4) + "data" +
                         u32(uint32_t(body.size())) + body;
    write_text(out / "wav" / name, "RIFF" + u32(uint32_t(chunks.size() + 4)) + "WAVE" + chunks);
  }
  // The inspect target: the shrink files and the safetensors seed.
  for (const fs::path& seed : {out / "native_model" / "tiny_f32.shrink", out / "native_model" / "tiny_rtn4.shrink",
                               out / "safetensors" / "two.safetensors"})
    fs::copy_file(seed, out / "inspect" / seed.filename(), fs::copy_options::overwrite_existing);
  std::printf("seeds written under %s\n", out.c_str());
  return 0;
}
