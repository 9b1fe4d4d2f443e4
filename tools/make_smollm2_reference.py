#!/usr/bin/env python3
"""Dequantize every tensor of the real SmolLM2 GGUF with the PyPI `gguf` package (the llama.cpp
project's reader) and record, per tensor, its row-major shape, sum, sum of squares and 24 sampled
values. tests/io/gguf_real_model_test.cpp compares shrink's dequantization against this file, so
CI needs neither the package nor numpy.

    pip install gguf==0.19.0 numpy && python3 tools/make_smollm2_reference.py [GGUF]
"""
import importlib.metadata
import json
import os
import sys

import numpy as np
import gguf
from gguf import quants

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(os.environ.get("SHRINK_CACHE", os.path.expanduser("~/.cache/shrink")),
                       "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    reader = gguf.GGUFReader(path)
    out = {"file": os.path.basename(path), "gguf_package": importlib.metadata.version("gguf"), "tensors": []}
    for tensor in reader.tensors:
        values = quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        flat = values.reshape(-1)
        samples = np.unique(np.concatenate([np.arange(8), np.linspace(0, flat.size - 1, 16).astype(np.int64)]))
        out["tensors"].append({
            "name": tensor.name,
            "type": tensor.tensor_type.name,
            "shape": [int(d) for d in values.shape],
            "sum": float(flat.astype(np.float64).sum()),
            "sum_squares": float((flat.astype(np.float64) ** 2).sum()),
            "samples": [[int(i), float(flat[i])] for i in samples],
        })
    target = os.path.join(HERE, "..", "tests", "fixtures", "smollm2_reference.json")
    with open(target, "w") as f:
        json.dump(out, f, indent=0)
    print(f"wrote {target}: {len(out['tensors'])} tensors")


if __name__ == "__main__":
    main()
