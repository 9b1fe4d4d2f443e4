// The shrink binary: help and version, exit codes, one-line errors for bad input, JSON output.
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "io/gguf_builder.h"
#include "shrink/io/native_model.h"
#include "shrink/kernels/cpu.h"
#include "shrink/nn/builder.h"
#include "test_support.h"

namespace shrink {
namespace {

using testing::run_shrink;

size_t line_count(const std::string& text) { return size_t(std::count(text.begin(), text.end(), '\n')); }

TEST(Cli, HelpAndVersion) {
  auto result = run_shrink({"--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("shrink 0."), std::string::npos);
  result = run_shrink({"--help"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("inspect"), std::string::npos);
  EXPECT_NE(result.out.find("Exit codes"), std::string::npos);
  for (const char* command : {"inspect", "info", "bench", "train", "eval", "prune", "distill", "factorize", "quantize", "qat"}) {
    result = run_shrink({command, "--help"});
    EXPECT_EQ(result.exit_code, 0) << command;
    EXPECT_NE(result.out.find("Usage"), std::string::npos) << command;
  }
}

TEST(Cli, UsageErrorsExitWithTwoAndOneLine) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {}, {"bogus"}, {"inspect"}, {"inspect", "--bogus", "x"}, {"--threads", "-3", "info"}, {"bench"},
           {"bench", "everything"}}) {
    const auto result = run_shrink(args);
    EXPECT_EQ(result.exit_code, 2) << result.err;
    EXPECT_EQ(line_count(result.err), 1u) << result.err;
    EXPECT_TRUE(result.out.empty());
  }
  // Numeric checks say what they want in a few words (CLI11's own printed its 1.8e308 bound in full).
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--threads", "-3", "info"}, "--threads: must be at least 0, got -3"},
           {{"generate", "m.gguf", "--prompt", "x", "--max-tokens", "0"}, "--max-tokens: must be more than 0, got 0"},
           {{"generate", "m.gguf", "--prompt", "x", "--top-k", "lots"}, "--top-k: 'lots' is not a number"}}) {
    const auto refused = run_shrink(args);
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    EXPECT_NE(refused.err.find(message), std::string::npos) << refused.err;
    EXPECT_LT(refused.err.size(), 120u) << refused.err;
  }
  const auto result = run_shrink({"info"}, "SHRINK_ISA=pentium");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("SHRINK_ISA"), std::string::npos);
}

TEST(Cli, BadFilesExitWithOneAndOneLine) {
  testing::ScratchDir dir;
  std::ofstream(dir.file("garbage.gguf")) << "GGUF but not really a model file at all";
  std::ofstream(dir.file("text.safetensors")) << "plain text";
  const auto fixture = testing::read_bytes(testing::fixture_path("gguf/all_types.gguf"));
  testing::write_bytes(dir.file("cut.gguf"), std::vector<std::byte>(fixture.begin(), fixture.begin() + 300));
  for (const std::string& path : {dir.file("missing.gguf"), dir.file("garbage.gguf"), dir.file("text.safetensors"),
                                   dir.file("cut.gguf"), dir.file("garbage.gguf/inside")}) {
    const auto result = run_shrink({"inspect", path});
    EXPECT_EQ(result.exit_code, 1) << path << ": " << result.err;
    EXPECT_EQ(line_count(result.err), 1u) << result.err;
    EXPECT_EQ(result.err.rfind("shrink: error: ", 0), 0u) << result.err;
  }
  // The input is never modified.
  EXPECT_EQ(testing::read_bytes(dir.file("cut.gguf")).size(), 300u);
}

// --out naming the input (the same path, another spelling of it, or a link to it) is refused
// with exit 2 before any work, for every command that reads a model and writes one; the file is
// untouched.
TEST(Cli, OutputOverTheInputIsRefused) {
  testing::ScratchDir dir;
  const auto fixture = testing::read_bytes(testing::fixture_path("gguf/all_types.gguf"));
  testing::write_bytes(dir.file("model.gguf"), fixture);
  ASSERT_EQ(::symlink(dir.file("model.gguf").c_str(), dir.file("link.gguf").c_str()), 0);
  const std::string same = dir.file("model.gguf"), respelled = dir.path() + "/./model.gguf", link = dir.file("link.gguf");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"quantize", same, "--method", "rtn", "--out", same},
           {"quantize", link, "--method", "rtn", "--out", same},
           {"prune", same, "--sparsity", "0.5", "--out", respelled},
           {"factorize", same, "--energy", "0.9", "--out", same},
           {"export", same, "--out", link},
           {"qat", same, "--out", same},
           {"distill", "--teacher", same, "--arch", "mlp", "--out", link}}) {
    const auto result = run_shrink(args);
    EXPECT_EQ(result.exit_code, 2) << args[0] << ": " << result.err;
    EXPECT_NE(result.err.find("never writes over its input"), std::string::npos) << args[0] << ": " << result.err;
    EXPECT_EQ(line_count(result.err), 1u) << result.err;
  }
  EXPECT_EQ(testing::read_bytes(same), fixture);
}

// --out in a folder that does not exist, or naming a folder, is refused with exit 2 before any
// work (train had run its epochs and only then failed to save).
TEST(Cli, OutputInAMissingFolderIsRefusedBeforeAnyWork) {
  testing::ScratchDir dir;
  const std::string model = testing::fixture_path("gguf/all_types.gguf");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"train", "--arch", "mlp", "--epochs", "1", "--out", dir.path() + "/missing/model.shrink"},
           {"quantize", model, "--method", "rtn", "--out", dir.path() + "/missing/q.shrink"},
           {"export", model, "--out", dir.path() + "/missing/m.gguf"},
           {"prune", model, "--sparsity", "0.5", "--out", dir.path()}}) {
    const auto result = run_shrink(args);
    EXPECT_EQ(result.exit_code, 2) << args[0] << ": " << result.err;
    EXPECT_NE(result.err.find("--out"), std::string::npos) << args[0] << ": " << result.err;
    EXPECT_EQ(line_count(result.err), 1u) << result.err;  // nothing ran: no progress, no epoch lines
  }
  const auto missing = run_shrink({"train", "--arch", "mlp", "--epochs", "1", "--out", dir.path() + "/missing/model.shrink"});
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  const auto folder = run_shrink({"prune", model, "--sparsity", "0.5", "--out", dir.path()});
  EXPECT_NE(folder.err.find("is a folder"), std::string::npos) << folder.err;
}

TEST(Cli, InspectPrintsATableAndJson) {
  const std::string fixture = testing::fixture_path("gguf/all_types.gguf");
  auto result = run_shrink({"inspect", fixture});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("random.q6_k"), std::string::npos);
  EXPECT_NE(result.out.find("total: 15 tensors, 5,135 parameters"), std::string::npos) << result.out;
  result = run_shrink({"inspect", fixture, "--json"});
  ASSERT_EQ(result.exit_code, 0);
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["format"], "gguf");
  EXPECT_EQ(json["totals"]["params"], 5135);
  EXPECT_EQ(json["tensors"].size(), 15u);
  result = run_shrink({"inspect", fixture, "--brief"});
  EXPECT_EQ(result.out.find("random.q6_k"), std::string::npos);
}

// A GGUF's strings are bytes: one that is not UTF-8 (in a value and in an array) still inspects,
// as a table and as JSON (U+FFFD in its place); the JSON printer had thrown nlohmann's type_error
// and the command ended with exit 3 (found by fuzzing; `generate --json` with such a prompt too).
TEST(Cli, InspectShowsStringsThatAreNotUtf8) {
  testing::GgufBuilder b;
  b.header(0, 2).kv_string("general.name", "caf\xe9");
  b.string("tokenizer.ggml.tokens").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(2).string("ok").string("\xff\xfe");
  testing::ScratchDir dir;
  testing::write_bytes(dir.file("latin1.gguf"), b.bytes);
  auto result = run_shrink({"inspect", dir.file("latin1.gguf")});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  result = run_shrink({"inspect", dir.file("latin1.gguf"), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("caf\xef\xbf\xbd"), std::string::npos) << result.out;  // U+FFFD
  EXPECT_NO_THROW({
    const auto parsed = nlohmann::json::parse(result.out);  // GCC warns on a discarded parse, cast or not
    EXPECT_TRUE(parsed.is_object());
  });
}

TEST(Cli, InfoNamesTheChosenKernels) {
  const auto result = run_shrink({"--threads", "1", "info"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("gemm_f32"), std::string::npos);
  EXPECT_NE(result.out.find("threads            1"), std::string::npos) << result.out;
  const auto forced = run_shrink({"info"}, "SHRINK_ISA=ref");
  EXPECT_NE(forced.out.find("dequantize_q4_0        dequantize_q4_0__ref"), std::string::npos) << forced.out;
}

// An OPENBLAS_CORETYPE below what the CPU runs (a machine's environment may carry one set for
// another CPU) is overruled, so that the fp32 path gets OpenBLAS's fastest kernels here;
// SHRINK_OPENBLAS_CORETYPE forces a core type; one at the CPU's level is kept.
TEST(Cli, InfoOverrulesAnOpenBlasCoreTypeBelowTheCpu) {
  const Isa isa = detected_isa();
  if (isa < Isa::avx2) GTEST_SKIP() << "no AVX2: OpenBLAS's own choice stands";
  const std::string best = isa >= Isa::avx512 ? "core SkylakeX" : "core Haswell";
  const auto preset = run_shrink({"info"}, "OPENBLAS_CORETYPE=Prescott");
  ASSERT_EQ(preset.exit_code, 0) << preset.err;
  if (preset.out.find("openblas           not") != std::string::npos) GTEST_SKIP() << "OpenBLAS is not installed";
  EXPECT_NE(preset.out.find(best + " (OPENBLAS_CORETYPE set by shrink; the environment's Prescott"), std::string::npos)
      << preset.out;
  const auto forced = run_shrink({"info"}, "OPENBLAS_CORETYPE=Haswell SHRINK_OPENBLAS_CORETYPE=Prescott");
  EXPECT_NE(forced.out.find("core Prescott (OPENBLAS_CORETYPE from SHRINK_OPENBLAS_CORETYPE)"), std::string::npos)
      << forced.out;
  const auto kept = run_shrink({"info"}, "OPENBLAS_CORETYPE=" + best.substr(5));
  EXPECT_NE(kept.out.find(best + " (OPENBLAS_CORETYPE from the environment)"), std::string::npos) << kept.out;
}

// A quick benchmark run: every row is measured (positive time and rate) and compared to something.
TEST(Cli, BenchKernelsMeasuresEveryRow) {
  const auto result = run_shrink({"bench", "kernels", "--quick", "--json", "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_GT(json["read_bandwidth_bytes_per_second"].get<double>(), 1e8);
  ASSERT_GE(json["rows"].size(), 10u);
  bool activation_quantizer = false;
  for (const auto& row : json["rows"]) {
    EXPECT_GT(row["seconds"].get<double>(), 0.0) << row["kernel"];
    EXPECT_GT(row["rate"].get<double>(), 0.0) << row["kernel"];
    activation_quantizer |= row["kernel"] == "quantize activation rows to u8 (1 thread)";
  }
  EXPECT_TRUE(activation_quantizer);
}

// The bandwidth probe alone: one positive measurement, as text and as JSON.
TEST(Cli, BenchBandwidthMeasuresTheReadBandwidth) {
  const auto result = run_shrink({"--threads", "1", "bench", "bandwidth", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_GT(json["read_bandwidth_bytes_per_second"].get<double>(), 1e8);
  EXPECT_EQ(json["threads"].get<int>(), 1);
  const auto text = run_shrink({"bench", "bandwidth"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("read bandwidth "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(" GB/s"), std::string::npos) << text.out;
  // Another buffer size, rounded to whole 16 MB (at least 32 MB), and reported as used.
  const auto sized = run_shrink({"--threads", "1", "bench", "bandwidth", "--buffer-mb", "40", "--json"});
  ASSERT_EQ(sized.exit_code, 0) << sized.err;
  const auto sized_json = nlohmann::json::parse(sized.out);
  EXPECT_EQ(sized_json["buffer_bytes"].get<int64_t>(), int64_t(32) << 20);
  EXPECT_GT(sized_json["read_bandwidth_bytes_per_second"].get<double>(), 1e8);
  // 60000 MB: more than half of any machine this runs on (refused before anything is allocated).
  for (const char* bad : {"0", "-5", "many", "60000"}) {
    const auto refused = run_shrink({"bench", "bandwidth", "--buffer-mb", bad});
    EXPECT_EQ(refused.exit_code, 2) << bad << ": " << refused.err;
    EXPECT_EQ(line_count(refused.err), 1u) << refused.err;
  }
}

// Two models side by side: each measured at each batch, the second compared to the first; bad
// requests refused in one line.
TEST(Cli, BenchLatencyComparesModelsSideBySide) {
  testing::ScratchDir dir;
  for (const auto& [name, width] : std::vector<std::pair<std::string, int64_t>>{{"narrow", 8}, {"wide", 512}}) {
    nn::GraphBuilder b(1);
    int x = b.input("x", Shape{-1, 32});
    x = b.op("act", "ReLU", {b.linear("fc1", x, 32, width)});
    b.output(b.linear("fc2", x, width, 4));
    io::save_model(dir.file(name + ".shrink"), b.graph());
  }
  const std::string narrow = dir.file("narrow.shrink"), wide = dir.file("wide.shrink");
  const auto result = run_shrink({"--threads", "1", "bench", "latency", narrow, wide, "--batch", "1,8", "--rounds",
                                  "2", "--profile", "--json", "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  ASSERT_EQ(json["models"].size(), 2u);
  EXPECT_EQ(json["models"][1]["model"], wide);
  EXPECT_GT(json["models"][1]["file_bytes"].get<int64_t>(), json["models"][0]["file_bytes"].get<int64_t>());
  for (const auto& model : json["models"]) {
    ASSERT_EQ(model["batches"].size(), 2u);
    EXPECT_EQ(model["batches"][1]["batch"], 8);
    for (const auto& row : model["batches"]) {
      EXPECT_GT(row["median_seconds"].get<double>(), 0.0);
      EXPECT_GE(row["passes"].get<int64_t>(), 2);
    }
    EXPECT_TRUE(model["seconds_by_node_kind"].contains("Linear")) << model;
  }
  EXPECT_DOUBLE_EQ(json["models"][0]["batches"][0]["speedup_vs_first"].get<double>(), 1.0);
  const auto text = run_shrink({"bench", "latency", narrow, wide, "--batch", "2", "--rounds", "1"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("examples/s"), std::string::npos) << text.out;
  EXPECT_TRUE(text.out.find("x faster") != std::string::npos || text.out.find("x slower") != std::string::npos)
      << text.out;
  for (const auto& [args, code] : std::vector<std::pair<std::vector<std::string>, int>>{
           {{"bench", "latency"}, 2},
           {{"bench", "latency", narrow, "--batch", "0"}, 2},
           {{"bench", "latency", narrow, "--rounds", "0"}, 2},
           {{"bench", "kernels", narrow}, 2},
           {{"bench", "latency", dir.file("missing.shrink")}, 1},
           {{"bench", "latency", dir.file("garbage.shrink")}, 1}}) {
    if (args.back() == dir.file("garbage.shrink")) std::ofstream(args.back()) << "not a model";
    const auto refused = run_shrink(args);
    EXPECT_EQ(refused.exit_code, code) << args.back() << ": " << refused.err;
    EXPECT_EQ(line_count(refused.err), 1u) << refused.err;
    EXPECT_TRUE(refused.out.empty()) << refused.out;
  }
}

// A model no dataset can measure (no --data, none in its provenance) is quantized and saved
// without placeholder results: inspect shows neither an empty data line nor -1.
TEST(Cli, QuantizingWithoutADatasetRecordsNoPlaceholders) {
  testing::ScratchDir dir;
  nn::GraphBuilder b(2);
  int x = b.input("x", Shape{-1, 16});
  b.output(b.linear("fc", b.op("act", "ReLU", {b.linear("fc0", x, 16, 16)}), 16, 2));
  io::save_model(dir.file("m.shrink"), b.graph());
  const auto quantized = run_shrink({"quantize", dir.file("m.shrink"), "--method", "dynamic", "--out", dir.file("q.shrink")});
  ASSERT_EQ(quantized.exit_code, 0) << quantized.err;
  const auto shown = run_shrink({"inspect", dir.file("q.shrink")});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("made by            quantize"), std::string::npos) << shown.out;
  EXPECT_EQ(shown.out.find("\ndata "), std::string::npos) << shown.out;
  EXPECT_EQ(shown.out.find("\nresult "), std::string::npos) << shown.out;
  const io::LoadedModel loaded = io::load_model(dir.file("q.shrink"));
  EXPECT_TRUE(loaded.provenance["result"].empty()) << loaded.provenance.dump();
  EXPECT_FALSE(loaded.provenance["config"].contains("data")) << loaded.provenance.dump();
}

// Quantizing a model with nothing left to quantize is refused (exit 2, no file) instead of saving
// it again as "0 of N layers quantized, 0.00x smaller"; --embeddings belongs to --method dynamic.
TEST(Cli, DynamicQuantizationWithNothingToQuantizeIsRefused) {
  testing::ScratchDir dir;
  nn::GraphBuilder b(3);
  int x = b.input("x", Shape{-1, 16});
  b.output(b.linear("fc", x, 16, 4));
  io::save_model(dir.file("m.shrink"), b.graph());
  ASSERT_EQ(run_shrink({"quantize", dir.file("m.shrink"), "--method", "dynamic", "--out", dir.file("q.shrink")}).exit_code, 0);
  const auto again = run_shrink({"quantize", dir.file("q.shrink"), "--method", "dynamic", "--out", dir.file("qq.shrink")});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("no layer left to quantize"), std::string::npos) << again.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("qq.shrink")));
  const auto excluded =
      run_shrink({"quantize", dir.file("m.shrink"), "--method", "dynamic", "--exclude", "fc", "--out", dir.file("e.shrink")});
  EXPECT_EQ(excluded.exit_code, 2) << excluded.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("e.shrink")));
  const auto misplaced = run_shrink({"quantize", dir.file("m.shrink"), "--method", "static", "--embeddings", "--out",
                                     dir.file("s.shrink")});
  EXPECT_EQ(misplaced.exit_code, 2);
  EXPECT_NE(misplaced.err.find("--embeddings"), std::string::npos) << misplaced.err;
}

}  // namespace
}  // namespace shrink
