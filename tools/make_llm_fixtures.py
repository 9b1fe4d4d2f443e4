#!/usr/bin/env python3
"""Reference fixtures for shrink's language-model import (run once; the outputs are committed).

1. Tokenizer ids: SmolLM2's byte-level BPE rebuilt from the GGUF metadata (tokens and merges) with
   the PyPI `tokenizers` package, using the pre-tokenizer SmolLM2's own tokenizer.json declares
   (Digits(individual_digits) then ByteLevel(add_prefix_space=False, use_regex=True)); and
   MiniLM's WordPiece from its tokenizer.json. Each encodes a fixed set of strings.
2. SmolLM2 logits: an independent numpy forward pass of the Llama architecture (the GGUF weights
   dequantized by the PyPI `gguf` package; its q/k rows un-permuted back to Hugging Face's
   rotate-half layout) over a short token sequence; the last position's top logits are kept.
3. MiniLM sentence embeddings: an independent numpy float64 forward pass of BERT (safetensors
   read by hand; word + position + token-type-0 embeddings, post-LayerNorm layers, erf GELU,
   bidirectional attention) and sentence-transformers' mean pooling, for three sentences.

    python3 tools/make_llm_fixtures.py [--minilm-only]   # needs: pip install gguf tokenizers numpy
Writes tests/fixtures/llm_tokenizers.json, tests/fixtures/smollm2_logits.json and
tests/fixtures/minilm_embeddings.json.
"""
import json
import math
import os
import struct
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, AddedToken

CACHE = os.environ.get("SHRINK_CACHE", os.path.expanduser("~/.cache/shrink"))
GGUF = os.path.join(CACHE, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
MINILM = os.path.join(CACHE, "minilm", "tokenizer.json")
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")

STRINGS = [
    "Hello world",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
    "  leading spaces and trailing   ",
    "Line one\nLine two\n\n\tTabbed line",
    "Numbers: 12345, 3.14159 and 2024-11-29; phone +44 20 7946 0958.",
    "Contractions: I'm, you're, he's, we've, they'll, she'd, don't, CAN'T.",
    "Punctuation!!! ... ??? (brackets) [square] {curly} <angle> @#$%^&*_=+~`|\\/",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00a31,000 \u20ac5",
    "\u201cCurly quotes\u201d \u2014 em dash \u2013 en dash \u2026 ellipsis",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 and \u4e2d\u6587 mixed",
    "Emoji \U0001F600\U0001F680 and symbols \u2713 \u00d7 \u00f7",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5",
    "code: def f(x):\n    return x**2  # square\n",
    "Captain Wentworth\u2019s letter\u2014\"I can listen no longer in silence.\"",
    "",
    " ",
    "a",
    "\n\n\n",
    "x\u00a0y\u2003z",
    "ALLCAPS lowercase MiXeD CamelCaseWord snake_case_word",
]
SPECIAL_STRINGS = ["<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"]


def field_strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def field_ints(reader, key):
    f = reader.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def smollm2_tokenizer(reader):
    tokens = field_strings(reader, "tokenizer.ggml.tokens")
    merges = field_strings(reader, "tokenizer.ggml.merges")
    types = field_ints(reader, "tokenizer.ggml.token_type")
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges])
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True) for t, k in zip(tokens, types) if k == 3])
    return tok


def rope_half(x, theta):  # x (T, heads, d): Hugging Face's rotate-half rotary embedding
    t, _, d = x.shape
    inv = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.arange(t)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def smollm2_logits(reader, ids):
    def meta(key):
        return reader.fields[key].parts[reader.fields[key].data[0]][0]
    layers, heads, kv = int(meta("llama.block_count")), int(meta("llama.attention.head_count")), int(meta("llama.attention.head_count_kv"))
    theta, eps = float(meta("llama.rope.freq_base")), float(meta("llama.attention.layer_norm_rms_epsilon"))
    w = {}
    for t in reader.tensors:
        w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape([int(s) for s in reversed(t.shape)])

    def unpermute(m, n_head):  # llama.cpp's convert permutes q/k rows for its interleaved rope
        rows = m.shape[0]
        return m.reshape(n_head, rows // n_head // 2, 2, -1).swapaxes(1, 2).reshape(m.shape)

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    x = w["token_embd.weight"][ids]
    t = len(ids)
    for l in range(layers):
        p = f"blk.{l}."
        h = rms(x, w[p + "attn_norm.weight"])
        q = h @ unpermute(w[p + "attn_q.weight"], heads).T
        k = h @ unpermute(w[p + "attn_k.weight"], kv).T
        v = h @ w[p + "attn_v.weight"].T
        d = q.shape[1] // heads
        q = rope_half(q.reshape(t, heads, d), theta)
        k = rope_half(k.reshape(t, kv, d), theta)
        v = v.reshape(t, kv, d)
        out = np.zeros((t, heads, d))
        for hh in range(heads):
            s = q[:, hh] @ k[:, hh // (heads // kv)].T / np.sqrt(d)
            s = s + np.triu(np.full((t, t), -np.inf), 1)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            out[:, hh] = s @ v[:, hh // (heads // kv)]
        x = x + out.reshape(t, -1) @ w[p + "attn_output.weight"].T
        h = rms(x, w[p + "ffn_norm.weight"])
        g = h @ w[p + "ffn_gate.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ w[p + "ffn_up.weight"].T)) @ w[p + "ffn_down.weight"].T
    x = rms(x, w["output_norm.weight"])
    head = w.get("output.weight", w["token_embd.weight"])
    return x @ head.T


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=kinds[e["dtype"]]).reshape(e["shape"]).astype(np.float64)
    return out


def minilm_embedding(w, config, ids):
    heads, eps = config["num_attention_heads"], config["layer_norm_eps"]

    def ln(x, p):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + eps) * w[p + ".weight"] + w[p + ".bias"]

    def dense(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    erf = np.vectorize(math.erf)
    t = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t]
    x = ln(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    for l in range(config["num_hidden_layers"]):
        p = "encoder.layer.%d." % l
        q, k, v = (dense(x, p + "attention.self." + n) for n in ("query", "key", "value"))
        d = q.shape[1] // heads
        ctx = np.zeros_like(q)
        for h in range(heads):
            s = slice(h * d, (h + 1) * d)
            scores = q[:, s] @ k[:, s].T / math.sqrt(d)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            ctx[:, s] = (scores / scores.sum(-1, keepdims=True)) @ v[:, s]
        x = ln(x + dense(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        i = dense(x, p + "intermediate.dense")
        i = 0.5 * i * (1 + erf(i / math.sqrt(2)))
        x = ln(x + dense(i, p + "output.dense"), p + "output.LayerNorm")
    return x.mean(0)


MINILM_SENTENCES = [
    "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who never took up any book but the Baronetage.",
    "Anne had been a very pretty girl.",
    "How quick come the reasons for approving what we like!",
]


def minilm_fixture():
    folder = os.path.dirname(MINILM)
    w = read_safetensors(os.path.join(folder, "model.safetensors"))
    config = json.load(open(os.path.join(folder, "config.json")))
    mini = Tokenizer.from_file(MINILM)
    mini.no_padding()
    mini.no_truncation()
    rows = []
    for s in MINILM_SENTENCES:
        ids = mini.encode(s).ids
        rows.append({"text": s, "ids": ids, "embedding": [float(v) for v in minilm_embedding(w, config, ids)]})
    with open(os.path.join(FIXTURES, "minilm_embeddings.json"), "w") as f:
        json.dump({"made_by": "tools/make_llm_fixtures.py: numpy float64 BERT forward + mean pooling",
                   "sentences": rows}, f, indent=1)


def main():
    minilm_fixture()
    if "--minilm-only" in sys.argv:
        return
    reader = GGUFReader(GGUF)
    smol = smollm2_tokenizer(reader)
    mini = Tokenizer.from_file(MINILM)
    mini.no_padding()
    mini.no_truncation()
    out = {
        "made_by": "tools/make_llm_fixtures.py with the PyPI tokenizers package",
        "smollm2": [{"text": s, "ids": smol.encode(s, add_special_tokens=False).ids} for s in STRINGS + SPECIAL_STRINGS],
        "minilm": [{"text": s, "ids": mini.encode(s).ids} for s in STRINGS],
    }
    with open(os.path.join(FIXTURES, "llm_tokenizers.json"), "w") as f:
        json.dump(out, f, ensure_ascii=True, indent=1)

    ids = smol.encode("It is a truth universally acknowledged, that a single").ids
    logits = smollm2_logits(reader, ids)
    last = logits[-1]
    top = np.argsort(-last)[:10]
    ref = {"made_by": "tools/make_llm_fixtures.py: numpy float64 forward of the GGUF weights",
           "ids": ids, "top_ids": [int(i) for i in top], "top_logits": [float(last[i]) for i in top],
           "first_position_logits_sample": [[int(i), float(logits[0][i])] for i in range(0, 49152, 4099)],
           "last_logits_rms": float(np.sqrt((last ** 2).mean()))}
    with open(os.path.join(FIXTURES, "smollm2_logits.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print("greedy next token:", top[0], repr(smol.decode([int(top[0])])))


if __name__ == "__main__":
    main()
