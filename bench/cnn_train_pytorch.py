#!/usr/bin/python3
"""The zoo's Fashion-MNIST CNN in PyTorch (Debian's python3-torch), trained on random data of the
same shape for timing: prints samples/s of AdamW training steps (median of repetitions).
Used by bench/cnn_train_throughput.sh to compare with `shrink train` side by side."""
import argparse, json, statistics, time

import torch
import torch.nn as nn


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(self.body(x) + x)


def build(c=32):
    return nn.Sequential(
        nn.Conv2d(1, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
        Residual(c),
        nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU(),
        Residual(2 * c),
        nn.Flatten(), nn.Linear(2 * c * 49, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    x = torch.randn(args.batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch_size,))
    loss_fn = nn.CrossEntropyLoss()
    rates = []
    for repeat in range(args.repeats + 1):
        start = time.perf_counter()
        for _ in range(args.steps):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        if repeat:  # the first pass warms up
            rates.append(args.steps * args.batch_size / seconds)
    print(json.dumps({"framework": f"pytorch {torch.__version__}", "threads": args.threads,
                      "samples_per_second": statistics.median(rates), "repeats": rates}))


if __name__ == "__main__":
    main()
