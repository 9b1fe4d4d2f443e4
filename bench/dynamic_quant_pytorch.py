#!/usr/bin/env python3
"""PyTorch's dynamic quantization on the cases of bench/dynamic_quant_bench.cpp: 24 x Linear(4096,
4096) at batch 1 and 64, LSTM(512, 512) over 100 steps at batch 1 and 32; f32 and
torch.ao.quantization.quantize_dynamic (int8 per-channel weights) under every quantized engine
this build supports. Prints one JSON object of median milliseconds. Needs Debian's python3-torch.
Usage: /usr/bin/python3 bench/dynamic_quant_pytorch.py [--threads 2] [--repeats 7]"""
import argparse, json, statistics, time

import torch
from torch.ao.quantization import default_per_channel_qconfig, per_channel_dynamic_qconfig, quantize_dynamic


def median_ms(model, x, repeats):
    with torch.inference_mode():
        model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


class LstmOnly(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.lstm = torch.nn.LSTM(width, width, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = {
        "linear24x4096": (lambda: torch.nn.Sequential(*[torch.nn.Linear(4096, 4096) for _ in range(24)]),
                          [(1, 4096), (64, 4096)], {torch.nn.Linear}),
        "lstm512x100": (lambda: LstmOnly(512), [(1, 100, 512), (32, 100, 512)], {torch.nn.LSTM}),
    }
    out = {"threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
           "engines": [e for e in torch.backends.quantized.supported_engines if e != "none"]}
    for name, (make, shapes, kinds) in cases.items():
        model = make().eval()
        for shape in shapes:
            x = torch.randn(*shape)
            entry = {"f32_ms": median_ms(model, x, args.repeats)}
            for engine in out["engines"]:
                torch.backends.quantized.engine = engine
                try:
                    q = quantize_dynamic(model, {k: per_channel_dynamic_qconfig for k in kinds}, dtype=torch.qint8)
                    entry[f"{engine}_ms"] = median_ms(q, x, args.repeats)
                except Exception as error:  # an engine that cannot run a case is reported, not fatal
                    entry[f"{engine}_error"] = str(error).splitlines()[0]
            out[f"{name}_b{shape[0]}"] = entry
    print(json.dumps(out))


if __name__ == "__main__":
    main()
