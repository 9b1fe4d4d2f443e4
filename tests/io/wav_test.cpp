// WAV reading (every encoding, damaged headers) and the resampler (pass band kept, stop band
// removed, constants kept to the edges).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>

#include "shrink/core/error.h"
#include "shrink/io/wav.h"
#include "test_support.h"

namespace shrink {
namespace {

struct WavSpec {
  uint16_t encoding = 1, channels = 1, bits = 16;
  uint32_t rate = 16000;
  bool extensible = false;
};

void put(std::vector<std::byte>& out, const void* data, size_t size) {
  const size_t at = out.size();
  out.resize(at + size);
  std::memcpy(out.data() + at, data, size);
}
template <class T> void put(std::vector<std::byte>& out, T value) { put(out, &value, sizeof value); }

// A WAV file of `frames` (bytes of whole frames), with an odd-sized "LIST" chunk before the data
// (padded to even, as RIFF requires).
std::vector<std::byte> wav(const WavSpec& s, const std::vector<std::byte>& frames) {
  std::vector<std::byte> out;
  put(out, "RIFF", 4);
  put<uint32_t>(out, 0);
  put(out, "WAVE", 4);
  put(out, "fmt ", 4);
  put<uint32_t>(out, s.extensible ? 40 : 16);
  put<uint16_t>(out, s.extensible ? 0xfffe : s.encoding);
  put<uint16_t>(out, s.channels);
  put<uint32_t>(out, s.rate);
  put<uint32_t>(out, s.rate * s.channels * s.bits / 8);
  put<uint16_t>(out, uint16_t(s.channels * s.bits / 8));
  put<uint16_t>(out, s.bits);
  if (s.extensible) {
    put<uint16_t>(out, 22);
    put<uint16_t>(out, s.bits);
    put<uint32_t>(out, 0);
    put<uint16_t>(out, s.encoding);
    put(out, "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71", 14);
  }
  put(out, "LIST", 4);
  put<uint32_t>(out, 3);
  put(out, "abc\0", 4);
  put(out, "data", 4);
  put<uint32_t>(out, uint32_t(frames.size()));
  put(out, frames.data(), frames.size());
  const uint32_t riff = uint32_t(out.size() - 8);
  std::memcpy(out.data() + 4, &riff, 4);
  return out;
}

io::Audio read(std::vector<std::byte> bytes) { return io::read_wav(*memory_source(std::move(bytes), "test.wav")); }

TEST(Wav, ReadsEveryEncodingAndAveragesChannels) {
  std::vector<std::byte> s16;
  for (int16_t v : {int16_t(16384), int16_t(-16384), int16_t(-32768), int16_t(0)}) put(s16, v);
  io::Audio a = read(wav({1, 2, 16, 44100}, s16));  // two stereo frames
  EXPECT_EQ(a.sample_rate, 44100);
  EXPECT_EQ(a.channels, 2);
  EXPECT_EQ(a.samples, (std::vector<float>{0.f, -0.5f}));
  EXPECT_NEAR(a.seconds(), 2.0 / 44100, 1e-12);

  EXPECT_EQ(read(wav({1, 1, 8}, {std::byte{0}, std::byte{128}, std::byte{192}})).samples,
            (std::vector<float>{-1.f, 0.f, 0.5f}));  // 8-bit is unsigned
  EXPECT_EQ(read(wav({1, 1, 24}, {std::byte{0}, std::byte{0}, std::byte{0xc0}})).samples,
            (std::vector<float>{-0.5f}));
  std::vector<std::byte> s32;
  put<int32_t>(s32, 1 << 30);
  EXPECT_EQ(read(wav({1, 1, 32}, s32)).samples, (std::vector<float>{0.5f}));
  std::vector<std::byte> f32;
  put<float>(f32, 0.25f);
  put<float>(f32, NAN);
  EXPECT_EQ(read(wav({3, 1, 32}, f32)).samples, (std::vector<float>{0.25f, 0.f}));  // non-finite -> silence
  EXPECT_EQ(read(wav({3, 1, 32, 16000, true}, f32)).samples, (std::vector<float>{0.25f, 0.f}));
}

void expect_error(const std::vector<std::byte>& bytes, const std::string& says) {
  try {
    read(bytes);
    ADD_FAILURE() << "read a bad file (expected: " << says << ")";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

TEST(Wav, BadFilesAreRefusedWithTheReason) {
  const std::vector<std::byte> two(4, std::byte{1});
  expect_error({std::byte{'R'}}, "not a WAV file");
  std::vector<std::byte> text(64, std::byte{'x'});
  expect_error(text, "no RIFF/WAVE header");
  expect_error(wav({2, 1, 4}, two), "WAV encoding 2");  // ADPCM: UnsupportedError
  expect_error(wav({1, 1, 12}, two), "does not add up");
  expect_error(wav({1, 0, 16}, two), "does not add up");
  expect_error(wav({1, 1, 16, 0}, two), "does not add up");
  expect_error(wav({1, 2, 16}, {std::byte{1}, std::byte{2}}), "not whole frames");
  auto cut = wav({1, 1, 16}, two);
  cut.resize(cut.size() - 2);
  expect_error(cut, "'data' chunk of 4 bytes with 2 left");
  auto no_data = wav({1, 1, 16}, two);
  no_data.resize(no_data.size() - 12);
  expect_error(no_data, "no 'data' chunk");
  auto data_first = wav({1, 1, 16}, two);
  std::memcpy(data_first.data() + 12, "junk", 4);  // the 'fmt ' chunk renamed
  expect_error(data_first, "before any 'fmt ' chunk");
}

std::vector<float> sine(double frequency, int rate, int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(std::sin(2 * std::numbers::pi * frequency * double(i) / rate));
  return x;
}
double rms(std::span<const float> x) {
  double sum = 0;
  for (float v : x) sum += double(v) * v;
  return std::sqrt(sum / double(x.size()));
}

TEST(Resample, KeepsThePassBandRemovesTheStopBandAndKeepsConstants) {
  const std::vector<float> low = sine(440, 48000, 48000);
  const std::vector<float> y = io::resample(low, 48000, 16000);
  ASSERT_EQ(y.size(), 16000u);
  const std::vector<float> expected = sine(440, 16000, 16000);
  double worst = 0;
  for (size_t i = 100; i < y.size() - 100; ++i) worst = std::max(worst, double(std::abs(y[i] - expected[i])));
  EXPECT_LT(worst, 2e-3);
  // 10 kHz is above 16 kHz's Nyquist rate: it must not fold back into the band.
  const std::vector<float> high = io::resample(sine(10000, 48000, 48000), 48000, 16000);
  EXPECT_LT(rms(std::span(high).subspan(100, 15800)), 0.01);
  // 44.1 kHz (160 phases, tabulated), 44,101 Hz (16,000 phases, computed per sample) and upsampling
  // 8 kHz: constants kept to the last sample
  for (auto [from, to] : {std::pair{44100, 16000}, std::pair{44101, 16000}, std::pair{8000, 16000}}) {
    const std::vector<float> c = io::resample(std::vector<float>(size_t(from), 0.3f), from, to);
    ASSERT_EQ(c.size(), size_t(to));
    for (float v : c) ASSERT_NEAR(v, 0.3f, 1e-6);
  }
  EXPECT_EQ(io::resample(low, 48000, 48000), low);
  EXPECT_THROW(io::resample(low, 0, 16000), UsageError);
}

}  // namespace
}  // namespace shrink
