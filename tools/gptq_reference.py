#!/usr/bin/python3
"""A reference GPTQ in PyTorch, step for step as the paper's published code (gptq.py's
fasterquant and quant.py's Quantizer; Frantar et al. 2022) describes it, written here so that
shrink's C++ GPTQ can be checked against it (tests/fixtures/gptq_reference.safetensors) and timed
side by side (bench/gptq_compare.sh). Needs Debian's python3-torch (/usr/bin/python3).

    /usr/bin/python3 tools/gptq_reference.py fixtures      # writes the test fixture
    /usr/bin/python3 tools/gptq_reference.py time W.bin H.bin ROWS COLS BITS GROUP THREADS REPS
"""
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_torch_fixtures import write_safetensors  # noqa: E402


def find_params(x, bits, sym):  # per row of x: the GPTQ convention
    maxq = 2 ** bits - 1
    zero = torch.zeros(x.shape[0])
    xmin = torch.minimum(x.min(1)[0], zero)
    xmax = torch.maximum(x.max(1)[0], zero)
    if sym:
        xmax = torch.maximum(torch.abs(xmin), xmax)
        neg = xmin < 0
        xmin[neg] = -xmax[neg]
    both = (xmin == 0) & (xmax == 0)
    xmin[both], xmax[both] = -1, 1
    scale = (xmax - xmin) / maxq
    zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1), maxq


def fake_quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def gptq(W, H, bits=4, groupsize=128, sym=False, percdamp=0.01, blocksize=128, actorder=False, static_groups=False):
    W = W.clone().float()
    H = H.clone()
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    groups = []
    if static_groups:
        for i in range(0, columns, groupsize):
            groups.append(find_params(W[:, i:i + groupsize], bits, sym))
    if actorder:
        perm = torch.argsort(torch.diag(H), descending=True, stable=True)
        W, H = W[:, perm], H[perm][:, perm]
        invperm = torch.argsort(perm)
    Q = torch.zeros_like(W)
    damp = percdamp * torch.mean(torch.diag(H))
    H[range(columns), range(columns)] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    params = None
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w, d = W1[:, i], Hinv1[i, i]
            if static_groups:
                idx = perm[i1 + i] if actorder else i1 + i
                params = groups[idx // groupsize]
            elif (i1 + i) % groupsize == 0:
                params = find_params(W[:, i1 + i:i1 + i + groupsize], bits, sym)
            q = fake_quantize(w.unsqueeze(1), *params).flatten()
            Q[:, i1 + i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    if actorder:
        Q = Q[:, invperm]
    return Q


def fixtures():
    torch.manual_seed(7)
    rows, cols, samples = 48, 256, 600
    # Correlated inputs with uneven scales, one dead input, as real activations are.
    mix = torch.randn(cols, cols) / cols ** 0.5 + torch.eye(cols)
    X = (torch.randn(samples, cols) @ mix) * torch.linspace(0.2, 3.0, cols)
    X[:, 5] = 0
    W = torch.randn(rows, cols) * 0.05
    H = 2 / samples * X.t() @ X
    tensors, cases = {"W": W, "X": X}, []
    for name, kw in [("g128", dict(groupsize=128)), ("g32_sym3", dict(bits=3, groupsize=32, sym=True)),
                     ("g64_act", dict(groupsize=64, actorder=True)),
                     ("g64_act_static", dict(groupsize=64, actorder=True, static_groups=True))]:
        tensors["Q." + name] = gptq(W, H, **kw)
        cases.append({"name": name, **kw})
    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gptq_reference.safetensors"
    write_safetensors(out, tensors, {"cases": json.dumps(cases), "torch": torch.__version__})
    print(f"wrote {out}")


def timing(w_path, h_path, rows, cols, bits, group, threads, reps):
    import numpy as np
    torch.set_num_threads(threads)
    W = torch.from_numpy(np.fromfile(w_path, dtype=np.float32).reshape(rows, cols))
    H = torch.from_numpy(np.fromfile(h_path, dtype=np.float32).reshape(cols, cols))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        Q = gptq(W, H, bits=bits, groupsize=group)
        times.append(time.perf_counter() - start)
    Q.numpy().tofile(w_path + ".torch_q")
    print(json.dumps({"median_s": sorted(times)[len(times) // 2], "times": times}))


if __name__ == "__main__":
    if sys.argv[1] == "fixtures":
        fixtures()
    else:
        a = sys.argv[2:]
        timing(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), int(a[6]), int(a[7]))
