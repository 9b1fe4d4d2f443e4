// shrink export LM --out FILE.gguf: a language model (GGUF, Hugging Face folder, or a shrink file
// from `shrink quantize --method rtn|gptq`) as a GGUF file llama.cpp loads.
#include <fmt/format.h>

#include "cli/commands.h"
#include "shrink/core/error.h"
#include "shrink/io/gguf_writer.h"
#include "shrink/io/llm_import.h"

namespace shrink::cli {
namespace {

struct ExportOptions {
  std::string model, out, other = "f32";
  bool q4_0 = false;
};

void run_export(const ExportOptions& o) {
  if (o.out.size() < 5 || o.out.compare(o.out.size() - 5, 5, ".gguf") != 0)
    throw UsageError("the output must be a .gguf file", "--out");
  io::LanguageModel lm = io::load_language_model(o.model);
  GgufExportOptions options;
  options.prefer_q4_0 = o.q4_0;
  options.other_matrices = o.other == "q8_0" ? GgmlType::q8_0 : GgmlType::f32;
  GgufExportReport r = export_llama_gguf(lm, o.out, options);
  fmt::print("wrote {}: {} tensors Q4_0, {} Q4_1, {} Q8_0, {} F32 ({} of tensor data)\n", o.out, r.q4_0, r.q4_1, r.q8_0,
             r.f32, human_bytes(r.bytes));
}

}  // namespace

void setup_export(CLI::App& sub) {
  auto o = std::make_shared<ExportOptions>();
  sub.add_option("MODEL", o->model, "A language model (GGUF, Hugging Face folder, or a quantized shrink file)")->required();
  sub.add_option("--out", o->out, "The GGUF file to write")->required();
  sub.add_flag("--q4-0", o->q4_0, "Symmetric 4-bit layers as Q4_0 (default Q4_1, which every 4-bit layer fits)");
  sub.add_option("--other", o->other, "Embedding and non-4-bit matrices: f32 or q8_0")
      ->check(CLI::IsMember({"f32", "q8_0"}));
  sub.callback([o] { run_export(*o); });
}

}  // namespace shrink::cli
