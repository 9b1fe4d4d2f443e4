#!/usr/bin/env python3
"""Checks a GGUF written by `shrink export` with the PyPI `gguf` package (llama.cpp's own
reader): every tensor of the GGUF, dequantized by gguf, must equal the weights of the shrink
model it came from, computed here independently from the shrink file (safetensors): Int4Linear
layers as q * scale + min from their nibbles and f16 scales/mins, other weights as stored, q/k
rows permuted as llama.cpp's converter does. Prints one line and exits non-zero on a mismatch.

    python3 tools/check_gguf_export.py MODEL.shrink EXPORTED.gguf
"""
import json
import struct
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

LAYER = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
         "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
         "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
         "mlp.down_proj": "ffn_down"}
GLOBAL = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
DTYPES = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I8": np.int8}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        tensors[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return tensors, meta


def gguf_name(node):
    if node in GLOBAL:
        return GLOBAL[node]
    parts = node.split(".")
    return f"blk.{parts[2]}.{LAYER['.'.join(parts[3:])]}"


def permute(w, heads):  # llama.cpp's convert_hf_to_gguf permute
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main(model_path, gguf_path):
    tensors, meta = read_safetensors(model_path)
    graph = json.loads(meta["shrink.graph"])
    config = json.loads(meta["shrink.provenance"])["language_model"]["config"]
    expected = {}
    for node in graph["nodes"]:
        name = node["name"]
        if name == "lm_head" and config.get("tied_embeddings"):
            continue  # llama.cpp reuses token_embd
        if node["kind"] == "Int4Linear":
            n, k, g = node["attrs"]["out_features"], node["attrs"]["in_features"], node["attrs"]["group_size"]
            nib = tensors[name + ".nibbles"].reshape(n, k // 32, 16)
            q = np.concatenate([nib & 15, nib >> 4], axis=2).reshape(n, k).astype(np.float32)
            scale = np.repeat(tensors[name + ".scales"].astype(np.float32), g, axis=1)
            low = np.repeat(tensors[name + ".mins"].astype(np.float32), g, axis=1)
            w = q * scale + low
        elif node["kind"] == "DynamicQuantLinear":
            w = tensors[name + ".weight"].astype(np.float32) * tensors[name + ".weight_scale"][:, None]
        elif node["kind"] in ("Linear", "Embedding", "RMSNorm"):
            p = node["params"][0]
            if p.get("storage") == "tied":
                continue
            w = tensors[name + ".weight"].astype(np.float32)
        else:
            continue
        gname = gguf_name(name)
        if gname.endswith("attn_q"):
            w = permute(w, config["heads"])
        if gname.endswith("attn_k"):
            w = permute(w, config["kv_heads"])
        expected[gname + ".weight"] = w
    reader = GGUFReader(gguf_path)
    seen, worst = 0, 0.0
    for t in reader.tensors:
        got = dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(s) for s in reversed(t.shape)])
        want = expected.pop(t.name)
        if t.tensor_type.name == "Q8_0":  # re-quantized, so equal within half a step
            tolerance = np.abs(want).max() / 127 * 0.51 + 1e-6
        else:
            tolerance = 0.0
        error = float(np.abs(got - want).max())
        worst = max(worst, error) if tolerance == 0 else worst
        if error > tolerance:
            print(f"MISMATCH {t.name} ({t.tensor_type.name}): max difference {error}")
            return 1
        seen += 1
    if expected:
        print(f"MISSING from the GGUF: {sorted(expected)}")
        return 1
    print(f"gguf package: {seen} tensors equal to the shrink model's weights (max difference {worst})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
