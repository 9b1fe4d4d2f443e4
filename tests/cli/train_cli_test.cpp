// shrink train / eval / inspect on small synthetic datasets written in the real formats (so no
// asset is needed): the saved model reloads and evaluates to what training reported, bad options
// exit with 2, and Ctrl-C leaves the last checkpoint intact.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "shrink/core/rng.h"
#include "test_support.h"

namespace shrink {
namespace {

using testing::run_shrink;

void write_idx(const std::string& path, const std::vector<int>& dims, const std::vector<uint8_t>& data) {
  std::ofstream f(path, std::ios::binary);
  const unsigned char magic[4] = {0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  f.write(reinterpret_cast<const char*>(magic), 4);
  for (int d : dims) {
    const unsigned char be[4] = {static_cast<unsigned char>(d >> 24), static_cast<unsigned char>(d >> 16),
                                 static_cast<unsigned char>(d >> 8), static_cast<unsigned char>(d)};
    f.write(reinterpret_cast<const char*>(be), 4);
  }
  f.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
}

// Class k: a bright horizontal bar at row 2k+4 on noise (learnable in a few steps).
void write_images(const std::string& folder, const std::string& split, int count) {
  Rng rng(split == "train" ? 1 : 2);
  std::vector<uint8_t> images(static_cast<size_t>(count) * 784), labels(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    labels[size_t(i)] = uint8_t(i % 10);
    for (int p = 0; p < 784; ++p) images[size_t(i) * 784 + size_t(p)] = uint8_t(rng.below(60));
    for (int x = 0; x < 28; ++x) images[size_t(i) * 784 + size_t((2 * (i % 10) + 4) * 28 + x)] = 250;
  }
  write_idx(folder + "/" + split + "-images-idx3-ubyte.gz", {count, 28, 28}, images);
  write_idx(folder + "/" + split + "-labels-idx1-ubyte.gz", {count}, labels);
}

void write_novels(const std::string& folder) {
  const std::string text = "It is a truth universally acknowledged, that a single man in possession of a good "
                           "fortune, must be in want of a wife. ";
  for (const char* novel : {"sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"}) {
    std::ofstream f(folder + "/" + novel + ".txt");
    for (int i = 0; i < 20; ++i) f << text;
  }
}

TEST(TrainCli, TrainsSavesAndEvaluatesTheSameAccuracy) {
  testing::ScratchDir dir;
  write_images(dir.path(), "train", 600);
  write_images(dir.path(), "t10k", 200);
  std::string model = dir.file("mlp.safetensors");
  auto trained = run_shrink({"train", "--arch", "mlp", "--data-dir", dir.path(), "--epochs", "2", "--batch-size", "50",
                             "--lr", "0.003", "--out", model, "--json"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("epoch 2/2"), std::string::npos) << "progress goes to stderr";
  auto report = nlohmann::json::parse(trained.out);
  EXPECT_GT(report["value"].get<double>(), 0.9);
  auto evaluated = run_shrink({"eval", model, "--data-dir", dir.path(), "--json"});
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  auto again = nlohmann::json::parse(evaluated.out);
  EXPECT_DOUBLE_EQ(again["accuracy"].get<double>(), report["value"].get<double>());
  EXPECT_NEAR(again["loss"].get<double>(), report["loss"].get<double>(), 1e-9);
  auto inspected = run_shrink({"inspect", model});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_NE(inspected.out.find("shrink.graph"), std::string::npos) << inspected.out;
  EXPECT_NE(inspected.out.find("fc1.weight"), std::string::npos);
}

TEST(TrainCli, LanguageModelsReportPerplexityBelowTheUnigramBaseline) {
  testing::ScratchDir dir;
  write_novels(dir.path());
  for (const char* arch : {"lstm-lm", "gpt"}) {
    SCOPED_TRACE(arch);
    std::string model = dir.file(std::string(arch) + ".safetensors");
    auto trained = run_shrink({"train", "--arch", arch, "--data-dir", dir.path(), "--epochs", "3", "--batch-size", "8",
                               "--context", "32", "--width", "32", "--layers", "1", "--lr", "0.01", "--out", model});
    ASSERT_EQ(trained.exit_code, 0) << trained.err;
    auto evaluated = run_shrink({"eval", model, "--data-dir", dir.path(), "--json"});
    ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
    auto r = nlohmann::json::parse(evaluated.out);
    EXPECT_LT(r["perplexity"].get<double>(), 0.8 * r["unigram_perplexity"].get<double>()) << evaluated.out;
  }
}

TEST(TrainCli, BadOptionsAndDataExitCleanly) {
  testing::ScratchDir dir;
  auto r = run_shrink({"train", "--arch", "resnet152", "--out", dir.file("x")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_shrink({"train", "--arch", "cnn", "--data", "austen", "--out", dir.file("x")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_shrink({"train", "--arch", "mlp", "--data-dir", dir.path(), "--out", dir.file("x")});
  EXPECT_EQ(r.exit_code, 1) << r.err;  // no dataset there
  EXPECT_NE(r.err.find("fetch_assets"), std::string::npos) << r.err;
  EXPECT_TRUE(dir.list().empty()) << "nothing half-written";
  std::ofstream(dir.file("not-a-model.safetensors")) << "junk";
  r = run_shrink({"eval", dir.file("not-a-model.safetensors")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
}

TEST(TrainCli, CompressionCommandsWorkAndRefuseBadSettings) {
  testing::ScratchDir dir;
  write_images(dir.path(), "train", 400);
  write_images(dir.path(), "t10k", 100);
  std::string model = dir.file("mlp.safetensors");
  ASSERT_EQ(run_shrink({"train", "--arch", "mlp", "--data-dir", dir.path(), "--epochs", "1", "--out", model, "--quiet"}).exit_code, 0);
  auto pruned = run_shrink({"prune", model, "--data-dir", dir.path(), "--sparsity", "0.8", "--global", "--out",
                            dir.file("p.safetensors"), "--json"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_NEAR(nlohmann::json::parse(pruned.out)["sparsity"].get<double>(), 0.8, 1e-3);
  EXPECT_LT(testing::read_bytes(dir.file("p.safetensors")).size(), testing::read_bytes(model).size() / 2);
  auto factored = run_shrink({"factorize", model, "--data-dir", dir.path(), "--rank", "16", "--out", dir.file("f.safetensors")});
  ASSERT_EQ(factored.exit_code, 0) << factored.err;
  EXPECT_NE(factored.out.find("left alone"), std::string::npos) << "the 10x256 head has no rank-16 saving";
  auto distilled = run_shrink({"distill", "--teacher", model, "--arch", "mlp", "--width", "32", "--data-dir", dir.path(),
                               "--epochs", "1", "--out", dir.file("d.safetensors"), "--quiet"});
  EXPECT_EQ(distilled.exit_code, 0) << distilled.err;
  // The hidden-state term (32-wide student, 256-wide teacher: a learned projection) with the
  // teacher's outputs kept on disk: the second run reads them instead of running the teacher.
  std::vector<std::string> hinted = {"distill", "--teacher", model, "--arch", "mlp", "--width", "32", "--data-dir",
                                     dir.path(), "--epochs", "1", "--hint-weight", "0.5", "--teacher-cache",
                                     dir.file("teacher.cache"), "--out", dir.file("h.safetensors")};
  auto first = run_shrink(hinted);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto second = run_shrink(hinted);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find("teacher outputs for 400 examples read from"), std::string::npos) << second.err;
  auto hinted_eval = run_shrink({"eval", dir.file("h.safetensors"), "--data-dir", dir.path(), "--json"});
  ASSERT_EQ(hinted_eval.exit_code, 0) << hinted_eval.err;
  auto info = run_shrink({"inspect", dir.file("h.safetensors")});
  EXPECT_EQ(info.out.find("distill.projection"), std::string::npos) << "the projection is not saved";
  // Not a cache file: refused rather than overwritten (it may be something the user needs).
  std::ofstream(dir.file("teacher.cache"), std::ios::trunc) << "my notes";
  auto damaged = run_shrink(hinted);
  EXPECT_EQ(damaged.exit_code, 1) << damaged.err;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"distill", "--teacher", model, "--arch", "mlp", "--data-dir", dir.path(), "--hint-student", "nope",
            "--hint-weight", "1", "--out", dir.file("x")},
           {"distill", "--teacher", model, "--arch", "mlp", "--data-dir", dir.path(), "--no-cache", "--teacher-cache",
            dir.file("c"), "--out", dir.file("x")}}) {
    auto r = run_shrink(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
  }
  auto quantized = run_shrink({"quantize", model, "--method", "dynamic", "--data-dir", dir.path(), "--out",
                               dir.file("q.safetensors"), "--json"});
  ASSERT_EQ(quantized.exit_code, 0) << quantized.err;
  auto q = nlohmann::json::parse(quantized.out);
  EXPECT_NEAR(q["after"].get<double>(), q["before"].get<double>(), 0.03) << quantized.out;
  EXPECT_GT(q["quantized_layer_bytes_before"].get<double>(), 3.5 * q["quantized_layer_bytes_after"].get<double>());
  auto reloaded = run_shrink({"eval", dir.file("q.safetensors"), "--data-dir", dir.path(), "--json"});
  ASSERT_EQ(reloaded.exit_code, 0) << reloaded.err;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(reloaded.out)["accuracy"].get<double>(), q["after"].get<double>());
  auto static_q = run_shrink({"quantize", model, "--method", "static", "--calib-samples", "200", "--max-drop", "0.02",
                              "--save-calibration", "--data-dir", dir.path(), "--out", dir.file("s.safetensors"),
                              "--json"});
  ASSERT_EQ(static_q.exit_code, 0) << static_q.err;
  auto s = nlohmann::json::parse(static_q.out);
  EXPECT_NEAR(s["after"].get<double>(), s["before"].get<double>(), 0.05) << static_q.out;
  EXPECT_EQ(s["layers"][0]["status"], "QuantLinear") << static_q.out;
  EXPECT_TRUE(s["layers"][0].contains("sqnr_db")) << static_q.out;
  // Converting again from the observers that file stores gives the same model without calibrating.
  auto recalled = run_shrink({"quantize", model, "--method", "static", "--calibration-from", dir.file("s.safetensors"),
                              "--max-drop", "0.02", "--data-dir", dir.path(), "--out", dir.file("s2.safetensors"), "--json"});
  ASSERT_EQ(recalled.exit_code, 0) << recalled.err;
  EXPECT_EQ(nlohmann::json::parse(recalled.out)["after"], s["after"]) << recalled.out;
  // Without --save-calibration the file holds none (the histograms would outweigh the int8 weights).
  auto plain = run_shrink({"quantize", model, "--method", "static", "--calib-samples", "200", "--data-dir", dir.path(),
                           "--out", dir.file("p.safetensors")});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_LT(std::filesystem::file_size(dir.file("p.safetensors")), std::filesystem::file_size(dir.file("s.safetensors")));
  for (const std::string& source : {model, dir.file("p.safetensors")}) {
    auto uncalibrated = run_shrink({"quantize", model, "--method", "static", "--calibration-from", source, "--data-dir",
                                    dir.path(), "--out", dir.file("x")});
    EXPECT_EQ(uncalibrated.exit_code, 2) << uncalibrated.err;
    EXPECT_NE(uncalibrated.err.find("holds no calibration"), std::string::npos) << uncalibrated.err;
  }
  auto qat = run_shrink({"qat", model, "--epochs", "1", "--max-steps-per-epoch", "5", "--quiet", "--data-dir", dir.path(),
                         "--out", dir.file("qat.safetensors"), "--json"});
  ASSERT_EQ(qat.exit_code, 0) << qat.err;
  auto a = nlohmann::json::parse(qat.out);
  EXPECT_GE(a["top1_agreement"].get<double>(), 0.99) << qat.out;
  EXPECT_NEAR(a["int8"].get<double>(), a["fake_quantized"].get<double>(), 0.02) << qat.out;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"prune", model, "--sparsity", "1.5", "--out", dir.file("x")},
           {"prune", model, "--pattern", "4:4", "--out", dir.file("x")},
           {"prune", model, "--pattern", "two:four", "--out", dir.file("x")},
           {"factorize", model, "--out", dir.file("x")},
           {"factorize", model, "--rank", "100000", "--out", dir.file("x")},
           {"factorize", model, "--ratio", "0.5", "--energy", "0.9", "--out", dir.file("x")},
           {"quantize", model, "--method", "dynamic", "--layers", "conv*", "--out", dir.file("x")},
           {"quantize", model, "--method", "fp3", "--out", dir.file("x")},
           {"quantize", model, "--method", "static", "--conv", "--out", dir.file("x")},
           {"quantize", model, "--method", "static", "--observer", "guess", "--out", dir.file("x")},
           {"qat", model, "--weight-bits", "9", "--out", dir.file("x")},
           // Nothing left to do in a quantized model (each used to save an unchanged copy, exit 0).
           {"quantize", dir.file("q.safetensors"), "--method", "dynamic", "--data-dir", dir.path(), "--out", dir.file("x")},
           {"quantize", dir.file("q.safetensors"), "--method", "static", "--calib-samples", "100", "--data-dir", dir.path(),
            "--out", dir.file("x")},
           {"factorize", dir.file("q.safetensors"), "--rank", "4", "--data-dir", dir.path(), "--out", dir.file("x")},
           {"prune", dir.file("q.safetensors"), "--sparsity", "0.5", "--data-dir", dir.path(), "--out", dir.file("x")}}) {
    auto r = run_shrink(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << args[1] << " " << args[2] << ": " << r.err;
  }
  EXPECT_FALSE(std::ifstream(dir.file("x")).good()) << "no output after a refused command";
}

TEST(TrainCli, InterruptKeepsTheLastCheckpoint) {
  testing::ScratchDir dir;
  write_images(dir.path(), "train", 2000);
  write_images(dir.path(), "t10k", 100);
  std::string model = dir.file("cnn.safetensors");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(SHRINK_BINARY, "shrink", "train", "--arch", "cnn", "--data-dir", dir.path().c_str(), "--epochs", "100",
          "--batch-size", "16", "--max-steps-per-epoch", "3", "--out", model.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for the first checkpoint, then interrupt.
  for (int i = 0; i < 600 && access(model.c_str(), F_OK) != 0; ++i) usleep(100000);
  ASSERT_EQ(access(model.c_str(), F_OK), 0) << "no checkpoint appeared";
  kill(child, SIGINT);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  auto evaluated = run_shrink({"eval", model, "--data-dir", dir.path(), "--json"});
  EXPECT_EQ(evaluated.exit_code, 0) << evaluated.err;
  for (const std::string& name : dir.list()) EXPECT_EQ(name.find(".partial"), std::string::npos) << name;
}

}  // namespace
}  // namespace shrink
