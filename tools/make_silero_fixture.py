#!/usr/bin/env python3
"""Reference speech probabilities of Silero VAD v5 for tests/fixtures/silero_vad_reference.json.

Runs the ONNX model with onnxruntime (PyPI), chunk by chunk with its state carried, as Silero's own
OnnxWrapper does, on three of the ALSA recordings (tools/fetch_assets.py: "speech"), resampled to
16 kHz by the same windowed-sinc formula as shrink's io::resample (written here independently in
numpy). Run once, commit the JSON:

    python3 -m venv /tmp/ort && /tmp/ort/bin/pip install onnxruntime numpy
    /tmp/ort/bin/python tools/make_silero_fixture.py ~/.cache/shrink > tests/fixtures/silero_vad_reference.json
"""
import json
import sys
import wave

import numpy as np
import onnxruntime

FILES = ["Front_Center.wav", "Noise.wav", "Rear_Right.wav"]


def read_wav(path):
    with wave.open(path) as w:
        assert w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
        x = x.reshape(-1, w.getnchannels()).mean(axis=1)
        return x, w.getframerate()


def resample(x, rate_in, rate_out):
    step = rate_in / rate_out
    scale = min(1.0, rate_out / rate_in)
    cutoff, half = 0.45 * scale, 16.0 / scale
    out = np.zeros(len(x) * rate_out // rate_in, dtype=np.float32)
    for j in range(len(out)):
        t = j * step
        i = np.arange(max(0, int(np.ceil(t - half))), min(len(x) - 1, int(np.floor(t + half))) + 1)
        u = t - i
        keep = np.abs(u) < half
        i, u = i[keep], u[keep]
        h = 2 * cutoff * np.sinc(2 * cutoff * u) * (0.5 + 0.5 * np.cos(np.pi * u / half))
        out[j] = np.float32((h * x[i]).sum() / h.sum())
    return out


def probabilities(session, x):
    chunks = max(1, -(-len(x) // 512))
    x = np.concatenate([x, np.zeros(chunks * 512 - len(x), np.float32)])
    state, context, out = np.zeros((2, 1, 128), np.float32), np.zeros(64, np.float32), []
    for c in range(chunks):
        chunk = x[c * 512:(c + 1) * 512]
        p, state = session.run(None, {"input": np.concatenate([context, chunk])[None, :], "state": state,
                                      "sr": np.array(16000, np.int64)})
        out.append(float(p[0, 0]))
        context = chunk[-64:]
    return out


def main():
    cache = sys.argv[1]
    session = onnxruntime.InferenceSession(f"{cache}/silero-vad/silero_vad.onnx")
    result = {"source": "onnxruntime " + onnxruntime.__version__ + " on silero-vad 5.1.2's silero_vad.onnx",
              "files": {}}
    for name in FILES:
        x, rate = read_wav(f"{cache}/speech/{name}")
        y = resample(x, rate, 16000)
        result["files"][name] = {"samples_16k": len(y), "first_samples": [float(v) for v in y[1000:1008]],
                                 "probabilities": probabilities(session, y)}
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
