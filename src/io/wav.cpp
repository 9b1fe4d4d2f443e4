// WAV reading and resampling (see wav.h). RIFF layout: "RIFF" size "WAVE", then chunks (4-byte id,
// u32 size, data padded to an even length); "fmt " says the encoding, "data" holds the frames.
#include "shrink/io/wav.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <numeric>

#include "io/byte_cursor.h"
#include "shrink/core/parallel.h"

namespace shrink::io {
namespace {

constexpr uint16_t kPcm = 1, kFloat = 3, kExtensible = 0xfffe;

struct Format {
  uint16_t encoding = 0, channels = 0, block_align = 0, bits = 0;
  uint32_t rate = 0;
};

Format read_format(ByteCursor& in, uint32_t size) {
  if (size < 16) in.fail(fmt::format("a 'fmt ' chunk of {} bytes (at least 16)", size));
  Format f;
  f.encoding = in.read<uint16_t>("the encoding");
  f.channels = in.read<uint16_t>("the channel count");
  f.rate = in.read<uint32_t>("the sample rate");
  in.read<uint32_t>("the byte rate");
  f.block_align = in.read<uint16_t>("the block size");
  f.bits = in.read<uint16_t>("the bits per sample");
  uint32_t rest = size - 16;
  if (f.encoding == kExtensible) {
    if (rest < 24) in.fail("a WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk without its sub-format");
    in.skip(8, "the extension's sizes and channel mask");  // cbSize, valid bits, channel mask
    f.encoding = in.read<uint16_t>("the sub-format");     // the GUID's first two bytes
    in.skip(14, "the sub-format GUID");
    rest -= 24;
  }
  in.skip(rest, "the rest of the 'fmt ' chunk");
  return f;
}

float sample_at(const std::byte* p, const Format& f) {
  switch (f.bits) {
    case 8: return (float(uint8_t(p[0])) - 128.f) / 128.f;  // 8-bit WAV is unsigned
    case 16: {
      int16_t v;
      std::memcpy(&v, p, 2);
      return float(v) / 32768.f;
    }
    case 24: {
      const int32_t v = int32_t(uint32_t(uint8_t(p[0])) << 8 | uint32_t(uint8_t(p[1])) << 16 | uint32_t(uint8_t(p[2])) << 24) >> 8;
      return float(v) / 8388608.f;
    }
    default: {
      if (f.encoding == kFloat) {
        float v;
        std::memcpy(&v, p, 4);
        return std::isfinite(v) ? v : 0.f;
      }
      int32_t v;
      std::memcpy(&v, p, 4);
      return float(double(v) / 2147483648.0);
    }
  }
}

}  // namespace

Audio read_wav(const ByteSource& source) {
  ByteCursor in(source.bytes(), source.name());
  char riff[4], wave[4];
  if (source.size() < 12) in.fail("not a WAV file (shorter than a RIFF header)");
  std::memcpy(riff, source.bytes().data(), 4);
  std::memcpy(wave, source.bytes().data() + 8, 4);
  if (std::memcmp(riff, "RIFF", 4) != 0 || std::memcmp(wave, "WAVE", 4) != 0)
    throw FormatError("not a WAV file (no RIFF/WAVE header)", source.name(), "shrink reads audio as .wav");
  in.skip(12, "the RIFF header");
  Format f;
  bool has_format = false;
  while (in.remaining() >= 8) {
    char id[4];
    for (char& c : id) c = char(in.read<uint8_t>("a chunk id"));
    const uint32_t size = in.read<uint32_t>("a chunk size");
    if (std::memcmp(id, "fmt ", 4) == 0) {
      f = read_format(in, size);
      has_format = true;
    } else if (std::memcmp(id, "data", 4) == 0) {
      if (!has_format) in.fail("the 'data' chunk comes before any 'fmt ' chunk");
      if (f.encoding != kPcm && f.encoding != kFloat)
        throw UnsupportedError(fmt::format("WAV encoding {} (shrink reads integer PCM and IEEE float)", f.encoding),
                               source.name(), "convert it, e.g. ffmpeg -i IN -c:a pcm_s16le OUT.wav");
      const bool bits_ok = f.encoding == kFloat ? f.bits == 32 : (f.bits == 8 || f.bits == 16 || f.bits == 24 || f.bits == 32);
      if (!bits_ok || f.channels == 0 || f.block_align != f.channels * (f.bits / 8) || f.rate == 0 || f.rate > 1'000'000)
        in.fail(fmt::format("a format of {} channel(s), {} bits, {} bytes a frame, {} Hz that does not add up",
                            f.channels, f.bits, f.block_align, f.rate));
      if (size > in.remaining()) in.fail(fmt::format("a 'data' chunk of {} bytes with {} left", size, in.remaining()));
      if (size % f.block_align) in.fail(fmt::format("a 'data' chunk of {} bytes, not whole frames of {}", size, f.block_align));
      Audio audio{int(f.rate), int(f.channels), std::vector<float>(size / f.block_align)};
      const std::byte* data = source.bytes().data() + in.position();
      const int width = f.bits / 8;
      for (size_t i = 0; i < audio.samples.size(); ++i) {
        float sum = 0;
        for (int c = 0; c < f.channels; ++c) sum += sample_at(data + i * f.block_align + size_t(c * width), f);
        audio.samples[i] = sum / float(f.channels);
      }
      return audio;
    } else {
      in.skip(size, "a chunk");
    }
    if (size % 2 && in.remaining() > 0) in.skip(1, "a chunk's padding byte");
  }
  in.fail(has_format ? "no 'data' chunk" : "no 'fmt ' chunk");
}

Audio read_wav(const std::string& path) { return read_wav(*map_file(path)); }

std::vector<float> resample(std::span<const float> samples, int from_rate, int to_rate) {
  if (from_rate <= 0 || to_rate <= 0) throw UsageError("sample rates must be positive", "resample");
  if (from_rate == to_rate) return {samples.begin(), samples.end()};
  const double scale = std::min(1.0, double(to_rate) / from_rate);
  const double cutoff = 0.45 * scale;      // cycles per input sample
  const double half_width = 16.0 / scale;  // input samples either side
  const auto tap = [&](double u) {         // the windowed sinc at distance u; 0 outside the window
    if (std::abs(u) >= half_width) return 0.0;
    const double x = 2 * cutoff * u;
    const double sinc = x == 0 ? 1.0 : std::sin(std::numbers::pi * x) / (std::numbers::pi * x);
    return 2 * cutoff * sinc * (0.5 + 0.5 * std::cos(std::numbers::pi * u / half_width));
  };
  // Output j sits at input time j * from / to = j * step_num / phases: a whole part and one of
  // `phases` fractions, so the taps repeat with the phase; tabulated when there are not too many.
  const int64_t g = std::gcd(int64_t(from_rate), int64_t(to_rate));
  const int64_t phases = to_rate / g, step_num = from_rate / g;
  const auto reach = int64_t(std::ceil(half_width)) + 1;  // taps k = -reach .. reach around the whole part
  const int64_t width = 2 * reach + 1;
  const bool tabulate = phases <= 4096;
  std::vector<double> table(tabulate ? size_t(phases * width) : 0);
  for (int64_t p = 0; p < (tabulate ? phases : 0); ++p)
    for (int64_t k = -reach; k <= reach; ++k) table[size_t(p * width + k + reach)] = tap(double(p) / double(phases) - double(k));
  const auto n = int64_t(samples.size());
  std::vector<float> out(size_t(n * int64_t(to_rate) / from_rate));
  parallel_for(0, int64_t(out.size()), 4096, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const int64_t whole = j * step_num / phases, phase = j * step_num % phases;
      double sum = 0, weights = 0;
      for (int64_t k = std::max(-reach, -whole); k <= std::min(reach, n - 1 - whole); ++k) {
        const double h = tabulate ? table[size_t(phase * width + k + reach)] : tap(double(phase) / double(phases) - double(k));
        sum += h * samples[size_t(whole + k)];
        weights += h;
      }
      out[size_t(j)] = weights != 0 ? float(sum / weights) : 0.f;
    }
  });
  return out;
}

}  // namespace shrink::io
