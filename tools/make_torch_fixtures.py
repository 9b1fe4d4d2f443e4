#!/usr/bin/python3
"""Writes tests/fixtures/torch_layers.safetensors: small forward and backward results of PyTorch
layers (Debian's python3-torch), which tests/nn/torch_golden_test.cpp compares shrink's ops with,
so CI needs no PyTorch.

Each case stores, under "<case>.":  input.<i>, param.<name>, grad_output, output, grad_input.<i>,
grad.<name>; the metadata maps "cases" to a JSON list of {name, kind, attrs, training}.
Run:  /usr/bin/python3 tools/make_torch_fixtures.py
"""
import json
import struct
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(1234)
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "torch_layers.safetensors"


class RMSNorm(nn.Module):  # torch 1.13 has none; the formula of Zhang & Sennrich 2019 / LLaMA
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(d) + 0.5)
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def randomize(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if name == "weight" and p.dim() == 1 else 0.0))
        for name, b in module.named_buffers():
            if name == "running_mean":
                b.copy_(torch.randn_like(b) * 0.2)
            elif name == "running_var":
                b.copy_(torch.rand_like(b) + 0.5)
    return module


class CausalAttention(nn.Module):
    """Reference for shrink's Attention node: q, k, v already projected; causal; grouped kv heads;
    rotary embedding in Hugging Face Llama's rotate-half layout."""

    def __init__(self, heads, kv_heads, rope, theta=10000.0):
        super().__init__()
        self.heads, self.kv_heads, self.rope, self.theta = heads, kv_heads, rope, theta

    def rotate(self, x):  # x (N, T, heads, d)
        d, t = x.shape[-1], x.shape[1]
        freq = self.theta ** (-torch.arange(0, d // 2, dtype=torch.float64) * 2 / d)
        angle = torch.arange(t, dtype=torch.float64)[:, None] * freq[None, :]
        cos = torch.cat([angle.cos(), angle.cos()], -1).float()[None, :, None, :]
        sin = torch.cat([angle.sin(), angle.sin()], -1).float()[None, :, None, :]
        half = torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)
        return x * cos + half * sin

    def forward(self, q, k, v):
        n, t, _ = q.shape
        d = q.shape[-1] // self.heads
        q, k, v = q.view(n, t, self.heads, d), k.view(n, t, self.kv_heads, d), v.view(n, t, self.kv_heads, d)
        if self.rope:
            q, k = self.rotate(q), self.rotate(k)
        group = self.heads // self.kv_heads
        k, v = k.repeat_interleave(group, 2), v.repeat_interleave(group, 2)
        scores = torch.einsum("nthd,nshd->nhts", q, k) / d ** 0.5
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        p = scores.masked_fill(mask, float("-inf")).softmax(-1)
        return torch.einsum("nhts,nshd->nthd", p, v).reshape(n, t, self.heads * d)


class BatchFirst(nn.Module):  # LSTM/GRU returning only the output sequence
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


def cases():
    yield "linear", "Linear", {"in_features": 6, "out_features": 4}, nn.Linear(6, 4), [torch.randn(3, 2, 6)], True
    yield ("conv_groups", "Conv2d",
           {"in_channels": 4, "out_channels": 6, "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 0],
            "dilation": [1, 2], "groups": 2},
           nn.Conv2d(4, 6, (3, 2), (2, 1), (1, 0), (1, 2), groups=2), [torch.randn(2, 4, 7, 6)], True)
    yield ("conv_depthwise", "Conv2d",
           {"in_channels": 3, "out_channels": 3, "kernel_size": 3, "padding": 1, "groups": 3},
           nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False), [torch.randn(2, 3, 5, 5)], True)
    yield ("batchnorm2d_train", "BatchNorm2d", {"num_features": 3}, nn.BatchNorm2d(3), [torch.randn(4, 3, 3, 2)], True)
    yield ("batchnorm2d_eval", "BatchNorm2d", {"num_features": 3}, nn.BatchNorm2d(3), [torch.randn(4, 3, 3, 2)], False)
    yield ("batchnorm1d_train", "BatchNorm1d", {"num_features": 5}, nn.BatchNorm1d(5), [torch.randn(6, 5)], True)
    yield ("layernorm", "LayerNorm", {"normalized_shape": 8}, nn.LayerNorm(8), [torch.randn(2, 3, 8)], True)
    yield ("rmsnorm", "RMSNorm", {"normalized_shape": 8, "eps": 1e-6}, RMSNorm(8), [torch.randn(3, 8)], True)
    yield "gelu", "GELU", {}, nn.GELU(), [torch.randn(4, 5) * 2], True
    yield "gelu_tanh", "GELU", {"approximate": "tanh"}, nn.GELU(approximate="tanh"), [torch.randn(4, 5) * 2], True
    yield "silu", "SiLU", {}, nn.SiLU(), [torch.randn(4, 5) * 2], True
    yield "relu", "ReLU", {}, nn.ReLU(), [torch.randn(4, 5) * 2], True
    yield "relu6", "ReLU6", {}, nn.ReLU6(), [torch.randn(4, 5) * 5], True
    yield "tanh", "Tanh", {}, nn.Tanh(), [torch.randn(4, 5) * 2], True
    yield "sigmoid", "Sigmoid", {}, nn.Sigmoid(), [torch.randn(4, 5) * 2], True
    yield "softmax", "Softmax", {"axis": -1}, nn.Softmax(-1), [torch.randn(3, 7) * 2], True
    yield ("maxpool", "MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1}, nn.MaxPool2d(3, 2, 1),
           [torch.randn(2, 2, 7, 6)], True)
    yield ("avgpool", "AvgPool2d", {"kernel_size": 3, "stride": 2, "padding": 1}, nn.AvgPool2d(3, 2, 1),
           [torch.randn(2, 2, 7, 6)], True)
    yield ("adaptive_avgpool", "AdaptiveAvgPool2d", {"output_size": [3, 2]}, nn.AdaptiveAvgPool2d((3, 2)),
           [torch.randn(2, 3, 7, 5)], True)
    yield ("lstm", "LSTM", {"input_size": 3, "hidden_size": 5, "num_layers": 2},
           BatchFirst(nn.LSTM(3, 5, 2, batch_first=True)), [torch.randn(2, 4, 3)], True)
    yield ("gru", "GRU", {"input_size": 3, "hidden_size": 5, "num_layers": 2},
           BatchFirst(nn.GRU(3, 5, 2, batch_first=True)), [torch.randn(2, 4, 3)], True)
    yield ("attention_gqa_rope", "Attention", {"num_heads": 4, "num_kv_heads": 2, "rope": True},
           CausalAttention(4, 2, True), [torch.randn(2, 6, 16), torch.randn(2, 6, 8), torch.randn(2, 6, 8)], True)


def main():
    tensors, meta = {}, []
    for name, kind, attrs, module, inputs, training in cases():
        randomize(module)
        module.train(training)
        inputs = [t.clone().requires_grad_(True) for t in inputs]
        params = {k.removeprefix("rnn."): v for k, v in module.named_parameters()}
        buffers = {k: v.clone() for k, v in module.named_buffers() if k != "num_batches_tracked"}
        for k, v in params.items():
            tensors[f"{name}.param.{k}"] = v.detach().clone()
        for k, v in buffers.items():
            tensors[f"{name}.param.{k}"] = v
        out = module(*inputs)
        grad_out = torch.randn_like(out)
        out.backward(grad_out)
        for i, t in enumerate(inputs):
            tensors[f"{name}.input.{i}"] = t.detach()
            tensors[f"{name}.grad_input.{i}"] = t.grad
        tensors[f"{name}.output"] = out.detach()
        tensors[f"{name}.grad_output"] = grad_out
        for k, v in params.items():
            tensors[f"{name}.grad.{k}"] = v.grad
        for k, v in module.named_buffers():
            if k != "num_batches_tracked":
                tensors[f"{name}.after.{k}"] = v.detach().clone()
        meta.append({"name": name, "kind": kind, "attrs": attrs, "training": training})
    # Losses: logits and targets with PyTorch's values and gradients.
    logits = torch.randn(5, 7, requires_grad=True)
    targets = torch.tensor([0, 3, 6, 2, 3])
    F.cross_entropy(logits, targets, label_smoothing=0.1).backward()
    tensors["loss_ce.logits"], tensors["loss_ce.grad"] = logits.detach(), logits.grad
    tensors["loss_ce.targets"] = targets
    tensors["loss_ce.value"] = F.cross_entropy(logits, targets, label_smoothing=0.1).detach().reshape(1)
    student = torch.randn(4, 6, requires_grad=True)
    teacher = torch.randn(4, 6)
    temperature = 3.0
    kl = F.kl_div(F.log_softmax(student / temperature, -1), F.softmax(teacher / temperature, -1),
                  reduction="batchmean") * temperature ** 2
    kl.backward()
    tensors["loss_kl.student"], tensors["loss_kl.teacher"] = student.detach(), teacher
    tensors["loss_kl.grad"], tensors["loss_kl.value"] = student.grad, kl.detach().reshape(1)
    write_safetensors(OUT, tensors, {"cases": json.dumps(meta), "kl_temperature": str(temperature),
                                     "ce_label_smoothing": "0.1", "torch": torch.__version__})
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(meta)} layer cases)")


def write_safetensors(path, tensors, metadata):
    names = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


if __name__ == "__main__":
    sys.exit(main())
