"""Planted bugs vs the doctor: which checks flag each bug, and which flag its healthy twin (false alarms).

Every model, dataset and loop here is plain PyTorch written for this benchmark; the doctor sees them only through
``trainwell.doctor.check`` (all ten pre-flight checks) and, for the bugs that only show while training,
``trainwell.doctor.watch`` around a hand-written SGD loop. Each bug has a twin that differs only by the fix.

Usage: OMP_NUM_THREADS=1 python benchmarks/planted_bugs.py
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

D, C, N = 8, 3, 512


def blobs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(N) % C
    return 3.0 * torch.randn(C, D, generator=g)[y] + torch.randn(N, D, generator=g), y


def xor(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g)
    x[:, 2:] = 0  # XOR of two coordinates: 20 points in 8 noisy dimensions would be linearly separable
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()


def mlp(act=nn.ReLU, width=64, out=C, seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, width), act(), nn.Linear(width, width), act(), nn.Linear(width, out))


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, wrong):
        ctx.save_for_backward(x)
        ctx.wrong = wrong
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x if ctx.wrong else 2 * x), None


class Square(nn.Module):
    def __init__(self, wrong: bool):
        super().__init__()
        self.wrong = wrong

    def forward(self, x):
        return _Square.apply(x, self.wrong)


class StuckBatchNorm(nn.BatchNorm1d):
    """Batch statistics even in eval mode."""

    def forward(self, x):
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True)


class SoftmaxTwice(nn.Module):
    def __init__(self, bug: bool):
        super().__init__()
        self.net, self.bug = mlp(), bug

    def forward(self, x):
        out = self.net(x)
        return out.softmax(1) if self.bug else out


def deep(bug: bool) -> nn.Sequential:
    torch.manual_seed(0)
    layers, d = [], D
    for _ in range(20):
        lin = nn.Linear(d, 64)
        if bug:
            nn.init.normal_(lin.weight, std=0.3 / math.sqrt(d))  # too small for tanh: the signal fades
        else:
            nn.init.xavier_normal_(lin.weight, gain=5 / 3)
        layers += [lin, nn.Tanh()]
        d = 64
    return nn.Sequential(*layers, nn.Linear(d, C))


def scaled_last(bug: bool) -> nn.Sequential:
    m = mlp()
    if bug:
        with torch.no_grad():
            m[4].weight.mul_(100)
    return m


def zero_init(bug: bool) -> nn.Sequential:
    m = mlp()
    if bug:
        for p in m.parameters():
            nn.init.zeros_(p)
    return m


def dead(bug: bool) -> nn.Sequential:
    m = mlp()
    if bug:
        with torch.no_grad():
            m[0].bias.fill_(-100.0)
    return m


def shuffled(y: torch.Tensor) -> torch.Tensor:
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]


def with_nan(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[3, 2] = math.nan
    return x


def l2(strength: float):
    def penalty(m):
        return 0.5 * strength * sum((p * p).sum() for p in m.parameters() if p.dim() > 1)
    return penalty


# name, expected detector, (model, x, y, penalty) for (bug, twin), learning rate for the watched loop
def cases():
    xb, yb = blobs()
    xx, yx = xor()
    return [
        ("zero init", "symmetry", lambda b: (zero_init(b), xb, yb, None)),
        ("last layer x100", "initial loss", lambda b: (scaled_last(b), xb, yb, None)),
        ("wrong custom backward", "gradient check", lambda b: (
            nn.Sequential(nn.Linear(D, 16), Square(wrong=b), nn.Linear(16, C)), xb, yb, None)),
        ("labels shuffled against inputs", "input-independent baseline", lambda b: (
            mlp(width=256), xb, shuffled(yb) if b else yb, None)),
        ("BatchNorm stuck in train mode", "batch independence", lambda b: (
            nn.Sequential(nn.Linear(D, 32), (StuckBatchNorm if b else nn.BatchNorm1d)(32), nn.ReLU(),
                          nn.Linear(32, C)), xb, yb, None)),
        ("no nonlinearity (XOR)", "overfit a tiny subset", lambda b: (
            mlp(act=nn.Identity if b else nn.ReLU), xx, yx, None)),
        ("20 tanh layers, tiny init", "variance propagation", lambda b: (deep(b), xb, yb, None)),
        ("penalty 1e6x too strong", "regularization vs data loss", lambda b: (
            mlp(), xb, yb, l2(100.0 if b else 1e-4))),
        ("softmax before CrossEntropyLoss", "overfit a tiny subset", lambda b: (SoftmaxTwice(b), xb, yb, None)),
        ("unnormalized inputs (x 1000)", "initial loss", lambda b: (mlp(), xb * 1000 if b else xb, yb, None)),
        ("NaN in the inputs", "initial loss", lambda b: (mlp(), with_nan(xb) if b else xb, yb, None)),
        ("dead ReLUs (bias -100)", "overfit a tiny subset", lambda b: (dead(b), xb, yb, None)),
        ("penalty that ignores its weights", "regularization raises loss", lambda b: (
            mlp(), xb, yb, (lambda m: torch.zeros(())) if b else l2(1e-3))),
    ]


def watched_cases():
    """Bugs that only show while training: a hand-written SGD loop under doctor.watch."""
    return [
        ("learning rate 100x too high", "learning rate (loss curve)", 30.0, 0.1),
        ("learning rate 1000x too low", "learning rate (loss curve)", 1e-4, 0.1),
        ("dead ReLUs while training", "monitor: dead ReLUs", "dead", 0.1),
    ]


def flagged(report) -> list[str]:
    return list(dict.fromkeys(f"{v.check} ({v.status})" for v in report if v.status != "pass"))


def watch_run(lr, bug_model: bool):
    x, y = blobs()
    model = dead(True) if bug_model else mlp()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    with doctor.watch(model, opt, every=25, batch_size=32) as w:
        for _ in range(20):
            perm = torch.randperm(N, generator=g)
            for i in range(0, N, 32):
                idx = perm[i : i + 32]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    return w.report()


def main() -> None:
    tic = time.perf_counter()
    rows, caught, alarms = [], 0, 0
    for name, detector, make in cases():
        bug = doctor.check(*make(True)[:3], F.cross_entropy, penalty=make(True)[3])
        twin = doctor.check(*make(False)[:3], F.cross_entropy, penalty=make(False)[3])
        hit = any(v.check.startswith(detector) and v.status != "pass" for v in bug)
        caught += hit
        alarms += bool(twin.failed)
        rows.append((name, detector, hit, flagged(bug), flagged(twin)))
    for name, detector, lr, twin_lr in watched_cases():
        bug = watch_run(0.1 if lr == "dead" else lr, lr == "dead")
        twin = watch_run(twin_lr, False)
        hit = any(v.check.startswith(detector) and v.status != "pass" for v in bug)
        caught += hit
        alarms += bool(twin.failed)
        rows.append((name + " (watch)", detector, hit, flagged(bug), flagged(twin)))
    print("| planted bug | expected detector | caught | checks that flag the bug | checks that flag the healthy twin |")
    print("|---|---|---|---|---|")
    for name, detector, hit, bug, twin in rows:
        print(f"| {name} | {detector} | {'yes' if hit else '**no**'} | {'; '.join(bug) or '-'} | "
              f"{'; '.join(twin) or '-'} |")
    print(f"\n{caught}/{len(rows)} bugs caught by their expected check; {alarms} healthy twins with a fail; "
          f"{time.perf_counter() - tic:.0f} s\n")
    checks = dict.fromkeys(f.rsplit(" (", 1)[0] for row in rows for f in row[3] + row[4])
    print("| check | bugs it flags (fail / warn) | healthy twins it flags (fail / warn) |\n|---|---|---|")
    for check in checks:
        def count(col, status, check=check):
            return sum(f"{check} ({status})" in row[col] for row in rows)
        print(f"| {check} | {count(3, 'fail')} / {count(3, 'warn')} | {count(4, 'fail')} / {count(4, 'warn')} |")


if __name__ == "__main__":
    main()
