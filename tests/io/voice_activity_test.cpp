// Silero VAD's framing (context, chunk, reflection), the speech segments' hysteresis and the
// comparison of two detectors; the CLI end to end on the real model (dynamic int8 against f32).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "shrink/eval/voice_activity.h"
#include "shrink/io/native_model.h"
#include "shrink/nn/builder.h"
#include "test_support.h"

namespace shrink {
namespace {

TEST(VoiceActivity, FramesCarryContextChunkAndReflection) {
  std::vector<float> ramp(1000);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = float(i + 1);
  const Tensor frames = eval::vad_frames(ramp);
  ASSERT_EQ(frames.shape(), (Shape{2, 1, 1, 640}));  // 1000 samples: two chunks, the second padded
  const float* f = frames.data<float>();
  for (int i = 0; i < 64; ++i) EXPECT_EQ(f[i], 0.f);                // no context before the start
  for (int i = 0; i < 512; ++i) EXPECT_EQ(f[64 + i], float(i + 1));  // the chunk
  for (int i = 0; i < 64; ++i) EXPECT_EQ(f[576 + i], f[574 - i]);    // reflected, the edge not repeated
  EXPECT_EQ(f[576], 511.f);
  const float* g = f + 640;
  for (int i = 0; i < 64; ++i) EXPECT_EQ(g[i], float(449 + i));  // the last 64 samples of chunk 0
  EXPECT_EQ(g[64], 513.f);
  EXPECT_EQ(g[64 + 487], 1000.f);
  EXPECT_EQ(g[64 + 488], 0.f);  // zero padding after the audio
  EXPECT_EQ(eval::vad_frames({}).shape(), (Shape{1, 1, 1, 640}));
  const Tensor second = eval::vad_frames(ramp, 1, 1);  // a range of chunks: the same frame, context included
  ASSERT_EQ(second.shape(), (Shape{1, 1, 1, 640}));
  for (int i = 0; i < 640; ++i) ASSERT_EQ(second.data<float>()[i], g[i]) << i;
}

TEST(VoiceActivity, SegmentsStartAtHalfAndEndAfterASilenceOf100ms) {
  const double chunk = 0.032;
  std::vector<float> p(40, 0.1f);
  for (int i = 5; i < 20; ++i) p[size_t(i)] = 0.9f;
  p[12] = p[13] = p[14] = 0.2f;   // a 96 ms dip: shorter than 100 ms, the segment goes on
  p[20] = p[21] = 0.4f;           // above 0.35: still speech
  for (int i = 30; i < 35; ++i) p[size_t(i)] = 0.8f;  // 160 ms: shorter than 250 ms, dropped
  auto s = eval::speech_segments(p);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_NEAR(s[0].start, 5 * chunk, 1e-9);
  EXPECT_NEAR(s[0].end, 22 * chunk, 1e-9);
  std::vector<float> open(12, 0.7f);  // speech to the end
  s = eval::speech_segments(open);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_NEAR(s[0].end, 12 * chunk, 1e-9);
  EXPECT_TRUE(eval::speech_segments(std::vector<float>(50, 0.49f)).empty());
}

TEST(VoiceActivity, ComparisonCountsDecisionsAndDifferences) {
  const std::vector<float> a = {0.1f, 0.6f, 0.5f, 0.9f}, b = {0.2f, 0.4f, 0.5f, 0.9f};
  const eval::VadComparison c = eval::compare_probabilities(a, b);
  EXPECT_EQ(c.chunks, 4);
  EXPECT_NEAR(c.max_abs_difference, 0.2, 1e-6);
  EXPECT_NEAR(c.mean_abs_difference, 0.075, 1e-6);
  EXPECT_DOUBLE_EQ(c.decision_agreement, 0.75);
  EXPECT_EQ(c.agreeing_chunks, 3);
  EXPECT_THROW(eval::compare_probabilities(a, std::vector<float>(3)), UsageError);
}

// Dynamic int8 of the real detector: the LSTM and the output layer quantized, the convolutions
// left f32 (with the reason); its speech decisions against the f32 ONNX model's on real speech.
TEST(VoiceActivity, DynamicInt8SileroDecidesAsTheOriginalOnRealSpeech) {
  const std::string model = testing::asset_path("silero-vad/silero_vad.onnx");
  const std::string speech = testing::asset_path("speech/Front_Center.wav"), noise = testing::asset_path("speech/Noise.wav");
  if (!testing::asset_present(model) || !testing::asset_present(speech) || !testing::asset_present(noise))
    GTEST_SKIP() << "fetch the assets: python3 tools/fetch_assets.py";
  testing::ScratchDir dir;
  const auto q = testing::run_shrink({"quantize", model, "--method", "dynamic", "--out", dir.file("vad8.shrink")});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.out.find("decoder.rnn"), std::string::npos) << q.out;
  EXPECT_NE(q.out.find("f32: convolution"), std::string::npos) << q.out;
  const auto e = testing::run_shrink({"eval", dir.file("vad8.shrink"), "--audio", speech, noise, "--reference", model, "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const auto r = nlohmann::json::parse(e.out);
  EXPECT_GE(r["decision_agreement"].get<double>(), 0.97);
  EXPECT_LT(r["max_abs_difference"].get<double>(), 0.1);
  EXPECT_GT(r["mean_abs_difference"].get<double>(), 0.0);  // it is quantized
  EXPECT_EQ(r["files"][0]["segments"].size(), 2u);  // "Front", "Center"
  EXPECT_EQ(r["files"][1]["speech_chunks"].get<int64_t>(), 0);
  // A model that does not take audio, and a file that is not audio
  const auto wrong = testing::run_shrink({"eval", dir.file("vad8.shrink"), "--audio", model});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("not a WAV file"), std::string::npos) << wrong.err;
  nn::GraphBuilder b(1);
  b.output(b.linear("fc", b.input("x", Shape{-1, 4}), 4, 2));
  io::save_model(dir.file("mlp.shrink"), b.graph());
  const auto no_audio = testing::run_shrink({"eval", model});
  EXPECT_EQ(no_audio.exit_code, 2);
  EXPECT_NE(no_audio.err.find("pass --audio"), std::string::npos) << no_audio.err;
  const auto not_vad = testing::run_shrink({"eval", dir.file("mlp.shrink"), "--audio", speech});
  EXPECT_EQ(not_vad.exit_code, 2);
  EXPECT_NE(not_vad.err.find("does not take audio frames"), std::string::npos) << not_vad.err;
}

}  // namespace
}  // namespace shrink
