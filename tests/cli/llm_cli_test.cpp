// The language-model commands end to end on the real SmolLM2 (skipped when the asset is absent,
// unless SHRINK_REQUIRE_ASSETS=1): quantize (RTN, symmetric 4-bit g32) -> export as Q4_0 GGUF ->
// the PyPI gguf package reads back exactly the shrink model's weights (when python3 has gguf)
// -> the GGUF and the shrink file give the same perplexity; generate streams text; bad input
// exits non-zero with one line; prune and factorize (SVD-LLM) run on it.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>

#include "test_support.h"

namespace shrink {
namespace {

using testing::run_shrink;

double json_number(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\"");
  if (at == std::string::npos) return -1;
  return std::stod(json.substr(json.find(':', at) + 1));
}

// MiniLM (a Hugging Face folder) with --embeddings: the word table int8 per row too, the file
// under a third of the f32 one (the Linear layers alone leave it at 0.65), the sentence embeddings
// still within cosine 0.99 of the f32 model's; quantizing the result again is refused.
TEST(LlmCli, DynamicQuantizationOfEmbeddingTables) {
  const std::string model = testing::asset_path("minilm");
  if (!testing::asset_present(model + "/model.safetensors")) GTEST_SKIP() << "asset not fetched: " << model;
  const std::string dir = ::testing::TempDir(), quantized = dir + "/minilm8e.shrink", text = dir + "/sentences.txt";
  {
    std::ofstream out(text);
    for (int i = 0; i < 20; ++i)
      out << "Emma Woodhouse, handsome, clever, and rich, seemed to unite some of the best blessings of existence "
          << i << ". She had lived nearly twenty-one years in the world with very little to distress her.\n";
  }
  auto q = run_shrink({"quantize", model, "--method", "dynamic", "--embeddings", "--out", quantized, "--json"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(json_number(q.out, "quantized_layers"), 37);  // 36 Linear + the word table
  struct stat f32_file {}, int8_file {};
  ASSERT_EQ(stat((model + "/model.safetensors").c_str(), &f32_file), 0);
  ASSERT_EQ(stat(quantized.c_str(), &int8_file), 0);
  EXPECT_LT(3 * int8_file.st_size, f32_file.st_size);
  auto e = run_shrink({"eval", quantized, "--embeddings", text, "--reference", model, "--sentences", "20", "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_GT(json_number(e.out, "mean_cosine"), 0.99) << e.out;
  auto again = run_shrink({"quantize", quantized, "--method", "dynamic", "--embeddings", "--out", dir + "/again.shrink"});
  EXPECT_EQ(again.exit_code, 2) << again.out;
}

TEST(LlmCli, QuantizeExportEvalGenerate) {
  const std::string model = testing::asset_path("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!testing::asset_present(model)) GTEST_SKIP() << "asset not fetched: " << model;
  const std::string dir = ::testing::TempDir(), quantized = dir + "/smol_rtn4.shrink", gguf = dir + "/smol_rtn4.gguf";
  const std::string text = dir + "/short.txt";
  {
    std::ofstream out(text);
    for (int i = 0; i < 12; ++i)
      out << "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who, for his own amusement, never took "
             "up any book but the Baronetage; there he found occupation for an idle hour.\n";
  }
  auto q = run_shrink({"quantize", model, "--method", "rtn", "--bits", "4", "--group-size", "32", "--sym", "--out", quantized});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.out.find("210 layers as packed int4"), std::string::npos) << q.out;
  auto e = run_shrink({"export", quantized, "--out", gguf, "--q4-0"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NE(e.out.find("210 tensors Q4_0"), std::string::npos) << e.out;
  if (std::system("python3 -c 'import gguf' 2>/dev/null") == 0) {
    std::string check = "python3 " + std::string(SHRINK_FIXTURES_DIR) + "/../../tools/check_gguf_export.py " +
                        quantized + " " + gguf;
    EXPECT_EQ(std::system(check.c_str()), 0) << check;
  } else {
    std::printf("python3 has no gguf package: the independent read-back is skipped\n");
  }
  auto p1 = run_shrink({"eval", quantized, "--perplexity", text, "--ctx", "64", "--max-windows", "2", "--json"});
  auto p2 = run_shrink({"eval", gguf, "--perplexity", text, "--ctx", "64", "--max-windows", "2", "--json"});
  ASSERT_EQ(p1.exit_code, 0) << p1.err;
  ASSERT_EQ(p2.exit_code, 0) << p2.err;
  double a = json_number(p1.out, "perplexity"), b = json_number(p2.out, "perplexity");
  EXPECT_GT(a, 1.0);
  EXPECT_NEAR(a, b, 1e-3 * a);  // the same weights, read back from the GGUF
  auto g = run_shrink({"generate", gguf, "--prompt", "The capital of France is", "--max-tokens", "5", "--json"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_GT(json_number(g.out, "generated_tokens"), 0);
  // The key/value cache is f16 by default; --kv-cache f32 holds twice the bytes; other types are refused.
  auto g32 = run_shrink({"generate", gguf, "--prompt", "The capital of France is", "--max-tokens", "5", "--json",
                         "--kv-cache", "f32"});
  ASSERT_EQ(g32.exit_code, 0) << g32.err;
  EXPECT_GT(json_number(g.out, "kv_cache_bytes"), 0);
  EXPECT_EQ(json_number(g32.out, "kv_cache_bytes"), 2 * json_number(g.out, "kv_cache_bytes"));
  EXPECT_EQ(run_shrink({"generate", gguf, "--prompt", "x", "--kv-cache", "bf16"}).exit_code, 2);

  EXPECT_EQ(run_shrink({"eval", quantized, "--perplexity", dir + "/missing.txt"}).exit_code, 1);
  const auto past_context = run_shrink({"eval", gguf, "--perplexity", text, "--ctx", "8193"});  // SmolLM2: 8,192
  EXPECT_EQ(past_context.exit_code, 2);
  EXPECT_NE(past_context.err.find("exceeds the model's context of 8192"), std::string::npos) << past_context.err;
  EXPECT_EQ(run_shrink({"export", quantized, "--out", dir + "/x.bin"}).exit_code, 2);
  EXPECT_EQ(run_shrink({"quantize", model, "--method", "gptq", "--out", dir + "/g.shrink"}).exit_code, 2);  // no --calib
  EXPECT_EQ(run_shrink({"quantize", model, "--method", "awq", "--out", dir + "/a.shrink"}).exit_code, 2);
  EXPECT_EQ(run_shrink({"quantize", model, "--method", "rtn", "--keep-salient", "0.01", "--out", dir + "/s.shrink"}).exit_code, 2);
  EXPECT_EQ(run_shrink({"prune", model, "--method", "sparsegpt", "--out", dir + "/p.shrink"}).exit_code, 2);  // no --calib
  EXPECT_EQ(run_shrink({"prune", model, "--heads", "0.2", "--out", dir + "/h.shrink"}).exit_code, 2);  // < 1 of 3 groups
  // A quantized model has no f32 Linear layers left: pruning or quantizing it again is refused (both
  // used to save an unchanged copy, --sparsity 1.5 unchecked); adding an int8 head still works.
  for (const char* sparsity : {"0.5", "1.5"}) {
    auto refused = run_shrink({"prune", quantized, "--sparsity", sparsity, "--out", dir + "/pq.shrink"});
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    EXPECT_NE(refused.err.find(sparsity[0] == '1' ? "sparsity must be in [0, 1)" : "no f32 Linear layers"), std::string::npos)
        << refused.err;
  }
  auto again = run_shrink({"quantize", quantized, "--method", "rtn", "--out", dir + "/qq.shrink"});
  EXPECT_EQ(again.exit_code, 2) << again.err;
  EXPECT_NE(again.err.find("no f32 Linear layers left to quantize"), std::string::npos) << again.err;
  EXPECT_EQ(run_shrink({"quantize", quantized, "--method", "rtn", "--int8-head", "--out", dir + "/qh.shrink"}).exit_code, 0);
  auto pruned = run_shrink({"prune", model, "--method", "magnitude", "--pattern", "2:4", "--out", dir + "/p.shrink", "--json"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_GE(json_number(pruned.out, "sparsity"), 0.5);  // weights that were already zero count too
  EXPECT_LT(json_number(pruned.out, "sparsity"), 0.501);
  EXPECT_EQ(run_shrink({"factorize", model, "--method", "svd-llm", "--ratio", "0.5", "--out", dir + "/f.shrink"}).exit_code,
            2);  // no --calib
  EXPECT_EQ(run_shrink({"factorize", model, "--method", "qr", "--ratio", "0.5", "--out", dir + "/f.shrink"}).exit_code, 2);
  // SVD-LLM on block 0's attention only (the rest excluded, to keep the test short), then scored.
  auto factored = run_shrink({"factorize", model, "--method", "svd-llm", "--ratio", "0.5", "--calib", text, "--samples",
                              "2", "--seq-len", "32", "--exclude", "*mlp*", "*layers.[1-9]*", "--out",
                              dir + "/f.shrink", "--json"});
  ASSERT_EQ(factored.exit_code, 0) << factored.err;
  EXPECT_EQ(json_number(factored.out, "calibration_tokens"), 64);
  EXPECT_NEAR(json_number(factored.out, "block_linear_params_after") /
                  json_number(factored.out, "block_linear_params_before"), 0.5, 0.01);
  auto pf = run_shrink({"eval", dir + "/f.shrink", "--perplexity", text, "--ctx", "64", "--max-windows", "2", "--json"});
  ASSERT_EQ(pf.exit_code, 0) << pf.err;
  EXPECT_GT(json_number(pf.out, "perplexity"), 1.0);
  // MLP neurons ranked by their activations on calibration text.
  auto neurons = run_shrink({"prune", model, "--channels", "0.1", "--calib", text, "--samples", "2", "--seq-len", "32",
                             "--out", dir + "/n.shrink", "--json"});
  ASSERT_EQ(neurons.exit_code, 0) << neurons.err;
  EXPECT_NE(neurons.out.find("\"activations\""), std::string::npos) << neurons.out;
  EXPECT_EQ(json_number(neurons.out, "calibration_tokens"), 64);
  EXPECT_LT(json_number(neurons.out, "params_after"), json_number(neurons.out, "params_before"));
  auto salient = run_shrink({"quantize", model, "--method", "gptq", "--keep-salient", "0.01", "--calib", text, "--out",
                             dir + "/s.shrink"});
  EXPECT_EQ(salient.exit_code, 2);
  EXPECT_NE(salient.err.find("--method rtn"), std::string::npos) << salient.err;
  EXPECT_NE(run_shrink({"generate", text, "--prompt", "x"}).exit_code, 0);  // not a model
}

}  // namespace
}  // namespace shrink
