// Audio in: WAV files (RIFF/WAVE; PCM of 8, 16, 24 or 32 bits, or 32-bit float, WAVE_FORMAT_
// EXTENSIBLE included) and a band-limited resampler, for the models that listen (Silero VAD).
#pragma once
#include <span>
#include <string>
#include <vector>

#include "shrink/core/mapped_file.h"

namespace shrink::io {

struct Audio {
  int sample_rate = 0;
  int channels = 0;            // in the file; `samples` is their average
  std::vector<float> samples;  // mono, full scale = 1
  double seconds() const { return sample_rate ? double(samples.size()) / sample_rate : 0.0; }
};

// Throws FormatError for what is not a WAV file or is damaged (sizes checked against the file),
// UnsupportedError for encodings other than integer PCM and IEEE float (A-law, ADPCM, ...).
Audio read_wav(const ByteSource& source);
Audio read_wav(const std::string& path);

// `samples` at `from_rate` to `to_rate` (floor(n * to / from) samples): each output sample is the
// input under a Hann-windowed sinc low-pass at 0.45 of the lower Nyquist rate, 16 taps either side
// at the lower rate, normalised by the taps' sum (so a constant stays constant up to the edges).
// Computed in double precision. The same rate returns the samples unchanged.
std::vector<float> resample(std::span<const float> samples, int from_rate, int to_rate);

}  // namespace shrink::io
