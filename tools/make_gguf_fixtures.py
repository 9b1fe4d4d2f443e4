#!/usr/bin/env python3
"""Make the small GGUF fixtures that test shrink's GGUF reader against an independent
implementation: the PyPI `gguf` package (maintained by the llama.cpp project).

Writes tests/fixtures/gguf/all_types.gguf (metadata of every value type, tensors of every format
shrink dequantizes), expected.f32 (the package's dequantization, concatenated little-endian f32
in tensor order), sources.f32 (the 3x64 float inputs of the quantized.q4_0, q4_1, q5_0, q5_1 and
q8_0 tensors, in that order) and manifest.json (names, types, row-major shapes, metadata values).

    pip install gguf==0.19.0 numpy && python3 tools/make_gguf_fixtures.py
"""
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "gguf")
rng = np.random.default_rng(20261129)

# Byte offsets of the fp16 scale fields inside each block (ggml-common.h); random blocks get sane
# scales there so that dequantized values are finite.
SCALE_FIELDS = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
                T.Q4_K: [0, 2], T.Q6_K: [208]}


def random_blocks(qtype, rows, cols):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    data = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
    for offset in SCALE_FIELDS[qtype]:
        scales = (rng.standard_normal((rows, cols // block)) * 0.05).astype(np.float16)
        data[:, :, offset:offset + 2] = scales.view(np.uint8).reshape(rows, cols // block, 2)
    return data.reshape(rows, -1)


def main():
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "all_types.gguf")
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_custom_alignment(64)
    metadata = {
        "test.u8": ("u8", 200), "test.i8": ("i8", -100), "test.u16": ("u16", 60000),
        "test.i16": ("i16", -30000), "test.u32": ("u32", 4000000000), "test.i32": ("i32", -2000000000),
        "test.f32": ("f32", 0.5), "test.u64": ("u64", 2**63 + 5), "test.i64": ("i64", -(2**62)),
        "test.f64": ("f64", -1.25e-300), "test.bool": ("bool", True), "test.string": ("string", "héllo\nworld"),
    }
    adders = {"u8": writer.add_uint8, "i8": writer.add_int8, "u16": writer.add_uint16,
              "i16": writer.add_int16, "u32": writer.add_uint32, "i32": writer.add_int32,
              "f32": writer.add_float32, "u64": writer.add_uint64, "i64": writer.add_int64,
              "f64": writer.add_float64, "bool": writer.add_bool, "string": writer.add_string}
    for key, (kind, value) in metadata.items():
        adders[kind](key, value)
    writer.add_array("test.array_i32", [1, -2, 3])
    writer.add_array("test.array_string", ["a", "bc", ""])
    writer.add_array("test.array_nested", [[1, 2], [3]])

    tensors = []  # (name, qtype, raw array, expected float32 array)
    sources = []  # the float inputs of the quantized.* tensors, for tests of shrink's quantizers
    f32 = rng.standard_normal((3, 5)).astype(np.float32)
    tensors.append(("plain.f32", T.F32, f32, f32))
    f16 = (rng.standard_normal((2, 3, 8)) * 100).astype(np.float16)
    f16.flat[:4] = np.array([6.0e-8, -65504, np.inf, 1e-5], dtype=np.float16)  # subnormal, max, inf
    tensors.append(("plain.f16", T.F16, f16, f16.astype(np.float32)))
    bf = rng.standard_normal((2, 40)).astype(np.float32)
    bf_raw = quants.quantize(bf, T.BF16)
    tensors.append(("plain.bf16", T.BF16, bf_raw, quants.dequantize(bf_raw, T.BF16)))
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        name = qtype.name.lower()
        x = rng.standard_normal((3, 64)).astype(np.float32)
        raw = quants.quantize(x, qtype)
        sources.append(x)
        tensors.append((f"quantized.{name}", qtype, raw, quants.dequantize(raw, qtype)))
        raw = random_blocks(qtype, 2, 96)
        tensors.append((f"random.{name}", qtype, raw, quants.dequantize(raw, qtype)))
    for qtype in (T.Q4_K, T.Q6_K):
        raw = random_blocks(qtype, 3, 512)
        tensors.append((f"random.{qtype.name.lower()}", qtype, raw, quants.dequantize(raw, qtype)))

    manifest = {"metadata": {k: {"type": t, "value": v} for k, (t, v) in metadata.items()},
                "alignment": 64, "tensors": []}
    manifest["metadata"]["test.u64"]["value"] = str(2**63 + 5)  # beyond JSON's safe integers
    offset = 0
    expected_all = []
    for name, qtype, raw, expected in tensors:
        if qtype in (T.F32, T.F16):
            writer.add_tensor(name, raw)
        else:
            writer.add_tensor(name, raw, raw_dtype=qtype)
        expected = np.ascontiguousarray(expected, dtype=np.float32)
        manifest["tensors"].append({"name": name, "type": qtype.name, "shape": list(expected.shape),
                                    "expected_offset": offset})
        offset += expected.size
        expected_all.append(expected.ravel())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    np.concatenate(expected_all).astype("<f4").tofile(os.path.join(OUT, "expected.f32"))
    np.concatenate([x.ravel() for x in sources]).astype("<f4").tofile(os.path.join(OUT, "sources.f32"))
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    # Cross-check with the package's own reader before committing anything.
    reader = gguf.GGUFReader(path)
    assert len(reader.tensors) == len(tensors)
    print(f"wrote {path} ({os.path.getsize(path)} bytes), {len(tensors)} tensors, {offset} values")


if __name__ == "__main__":
    main()
