// The ONNX reader on hand-written files (every field path, damaged files), and Silero VAD imported
// from its real ONNX file against onnxruntime's probabilities (tests/fixtures/silero_vad_reference
// .json, made by tools/make_silero_fixture.py).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "io/onnx_reader.h"
#include "io/onnx_builder.h"
#include "shrink/eval/voice_activity.h"
#include "shrink/io/inspect.h"
#include "shrink/io/onnx_import.h"
#include "shrink/io/wav.h"
#include "shrink/nn/execute.h"
#include "test_support.h"

namespace shrink {
namespace {

using testing::Proto;

io::OnnxModel read(std::vector<std::byte> bytes) { return io::read_onnx(*memory_source(std::move(bytes), "test.onnx")); }

std::vector<float> values(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

TEST(Onnx, ReadsTensorsOfEveryKindFromTheGraphAndItsBranches) {
  const io::OnnxModel m = read(testing::sample_onnx_model());
  EXPECT_EQ(m.ir_version, 8);
  EXPECT_EQ(m.producer, "shrink-test");
  EXPECT_EQ(m.opset, 17);
  EXPECT_EQ(m.inputs, std::vector<std::string>{"x"});
  EXPECT_EQ(m.outputs, std::vector<std::string>{"y"});
  EXPECT_EQ(m.op_counts, (std::map<std::string, int64_t>{{"Constant", 3}, {"If", 1}, {"Relu", 1}}));
  ASSERT_EQ(m.tensors.size(), 3u);  // the int64 constant is shape arithmetic, not a weight
  EXPECT_EQ(m.tensors.at("w").shape(), (Shape{2, 3}));
  EXPECT_EQ(values(m.tensors.at("w")), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(values(m.tensors.at("c.packed")), (std::vector<float>{0.5f, -2.f}));
  EXPECT_EQ(values(m.tensors.at("branch.half")), (std::vector<float>{1.f, 0.25f, -3.f}));
  EXPECT_EQ(m.stored_as.at("branch.half"), DType::f16);
  EXPECT_EQ(m.stored_as.at("w"), DType::f32);
}

TEST(Onnx, EveryTruncationIsAFormatErrorOrAValidPrefix) {
  const auto whole = testing::sample_onnx_model();
  int rejected = 0;
  for (size_t size = 0; size < whole.size(); ++size) {
    try {
      read(std::vector<std::byte>(whole.begin(), whole.begin() + std::ptrdiff_t(size)));
    } catch (const FormatError&) {
      ++rejected;
    }
  }
  // A cut between two top-level fields can leave a valid (smaller) model; most cuts land inside one.
  EXPECT_GT(rejected, int(whole.size()) * 9 / 10);
}

void expect_format_error(const std::vector<std::byte>& bytes, const std::string& says) {
  try {
    read(bytes);
    ADD_FAILURE() << "read a damaged file (expected: " << says << ")";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

// Found by libFuzzer (UBSan: memcpy from a null pointer): an empty packed float_data field.
TEST(Onnx, EmptyTensorsReadAsEmpty) {
  Proto empty;
  empty.varint(1, 0).varint(2, 1).string(8, "e").bytes(4, nullptr, 0);
  const io::OnnxModel m = read(testing::onnx_model(Proto().message(5, empty)));
  EXPECT_EQ(m.tensors.at("e").numel(), 0);
  Proto raw_empty;
  raw_empty.varint(1, 0).varint(2, 1).string(8, "r").bytes(9, nullptr, 0);
  EXPECT_EQ(read(testing::onnx_model(Proto().message(5, raw_empty))).tensors.at("r").numel(), 0);
}

TEST(Onnx, DamagedFilesAreRefusedWithTheReason) {
  Proto graph;
  graph.message(5, testing::float_tensor("w", {2, 3}, {1, 2, 3, 4, 5}));  // 5 values for 6
  expect_format_error(testing::onnx_model(graph), "needs 6 values, the file holds 20 bytes of raw data");
  // Found by libFuzzer (a 12 GB allocation): a shape of 3 G values with one value's data is refused
  // before anything is allocated for it.
  Proto lying;
  lying.message(5, testing::float_tensor("w", {3, 1 << 30}, {1}));
  expect_format_error(testing::onnx_model(lying), "needs 3221225472 values");
  Proto huge;
  huge.message(5, testing::float_tensor("w", {1 << 20, 1 << 20, 1 << 20}, {1}));
  expect_format_error(testing::onnx_model(huge), "invalid dimension");
  Proto deep = Proto().message(1, testing::op_node("Relu", "x", "y"));
  for (int level = 0; level < 40; ++level) {
    Proto attribute;
    attribute.string(1, "body").message(6, deep);
    Proto node;
    node.string(4, "Loop").message(5, attribute);
    deep = Proto().message(1, node);
  }
  expect_format_error(testing::onnx_model(deep), "nested more than 32 deep");
  std::vector<std::byte> group_field = testing::sample_onnx_model();
  group_field[0] = std::byte{0x0b};  // field 1 as a group (wire type 3)
  expect_format_error(group_field, "wire type 3");
  expect_format_error({std::byte{0x08}, std::byte{0x08}}, "no ir_version or no graph");  // ir_version 8 only
  Proto external;
  external.varint(1, 4).varint(2, 1).string(8, "w").varint(14, 1);
  try {
    read(testing::onnx_model(Proto().message(5, external)));
    ADD_FAILURE() << "external data was accepted";
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("external file"), std::string::npos) << e.what();
  }
}

TEST(Onnx, AnUnknownNetworkIsRefusedNamingItsOps) {
  testing::ScratchDir dir;
  testing::write_bytes(dir.file("other.onnx"), testing::sample_onnx_model());
  try {
    io::import_onnx(dir.file("other.onnx"));
    ADD_FAILURE() << "an unknown network imported";
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("Silero VAD"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Relu x1"), std::string::npos) << e.what();
  }
  EXPECT_EQ(summarize_model(dir.file("other.onnx")).format, "onnx");  // inspect still shows it
  // Silero's STFT basis without the rest of its weights: a damaged Silero file, not another network.
  Proto graph;
  graph.message(5, testing::float_tensor("branch__stft.forward_basis_buffer", {258, 1, 256}, std::vector<float>(258 * 256)));
  testing::write_bytes(dir.file("partial.onnx"), testing::onnx_model(graph));
  try {
    io::import_onnx(dir.file("partial.onnx"));
    ADD_FAILURE() << "a partial Silero file imported";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'encoder.0.reparam_conv.bias' is missing"), std::string::npos) << e.what();
  }
}

// The real Silero VAD against onnxruntime run chunk by chunk with its state carried.
TEST(Onnx, SileroVadMatchesOnnxRuntimeOnRealSpeech) {
  const std::string model_path = testing::asset_path("silero-vad/silero_vad.onnx");
  if (!testing::asset_present(model_path)) GTEST_SKIP() << "fetch the assets: python3 tools/fetch_assets.py";
  io::LoadedModel model = io::import_onnx(model_path);
  ASSERT_TRUE(eval::is_voice_activity_model(model.graph));
  std::ifstream stream(testing::fixture_path("silero_vad_reference.json"));
  const auto fixture = nlohmann::json::parse(stream);
  int64_t speech = 0;
  for (const auto& [name, reference] : fixture["files"].items()) {
    SCOPED_TRACE(name);
    const std::string wav = testing::asset_path("speech/" + name);
    if (!testing::asset_present(wav)) GTEST_SKIP() << "fetch the assets: python3 tools/fetch_assets.py";
    const io::Audio audio = io::read_wav(wav);
    EXPECT_EQ(audio.sample_rate, 48000);
    const std::vector<float> samples = io::resample(audio.samples, audio.sample_rate, 16000);
    ASSERT_EQ(int64_t(samples.size()), reference["samples_16k"].get<int64_t>());
    for (size_t i = 0; i < 8; ++i)  // the resampler written twice (numpy, here) agrees
      EXPECT_NEAR(samples[1000 + i], reference["first_samples"][i].get<double>(), 1e-6);
    const std::vector<float> p = eval::speech_probabilities(model.graph, samples);
    const auto& expected = reference["probabilities"];
    ASSERT_EQ(p.size(), expected.size());
    double worst = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      worst = std::max(worst, std::abs(double(p[i]) - expected[i].get<double>()));
      speech += p[i] >= 0.5f;
    }
    EXPECT_LT(worst, 1e-4);
  }
  EXPECT_GT(speech, 40);  // the recordings do hold speech (and Noise.wav none: in the CLI test)
}

// Audio longer than one encoder block (2,048 chunks, 65 s) runs the convolutions block by block;
// the probabilities are those of one call on every frame.
TEST(Onnx, LongAudioInEncoderBlocksGivesTheSameProbabilities) {
  const std::string model_path = testing::asset_path("silero-vad/silero_vad.onnx");
  const std::string wav = testing::asset_path("speech/Front_Center.wav");
  if (!testing::asset_present(model_path) || !testing::asset_present(wav))
    GTEST_SKIP() << "fetch the assets: python3 tools/fetch_assets.py";
  io::LoadedModel model = io::import_onnx(model_path);
  const io::Audio audio = io::read_wav(wav);
  const std::vector<float> once = io::resample(audio.samples, audio.sample_rate, 16000);
  std::vector<float> samples;
  while (int64_t(samples.size()) < (eval::kVadEncoderBlock * 2 + 100) * eval::kVadChunk)
    samples.insert(samples.end(), once.begin(), once.end());
  const std::vector<float> blocked = eval::speech_probabilities(model.graph, samples);
  const Tensor frames = eval::vad_frames(samples);
  const Tensor whole = nn::forward(model.graph, std::span<const Tensor>(&frames, 1)).at(0).contiguous();
  ASSERT_EQ(int64_t(blocked.size()), whole.numel());
  ASSERT_GT(whole.numel(), 2 * eval::kVadEncoderBlock);
  double worst = 0;
  for (size_t i = 0; i < blocked.size(); ++i) worst = std::max(worst, double(std::abs(blocked[i] - whole.data<float>()[i])));
  EXPECT_LT(worst, 1e-5);
}

}  // namespace
}  // namespace shrink
