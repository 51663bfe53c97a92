"""Bugs people write in their own training loops vs the doctor: is each one caught by the right cause?

Every case is a hand-written PyTorch loop (no trainwell trainer), run through the public API exactly as the README
shows: ``doctor.check(model, x, y, loss_fn, optimizer=opt)`` before training, ``doctor.watch(model, opt)`` around
the loop with ``w.step(loss, y=y)`` per step and ``w.validate(val_loss)`` per epoch, then ``w.report(...)``. Each
bug has a healthy twin that differs only by the fix. The bugs are the ones public bug reports and Q&A threads
keep showing (a missing ``zero_grad``, an optimizer on a copy, ``eval()`` left on, a per-epoch scheduler stepped
per batch, a double softmax, unshuffled data, ...).

Per bug: "right" (a warn/fail verdict names the planted cause), "other" (alarms, for another reason), "missed".
Per twin: the fails and warns it gets (false alarms).

Usage: OMP_NUM_THREADS=1 python benchmarks/loop_bugs.py [--only NAME ...] [--every 20]
The same loops with no doctor call in them (``run(cfg, calls=Plain())``), under ``trainwell watch``:
benchmarks/watch_bugs.py.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import platform
import time
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from trainwell import doctor

D, C, N, NV, BATCH, EPOCHS = 8, 4, 1024, 256, 32, 5


def blobs(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(C, D, generator=torch.Generator().manual_seed(123))
    y = torch.randint(0, C, (n,), generator=g)
    return centers[y] + torch.randn(n, D, generator=g), y


class Net(nn.Module):
    """An MLP with dropout; ``kind`` plants model-side bugs."""

    def __init__(self, kind: str = "", classes: int = C):
        super().__init__()
        self.kind = kind
        if kind == "python_list":
            self.layers = [nn.Linear(D, 64), nn.Linear(64, 64)]  # not registered
        elif kind == "repeated":  # [layer] * 2: one Linear applied twice
            self.layers = nn.ModuleList([nn.Linear(D, 64)] + [nn.Linear(64, 64)] * 2)
        elif kind.startswith("deep"):  # six hidden layers ("deep_sigmoid": torch.sigmoid between them, not ReLU)
            self.layers = nn.ModuleList([nn.Linear(D, 64)] + [nn.Linear(64, 64) for _ in range(5)])
        elif kind == "three_layers":
            self.layers = nn.ModuleList([nn.Linear(D, 64), nn.Linear(64, 64), nn.Linear(64, 64)])
        else:
            self.layers = nn.ModuleList([nn.Linear(D, 64), nn.Linear(64, 64)])
        self.drop = nn.Dropout(0.9 if kind == "keep_as_p" else 0.1)  # keep_as_p: p written as keeping probability
        # input_dropout: dropout on the inputs, p = 0.9 written to keep 90% ("_ok": p = 0.2, 80% kept)
        self.in_drop = nn.Dropout(0.2 if kind == "input_dropout_ok" else 0.9) if kind.startswith("input_dropout") \
            else None
        # own_layer: a hand-written layer after the hidden ones, h @ w.T, its weight a plain tensor made with
        # requires_grad=True ("_plain": not an nn.Parameter, so not in model.parameters()) or an nn.Parameter
        if kind.startswith("own_layer"):
            w = torch.randn(64, 64) / 8
            self.own = w.requires_grad_() if kind == "own_layer_plain" else nn.Parameter(w)
        self.blocks = nn.ModuleList([_Residual(64, twice=kind == "residual_twice") for _ in range(6)]) \
            if kind.startswith("residual") else None
        self.norms = nn.ModuleList([nn.BatchNorm1d(64, momentum=0.99 if kind == "batchnorm_keras" else 0.1)
                                    for _ in self.layers]) if kind in ("batchnorm", "batchnorm_keras") else \
            nn.ModuleList([nn.BatchNorm1d(64)]) if kind == "batchnorm_shared" else \
            nn.ModuleList([nn.GroupNorm(64 if kind == "groupnorm_per_unit" else 8, 64) for _ in self.layers]) \
            if kind.startswith("groupnorm") else None  # groupnorm_per_unit: one value per group
        # attention: the 64 hidden units read as 8 tokens of 8 features, attended over (batch_first, or not)
        self.attend = nn.TransformerEncoderLayer(8, 2, 32, dropout=0.0, batch_first=kind != "attention_seq_first") \
            if kind.startswith("attention") else None
        # attention_posenc: sinusoidal positions of the 8 tokens added first; "_batch": the tutorial's (T, B, d)
        # buffer (max_len, 1, 8) sliced by x.size(0), the batch, on these batch-first tokens
        # birnn: the 64 hidden units read as 8 steps of 8 features by a bidirectional GRU, its final states taken;
        # "_last": its output at the last step (out[:, -1]), where the backward half has read one step
        # gru: one GRU over the same 8 steps, its output at the last step read; "_seq_first": built without
        # batch_first=True and fed the (B, 8, 8) batch, which it reads as 8 sequences running over the batch
        # gru2: two stacked GRU layers, the final state of the last layer read (h_n[-1]); "_first": h_n[0], the
        # first layer's; gru_view / gru_transposed: a GRU without batch_first fed the (B, 8, 8) steps made
        # sequence-first by .view(8, B, 8) (the rows scrambled across the batch) or by .transpose(0, 1)
        self.rnn = nn.GRU(8, 32, batch_first=True, bidirectional=True) if kind.startswith("birnn") else \
            nn.GRU(8, 64, num_layers=2, batch_first=True) if kind.startswith("gru2") else \
            nn.GRU(8, 64, batch_first=kind == "gru") if kind.startswith("gru") else None
        if kind.startswith("attention_posenc"):
            self.register_buffer("pe", _sinusoids(5000, 8))
        # cosine_*: a cosine classifier, normalize(h) @ normalize(W).T times a scale (16, or 1: "_unscaled")
        # head_in_forward: the output layer constructed inside forward (nn.Linear(64, classes)(h)): new weights at
        # every call, never the model's; normalize_*: the features scaled to unit length before the head, over the
        # batch ("_batch": F.normalize(h, dim=0)) or per example ("_rows": dim=1), times 8
        self.head = nn.Linear(64, classes, bias=not kind.startswith("cosine")) if kind != "head_in_forward" else None
        self.classes = classes
        self.side = nn.Linear(D, 64) if kind in ("detached", "branch") else None
        self.aux = nn.Linear(64, 2) if kind in ("aux", "aux_ok") else nn.Linear(64, 3) if kind in ("aux3", "tasks") \
            else nn.Sequential(nn.Linear(64, 3), nn.Softmax(dim=1)) if kind == "aux3_softmax" else \
            nn.Linear(64, 4) if kind == "tasks_one_based" else None
        self.softmax = {"softmax": nn.Softmax(dim=1), "sigmoid": nn.Sigmoid(), "relu_head": nn.ReLU(),
                        "dropout_head": nn.Dropout(0.1), "batchnorm_head": nn.BatchNorm1d(classes)}.get(kind)

    def forward(self, x):
        if self.kind == "checkpoint_no_grad":  # a checkpoint called under no_grad: the body builds no graph
            with torch.no_grad():
                h = checkpoint(self._body, x, use_reentrant=False)
        elif self.kind.startswith("checkpoint"):  # the body recomputed in backward; reentrant on the data tensor
            h = checkpoint(self._body, x, use_reentrant=self.kind == "checkpoint_reentrant")
        elif self.kind == "no_grad_body":  # the hidden layers under no_grad by mistake
            with torch.no_grad():
                h = self._body(x)
        else:
            h = self._body(x)
        if self.side is not None:
            s = F.relu(self.side(x))
            h = h + (s.detach() if self.kind == "detached" else s)
        if self.kind == "skip_head":  # forward returns the hidden features (return h, meant return self.head(h))
            self.head(h)
            return h
        if self.kind == "head_in_forward":
            return nn.Linear(64, self.classes)(h)
        if self.kind.startswith("normalize_"):
            h = 8 * F.normalize(h, dim=0 if self.kind == "normalize_batch" else 1)
        out = self.head(h) if not self.kind.startswith("cosine") else \
            (1.0 if self.kind == "cosine_unscaled" else 16.0) * F.linear(F.normalize(h), F.normalize(self.head.weight))
        if self.softmax is not None:
            out = self.softmax(out)
        if self.kind == "clamp_head":  # the logits clamped "for stability"
            out = out.clamp(-1.0, 1.0)
        if self.kind.startswith("tasks"):  # two tasks' heads in a dict: the label and a second task (t % 3)
            return {"label": out, "rest": self.aux(h)}
        if self.aux is not None:
            return out, self.aux(h)
        return out

    def _body(self, x):
        h = x if self.in_drop is None else self.in_drop(x)
        for k, layer in enumerate(self.layers):
            if self.norms is not None:
                h = self.drop(F.relu(self.norms[min(k, len(self.norms) - 1)](layer(h))))  # _shared: one for all
            elif self.kind == "data_body" and k == 0:  # .data taken in forward: the graph cut after the first layer
                h = self.drop(F.relu(layer(h).data))
            elif self.kind.startswith("functional_dropout"):  # F.dropout: on in eval too unless told the mode
                h = F.dropout(F.relu(layer(h)), 0.1, training=self.training if self.kind.endswith("ok") else True)
            else:
                h = self.drop((torch.sigmoid if self.kind == "deep_sigmoid" else F.relu)(layer(h)))
        for block in self.blocks or []:
            h = block(h)
        if self.kind.startswith("own_layer"):
            h = F.relu(h @ self.own.T)
        if self.attend is not None:  # (B, 8 tokens, 8 features)
            tokens = h.reshape(len(h), 8, 8)
            if self.kind == "attention_posenc":
                tokens = tokens + self.pe[:8].transpose(0, 1)
            elif self.kind == "attention_posenc_batch":
                tokens = tokens + self.pe[: tokens.size(0)]
            h = self.attend(tokens).reshape(len(h), 64)
        if self.kind in ("gru_view", "gru_transposed"):
            steps = h.reshape(len(h), 8, 8)
            out, _ = self.rnn(steps.view(8, len(h), 8) if self.kind == "gru_view" else steps.transpose(0, 1))
            h = out[-1]
        elif self.kind.startswith("gru2"):
            _, last = self.rnn(h.reshape(len(h), 8, 8))
            h = last[0] if self.kind == "gru2_first" else last[-1]
        elif self.rnn is not None:
            out, last = self.rnn(h.reshape(len(h), 8, 8))
            h = out[:, -1] if self.kind in ("birnn_last", "gru", "gru_seq_first") else \
                torch.cat([last[-2], last[-1]], 1)
        return h


def _sinusoids(length: int, d: int) -> torch.Tensor:
    """Sinusoidal positions (Vaswani et al. 2017) as the PyTorch tutorial lays them out: (length, 1, d)."""
    pos = torch.arange(length).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
    pe = torch.zeros(length, 1, d)
    pe[:, 0, 0::2], pe[:, 0, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


class _Residual(nn.Module):
    """x + body(x); with ``twice`` the input is added a second time (x + body(x) + x)."""

    def __init__(self, d: int, twice: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.twice = twice

    def forward(self, x):
        return x + self.body(x) + x if self.twice else x + self.body(x)


@dataclass
class Loop:
    """The knobs of one hand-written loop; defaults are the healthy loop."""

    model: str = ""
    lr: float = 0.1
    zero_grad: str = "before"  # before | never | between (after backward, before step) | each_micro | epoch
    opt_on_copy: bool = False
    freeze: str = ""  # all_but_bias (a slicing mistake) | first (intended)
    unfreeze_body: str = ""  # "" | forgot_optimizer | added
    eval_in_training: bool = False  # model.train() never called again after validation
    no_eval_for_validation: bool = False
    scheduler: str = ""  # per_batch | per_epoch (StepLR); cosine (per optimizer step) | cosine_micro (per micro-batch)
    # | lambda (LambdaLR warm-up then cosine, per batch) | lambda_rate (its function returning lr x factor)
    # | plateau_val | plateau_accuracy (ReduceLROnPlateau per epoch on the validation loss | the training accuracy)
    # | onecycle (OneCycleLR over the run, per batch) | onecycle_each_epoch (one epoch's OneCycleLR made every epoch)
    # | plateau_each_epoch (a ReduceLROnPlateau on the validation loss made every epoch)
    # | each_epoch_lambda (the lambda's LambdaLR made every epoch, its step count from 0) | each_epoch_lambda_continued
    # (made every epoch, its function given the steps of the epochs before: the schedule goes on)
    # | plateau_per_batch (a ReduceLROnPlateau stepped after every batch on that batch's loss)
    # | per_unstepped (StepLR, never stepped) | plateau_unstepped (ReduceLROnPlateau, never stepped)
    # | warmup_capped (LambdaLR: min(1, (s + 1) / warmup), per batch) | warmup_uncapped (without its min(1, ...))
    loss: str = "ce"  # ce | twice | dim0 | aux_item | aux | aux3 | mse_broadcast | mse | focal | kl_probs | kl (...)
    sort: bool = False
    same_batch: bool = False
    one_based: bool = False
    scale_inputs: float = 1.0
    clip: float | None = None
    clip_value: float | None = None  # torch.nn.utils.clip_grad_value_ before the step
    clip_at: str = "step"  # clip_grad_norm_ before step() (healthy) | "backward": before it | "after": after step()
    params_twice: bool = False  # the optimizer's parameter list built twice over (each tensor held twice)
    accumulate: int = 1
    divide_accumulated: bool = True
    amp: bool = False  # forward under torch.autocast (bfloat16 on the CPU), backward through a GradScaler
    zero_init: bool = False
    misalign: bool = False
    skip_step: bool = False
    ragged: bool = False  # N - 31 examples: the last batch holds one example (a DataLoader's drop_last=False)
    target_scale: float = 1.0  # regression targets in raw units: y * scale + 4 * scale
    target_offset: float = 0.0  # added to the regression targets
    head_scale: float = 1.0  # the output layer's initial weights and bias multiplied by it
    init_std: float = 0.0  # every weight drawn from N(0, init_std), biases 0 (the "small random numbers" init)
    he_init: bool = False  # the hidden layers He-initialized (nn.init.kaiming_normal_), biases 0
    watch_micro: bool = False  # w.step() after every micro-batch instead of after optimizer.step()
    step_first: bool = False  # optimizer.step() before loss.backward()
    double_step: bool = False  # optimizer.step() twice per batch
    nan_rows: bool = False  # a few rows of the data hold NaN
    eval_mid_epoch: bool = False  # a validation halfway through each epoch leaves model.eval() on
    weight_decay: float = 0.0
    replace_head: bool = False  # the head replaced after the optimizer was built
    loss_scale: float = 1.0  # a static loss scale written by hand: (loss * loss_scale).backward()
    unscale: bool = True  # .grad divided by loss_scale before clipping and the step
    give_targets: bool = True  # the targets passed to w.step(loss, y=...)
    batch: int = BATCH  # the training batch size
    raw_units: float = 0.0  # the data in raw units (x * raw_units + 3 * raw_units), standardized for training
    val_raw: bool = False  # with raw_units: the validation inputs left raw (else standardized with the training stats)
    keep_best: str = ""  # early stopping's best weights restored after the loop: kept by "reference" | "deepcopy"
    # | "worst" (deep copies kept when val > best_val, best_val = -inf: the loss compared as an accuracy)
    mixup: str = ""  # mixup on the one-hot labels: "one_perm" (inputs and labels by one permutation) | "two_perms"
    extra: dict = field(default_factory=dict)


class Explicit:
    """The doctor's calls as the README shows them: ``doctor.check`` before the loop, ``doctor.watch`` around it."""

    def check(self, *args, **kwargs):
        return doctor.check(*args, **kwargs)

    def watch(self, *args, **kwargs):
        return doctor.watch(*args, **kwargs)


class Plain:
    """The doctor's calls made into nothing: the loop as its user wrote it, with no trainwell in it (the script
    ``trainwell watch`` runs, benchmarks/watch_bugs.py). The losses and validations the loop would have handed the
    watch are kept as numbers, to compare with the explicit watch's."""

    def __init__(self):
        self.losses: list[float] = []
        self.validations: list[float] = []

    def check(self, *args, **kwargs):
        return None

    def watch(self, *args, **kwargs):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def step(self, loss, **kwargs):
        self.losses.append(float(loss.detach() if isinstance(loss, torch.Tensor) else loss))

    def validate(self, value):
        self.validations.append(float(value))

    def report(self, **kwargs):
        return None


def run(cfg: Loop, seed: int = 0, every: int = 20, calls: Explicit | Plain | None = None):
    """Train one loop; returns (check report, watch report). ``calls``: the doctor's calls (:class:`Explicit`, the
    default) or none (:class:`Plain`: both reports None; the same arithmetic, seed for seed)."""
    calls = calls or Explicit()
    torch.manual_seed(seed)
    x, y = blobs(N - 31 if cfg.ragged else N, seed)
    xv, yv = blobs(NV, seed + 1)
    if cfg.extra.get("val_from_train"):  # the validation rows taken from the training rows
        xv, yv = x[:NV].clone(), y[:NV].clone()
    if "sorted_split" in cfg.extra:  # both sets pooled and sorted by class (a file written class by class), the
        rows, labels = torch.cat([x, xv]), torch.cat([y, yv])  # last 30% the validation ("shuffled": shuffled first)
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(4)) \
            if cfg.extra["sorted_split"] == "shuffled" else torch.argsort(labels, stable=True)
        rows, labels, n = rows[order], labels[order], int(0.7 * len(rows))
        mixed = torch.randperm(n, generator=torch.Generator().manual_seed(5))  # the training rows' order: no matter
        x, y, xv, yv = rows[:n][mixed], labels[:n][mixed], rows[n:], labels[n:]
    if cfg.extra.get("imbalanced"):  # class c keeps 1 / 2^c of its rows in both sets (8 : 4 : 2 : 1)
        keep = [torch.rand(len(t), generator=torch.Generator().manual_seed(6)) < 0.5 ** t.float() for t in (y, yv)]
        x, y, xv, yv = x[keep[0]], y[keep[0]], xv[keep[1]], yv[keep[1]]
    if cfg.extra.get("val_rows_shuffled"):  # the validation features shuffled by a permutation their labels missed
        xv = xv[torch.randperm(len(xv), generator=torch.Generator().manual_seed(8))]
    if cfg.extra.get("val_relabelled"):  # the validation labels encoded apart: the same classes, other numbers
        yv = (yv + 1) % C
    if "integer_rows" in cfg.extra:  # the features recorded as integers; "duplicated": 640 rows taken twice, then
        if cfg.extra["integer_rows"] == "duplicated":  # split into the training and the validation rows
            perm = torch.randperm(N + NV, generator=torch.Generator().manual_seed(3))
            rows, labels = torch.cat([x[:640], x[:640]])[perm], torch.cat([y[:640], y[:640]])[perm]
            x, y, xv, yv = rows[:N], labels[:N], rows[N:], labels[N:]
        x, xv = x.round(), xv.round()
    x, xv = x * cfg.scale_inputs, xv * cfg.scale_inputs
    if cfg.extra.get("raw_column"):  # one column (an amount) in raw units, left out of the standardization
        x[:, 0], xv[:, 0] = 1000 + 100 * x[:, 0], 1000 + 100 * xv[:, 0]
    if "dead_column" in cfg.extra:  # a constant column (a dead sensor), standardized by (x - mean) / std: 0 / 0;
        x[:, -1], xv[:, -1] = 0.0, 0.0  # "clamped": the std clamped away from 0 first
        mu, sd = x.mean(0), x.std(0)
        sd = sd.clamp_min(1e-8) if cfg.extra["dead_column"] == "clamped" else sd
        x, xv = (x - mu) / sd, (xv - mu) / sd
    if cfg.extra.get("label_column"):  # the label left as the last feature column (target leakage)
        x, xv = torch.cat([x[:, :-1], y[:, None].float()], 1), torch.cat([xv[:, :-1], yv[:, None].float()], 1)
    if cfg.raw_units:
        x, xv = x * cfg.raw_units + 3 * cfg.raw_units, xv * cfg.raw_units + 3 * cfg.raw_units
        mu, sd = x.mean(0), x.std(0)
        x = (x - mu) / sd
        xv = xv if cfg.val_raw else (xv - mu) / sd
    if cfg.nan_rows:
        x[torch.arange(70, len(x), 97), 3] = math.nan
    if cfg.sort:
        order = y.argsort(stable=True)
        x, y = x[order], y[order]
    if cfg.misalign:
        y = y[torch.randperm(N, generator=torch.Generator().manual_seed(7))]
    classes = C + 1 if cfg.one_based else C
    if cfg.one_based:
        y, yv = y + 1, yv + 1
    regression = cfg.loss.startswith(("mse", "gaussian_nll", "l1"))
    if regression:
        y, yv = ((t[:, 0] - t[:, 1]) * cfg.target_scale + 4 * (cfg.target_scale - 1) + cfg.target_offset
                 for t in (x, xv))
    if "standardized_targets" in cfg.extra:  # regression targets standardized with the training mean and std;
        mu, sd = y.mean(), y.std()  # "val_raw": the validation targets left in raw units
        y, yv = (y - mu) / sd, yv if cfg.extra["standardized_targets"] == "val_raw" else (yv - mu) * sd \
            if cfg.extra["standardized_targets"] == "val_times_sd" else (yv - mu) / sd  # "val_times_sd": * for /
    if cfg.loss.startswith("tag_"):  # a tagger on padded sequences: token ids, a tag per position (0 = <pad>)
        (x, y), (xv, yv) = tagged(N, seed), tagged(NV, seed + 1)
    model = Tagger(cfg.extra.get("padding_idx", 0)) if cfg.loss.startswith("tag_") else \
        Net(cfg.model, 1 if regression or cfg.loss.startswith(("binary_", "class_ids")) else classes)
    if cfg.extra.get("bf16"):  # model.to(torch.bfloat16), its inputs cast to match: pure low-precision training
        model, x, xv = model.to(torch.bfloat16), x.to(torch.bfloat16), xv.to(torch.bfloat16)
    with torch.no_grad():
        if model.head is not None:
            model.head.weight.mul_(cfg.head_scale)
        if model.head is not None and model.head.bias is not None:
            model.head.bias.mul_(cfg.head_scale)
    if cfg.init_std:
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, cfg.init_std)
                nn.init.zeros_(m.bias)
    if cfg.he_init:
        for m in model.layers:
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    if cfg.extra.get("init") == "uniform":  # weights_init with nn.init.uniform_(m.weight): U(0, 1), all positive
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight)
    if cfg.extra.get("init") == "normal":  # weights_init with nn.init.normal_(m.weight): N(0, 1), std 1 whatever
        for m in model.modules():  # the fan-in (64 inputs: each layer's outputs about 8x its inputs)
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight)
                nn.init.zeros_(m.bias)
    if cfg.extra.get("init") == "constant":  # weights_init with nn.init.constant_(m.weight, 0.05): every unit alike
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.constant_(m.weight, 0.05)
    if cfg.zero_init:
        for p in model.parameters():
            nn.init.zeros_(p)
    if cfg.freeze == "all_but_bias":
        for p in list(model.parameters())[:-1]:  # meant [:2]: freezes everything but the output bias
            p.requires_grad = False
    elif cfg.freeze == "first":
        for p in list(model.parameters())[:2]:
            p.requires_grad = False
    if cfg.unfreeze_body:
        for p in model.layers.parameters():
            p.requires_grad = False
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.extra.get("clip_params") == "generator":  # params = model.parameters(): the optimizer uses the generator
        params = model.parameters()  # up, and clip_grad_norm_(params, ...) later gets an empty one ("list": list(...))
    if cfg.params_twice:
        params = params + params
    if "body_lr" in cfg.extra:  # per-parameter-group rates: the hidden layers at body_lr, the head at lr
        body = {id(p) for p in model.layers.parameters()}
        params = [{"params": [p for p in params if id(p) in body], "lr": cfg.extra["body_lr"]},
                  {"params": [p for p in params if id(p) not in body]}]
    with warnings.catch_warnings():  # torch warns about a tensor held twice, and keeps both
        warnings.simplefilter("ignore")
        opt = torch.optim.SGD(copy.deepcopy(model).parameters() if cfg.opt_on_copy else params, lr=cfg.lr,
                              momentum=cfg.extra.get("momentum", 0.9 if cfg.lr < 1 else 0.0),  # "momentum": its own
                              weight_decay=cfg.weight_decay)
    if "adam" in cfg.extra:  # Adam ("Adam": its weight_decay an L2 term added to the gradient, then normalized) or
        # AdamW ("AdamW": the decay decoupled from the gradient, Loshchilov & Hutter 2019), at lr and weight_decay
        opt = getattr(torch.optim, cfg.extra["adam"])(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                                      betas=cfg.extra.get("betas", (0.9, 0.999)),  # as written
                                                      eps=cfg.extra.get("eps", 1e-8))
    head_opt = None  # "head_optimizer": the head trained by an SGD of its own, its zero_grad() "zeroed" | "never"
    if "head_optimizer" in cfg.extra:  # "overlapping": the body's optimizer built on model.parameters(), head included
        head = set() if cfg.extra["head_optimizer"] == "overlapping" else {id(p) for p in model.head.parameters()}
        opt = torch.optim.SGD([p for p in params if id(p) not in head], lr=cfg.lr, momentum=0.9)
        head_opt = torch.optim.SGD(model.head.parameters(), lr=cfg.lr, momentum=0.9)
    if cfg.replace_head:
        model.head = nn.Linear(64, classes)
    steps_per_epoch = -(-len(x) // cfg.batch) if cfg.ragged else len(x) // cfg.batch
    total, warmup = EPOCHS * steps_per_epoch, steps_per_epoch // 2

    def warmup_cosine(step):  # lambda_rate: the function returns the rate (lr x factor), not the factor
        f = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        return cfg.lr * f if cfg.scheduler == "lambda_rate" else f
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=total) \
        if cfg.scheduler in ("onecycle", "onecycle_per_epoch") else \
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total) if cfg.scheduler.startswith("cosine") else \
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS) if cfg.scheduler.startswith("epoch_cosine") \
        else \
        torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine) if cfg.scheduler.startswith("lambda") else \
        torch.optim.lr_scheduler.LambdaLR(opt, (lambda s: (s + 1) / warmup) if cfg.scheduler == "warmup_uncapped"
                                          else (lambda s: min(1.0, (s + 1) / (100 * warmup))) if cfg.scheduler ==
                                          "warmup_long" else lambda s: min(1.0, (s + 1) / warmup)) \
        if cfg.scheduler.startswith("warmup") else \
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max" if cfg.scheduler == "plateau_max" else "min",
                                                   factor=0.3, patience=1) if cfg.scheduler.startswith("plateau") \
        else torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=cfg.extra.get("gamma", 0.1)) \
        if cfg.scheduler.startswith("per_") else \
        torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.0, total_iters=steps_per_epoch) \
        if cfg.scheduler == "linear_reversed" else \
        torch.optim.lr_scheduler.LinearLR(opt, 1.0 / steps_per_epoch, 1.0, total_iters=steps_per_epoch) \
        if cfg.scheduler == "linear_warmup" else \
        torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps_per_epoch) if cfg.scheduler == "decay_epoch" \
        else torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / total) if cfg.scheduler == "decay_run" else None

    if "opt_rebuilt" in cfg.extra:  # the optimizer created again (a notebook cell run twice, a checkpoint's
        # loading): "after_scheduler": the scheduler keeps the first one, which never steps; "before_scheduler"
        first_opt = opt
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)
        if cfg.extra["opt_rebuilt"] == "after_scheduler":
            sched = torch.optim.lr_scheduler.StepLR(first_opt, step_size=2, gamma=0.1)
        else:
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)

    counts = torch.bincount(y, minlength=classes).float() if y.dtype == torch.long and y.dim() == 1 else None
    # class_weights: CrossEntropyLoss(weight=...) from the training counts, "frequencies" (counts / counts.sum(),
    # the wrong way round) or "balanced" (N / (C * counts)); pos_weight: BCEWithLogitsLoss(pos_weight=...) per
    # column of the one-hot rows, "pos_over_neg" (the wrong way round) or "neg_over_pos" (torch's documentation)
    class_weight = (counts / counts.sum() if cfg.extra["class_weights"] == "frequencies" else
                    len(y) / (classes * counts)) if "class_weights" in cfg.extra else None
    pos_weight = (counts / (len(y) - counts) if cfg.extra["pos_weight"] == "pos_over_neg" else
                  (len(y) - counts) / counts) if "pos_weight" in cfg.extra else None

    def loss_fn(out, t):
        if cfg.model.startswith("tasks"):  # the second task's labels t % 3, numbered 1..3 by "tasks_one_based"
            return F.cross_entropy(out["label"], t) + F.cross_entropy(out["rest"], rest_labels(t))
        if cfg.loss in ("kl", "kl_probs"):  # distillation towards soft targets: kl_div reads log-probabilities
            scores = F.softmax(out, dim=1) if cfg.loss == "kl_probs" else F.log_softmax(out, dim=1)
            return F.kl_div(scores, soft_targets(t), reduction="batchmean")
        if cfg.loss == "dim0":
            return F.nll_loss(F.log_softmax(out, dim=0), t)
        if cfg.loss == "mse_broadcast":
            return F.mse_loss(out, t)  # (B, 1) vs (B,): broadcast to (B, B)
        if cfg.loss == "mse":
            return F.mse_loss(out.squeeze(1), t)
        if cfg.loss in ("l1", "l1_signed"):  # a mean absolute error written out; "_signed": its abs() forgotten
            diff = out.squeeze(1) - t
            return diff.mean() if cfg.loss == "l1_signed" else diff.abs().mean()
        if cfg.loss in ("onehot", "onehot255"):  # class probabilities as targets: one-hot rows (x 255: scaled as
            return F.cross_entropy(out, one_hot_targets(t))  # the 8-bit image masks they were read from)
        if cfg.loss in ("ce_smooth", "ce_smooth_large"):  # label_smoothing=0.9 written for "90% on the label"
            return F.cross_entropy(out, t, label_smoothing=0.9 if cfg.loss == "ce_smooth_large" else 0.1)
        if cfg.loss == "ce_sum":
            return F.cross_entropy(out, t, reduction="sum")
        if cfg.loss in ("gaussian_nll", "gaussian_nll_broadcast"):  # a fixed variance; torch does not warn
            mean = out if cfg.loss == "gaussian_nll_broadcast" else out.squeeze(1)
            return F.gaussian_nll_loss(mean, t, torch.ones_like(mean))
        if cfg.loss in ("nll", "nll_raw", "nll_probs"):  # NLL wants log-probabilities (nll_probs: the log forgotten)
            return F.nll_loss(out if cfg.loss == "nll_raw" else F.softmax(out, dim=1) if cfg.loss == "nll_probs"
                              else F.log_softmax(out, dim=1), t)
        if cfg.loss in ("smoothed_targets", "smoothed_twice"):  # targets smoothed by hand (0.9 on the label), given
            soft = F.one_hot(t, out.shape[1]).float() * 0.9 + 0.1 / out.shape[1]  # to a loss that smooths again
            return F.cross_entropy(out, soft, label_smoothing=0.1 if cfg.loss == "smoothed_twice" else 0.0)
        if cfg.loss in ("soft_ce", "soft_ce_negated"):  # label smoothing by hand
            soft = F.one_hot(t, out.shape[1]).float() * 0.9 + 0.1 / out.shape[1]
            ce = -(soft * F.log_softmax(out, dim=1)).sum(1).mean()
            return -ce if cfg.loss == "soft_ce_negated" else ce
        if cfg.loss == "focal":  # Lin et al. 2017, gamma = 2
            ce = F.cross_entropy(out, t, reduction="none")
            return ((1 - torch.exp(-ce)) ** 2 * ce).mean()
        if cfg.loss in ("contrastive_root", "contrastive_eps"):  # a contrastive loss on the scores as embeddings,
            sq = ((out[:, None] - out[None]) ** 2).sum(-1)  # its Euclidean distance written out: 0 on the diagonal
            d = sq.sqrt() if cfg.loss == "contrastive_root" else (sq + 1e-12).sqrt()
            same = (t[:, None] == t[None]).float()
            return (same * d ** 2 + (1 - same) * F.relu(2.0 - d) ** 2).mean()
        if cfg.loss == "bce_by_hand":  # one-vs-rest, the binary cross-entropy written out on torch.sigmoid(out)
            onehot, p = F.one_hot(t, out.shape[1]).float(), torch.sigmoid(out)
            return -(onehot * torch.log(p) + (1 - onehot) * torch.log(1 - p)).mean()
        if cfg.loss in ("bce", "bce_swapped"):  # one-vs-rest: binary cross-entropy with logits on one-hot rows
            onehot = F.one_hot(t, out.shape[1]).float()
            return F.binary_cross_entropy_with_logits(onehot, out) if cfg.loss == "bce_swapped" else \
                F.binary_cross_entropy_with_logits(out, onehot, pos_weight=pos_weight)
        if cfg.loss in ("ce_ignore0", "ce_ignore_pad"):  # ignore_index 0 is a real class; -100 is padding
            return F.cross_entropy(out, t, ignore_index=0 if cfg.loss == "ce_ignore0" else -100)
        if cfg.loss in ("dice", "dice_raw"):  # a per-class soft Dice over the batch (imbalanced classes)
            probs = out if cfg.loss == "dice_raw" else F.softmax(out, dim=1)
            onehot = F.one_hot(t, out.shape[1]).float()
            overlap = (probs * onehot).sum(0)
            return 1 - ((2 * overlap + 1) / (probs.sum(0) + onehot.sum(0) + 1)).mean()
        if cfg.loss in ("aux", "aux_item", "aux3", "aux_zero"):  # aux_zero: the task's weight left at 0
            logits, aux = out
            extra = F.cross_entropy(aux, t % (3 if cfg.loss == "aux3" else 2))
            weight = 0.0 if cfg.loss == "aux_zero" else 0.3
            return F.cross_entropy(logits, t) + weight * (extra.item() if cfg.loss == "aux_item" else extra)
        if cfg.loss in ("binary_softmax", "binary_sigmoid"):  # BCELoss on one output made a probability by
            # softmax over its single unit (1.0 whatever the score) or by a sigmoid
            p = F.softmax(out, dim=1) if cfg.loss == "binary_softmax" else torch.sigmoid(out)
            return F.binary_cross_entropy(p.squeeze(1), binary_targets(t))
        if cfg.loss.startswith("binary_"):  # one output under BCE with logits: the class index as a float, or a split
            return F.binary_cross_entropy_with_logits(out.squeeze(1), binary_targets(t))
        if cfg.loss in ("tag_default", "tag_ignore"):  # the <pad> tag 0 trained (ignore_index left at -100) or not
            return F.cross_entropy(out.reshape(-1, C + 1), t.reshape(-1),
                                   ignore_index=-100 if cfg.loss == "tag_default" else 0)
        if cfg.loss in ("tag_mask_mean", "tag_mask_none"):  # the padding masked out of a per-position loss: the
            # mask multiplied onto CrossEntropyLoss's default mean (one number: it masks nothing), or per position
            mask = (t != 0).float().view(-1)
            per = F.cross_entropy(out.reshape(-1, C + 1), t.reshape(-1),
                                  reduction="mean" if cfg.loss == "tag_mask_mean" else "none")
            return (per * mask).sum() / mask.sum()
        if cfg.loss == "class_ids_mse":  # classification as regression: one output fitted to the class id as a float
            return F.mse_loss(out.squeeze(1), t.float())
        return F.cross_entropy(out, t, weight=class_weight)

    def one_hot_targets(t):
        return F.one_hot(t, classes).float() * (255.0 if cfg.loss == "onehot255" else 1.0)

    def rest_labels(t):
        return t % 3 + (cfg.model == "tasks_one_based")

    def binary_targets(t):  # binary_index: the labels 0..3 as floats; binary_split: classes 2, 3 against 0, 1
        # (binary_pm1: encoded -1 / +1, as for an SVM)
        return t.float() if cfg.loss == "binary_index" else 2 * (t >= 2).float() - 1 if cfg.loss == "binary_pm1" \
            else (t >= 2).float()

    def reset_weights(m):  # the user's weight reset (k-fold code's): every layer's own init drawn again
        if isinstance(m, nn.Linear) and cfg.extra.get("reinit_with") == "fills":  # as DCGAN's, past torch.nn.init
            m.weight.data.normal_(0.0, 1 / math.sqrt(m.in_features))
            m.bias.data.fill_(0)
        elif isinstance(m, nn.Linear):
            m.reset_parameters()
    if "reinit" in cfg.extra:  # reinit: "once" (before the loop) | "each_epoch" (also at the top of every epoch)
        model.apply(reset_weights)

    pre = calls.check(model, x[:256], y[:256], loss_fn, optimizer=opt if head_opt is None else None)
    scaler = torch.amp.GradScaler("cpu") if cfg.amp else None

    def given(t):  # the targets given to w.step: the soft ones a distillation loss is fitted to
        if not cfg.give_targets:
            return None
        if cfg.model.startswith("tasks"):
            return {"label": t, "rest": rest_labels(t)}
        if cfg.loss.startswith("binary_"):
            return binary_targets(t)
        if cfg.loss.startswith("bce"):
            return F.one_hot(t, C).float()
        if cfg.loss.startswith("onehot"):
            return one_hot_targets(t)
        return soft_targets(t) if cfg.loss.startswith("kl") else t
    first = torch.arange(cfg.batch)
    best, best_val = None, math.inf
    kept = []
    # manual_warmup: the rate set by hand before every step, lr * min(1, (step + 1) / (2 epochs of steps)), its
    # counter incremented ("advancing") or never ("stuck"); index_generator: the batch indices drawn with the loop's
    # own generator, seeded "once" before the loop or again at "each_step"
    warmup_step, index_gen = 0, torch.Generator().manual_seed(5)
    if cfg.extra.get("seed") == "once":  # seed: once | each_epoch (the epoch's number) | each_step (42) |
        torch.manual_seed(42)  # each_step_epoch (the epoch's number, at the top of every step)
    used = iter(range(steps_per_epoch))  # batches: "iterator_once": one iterator made before the epoch loop
    loader = None  # sampler: a DataLoader over the row indices drawing by a WeightedRandomSampler weighted
    if "sampler" in cfg.extra:  # "per_class" (1 / class_counts: C weights) or "per_example" ((1 / counts)[y])
        weights = 1 / counts if cfg.extra["sampler"] == "per_class" else (1 / counts)[y]
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(len(x))), cfg.batch,
                                             sampler=torch.utils.data.WeightedRandomSampler(weights, len(x)))
    # ema: an exponential moving average of the weights (decay 0.9), validated in place of the model; its update
    # after every step "updated" (the parameters alone: a BatchNorm's running statistics left at their init),
    # "with_buffers" (the buffers copied too) or "forgotten"; zero_grad_on "ema": ema.zero_grad() for the model's
    ema = copy.deepcopy(model) if "ema" in cfg.extra else None
    with calls.watch(model, opt if head_opt is None else [opt, head_opt], every=every) as w:
        for epoch in range(cfg.extra.get("epochs", EPOCHS)):  # "epochs": a shorter run
            if cfg.extra.get("reinit") == "each_epoch" and epoch:  # the init applied again every epoch
                model.apply(reset_weights)
            if cfg.extra.get("seed") == "each_epoch":
                torch.manual_seed(epoch)
            if not cfg.eval_in_training:
                model.train()
            if cfg.zero_grad == "epoch":  # at the top of the epoch, not of the batch: .grad sums the epoch's steps
                opt.zero_grad()
            if cfg.unfreeze_body and epoch == 1:
                for p in model.layers.parameters():
                    p.requires_grad = True
                if cfg.unfreeze_body == "added":
                    opt.add_param_group({"params": list(model.layers.parameters())})
            if cfg.scheduler == "onecycle_each_epoch":  # created inside the epoch loop, sized for one epoch
                sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps_per_epoch)
            if cfg.scheduler == "plateau_each_epoch":  # created inside the epoch loop: its patience restarts
                sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.3, patience=1)
            if cfg.scheduler.startswith("each_epoch_lambda"):  # a LambdaLR made every epoch: its step count from 0,
                done = epoch * steps_per_epoch if cfg.scheduler.endswith("continued") else 0  # or carried on
                sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s, done=done: warmup_cosine(s + done))
            if cfg.extra.get("rebuild_opt") == "epoch" and epoch:  # the optimizer created again every epoch
                opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)
            if cfg.extra.get("labels_apart"):  # the inputs drawn by a loader of their own: x by one permutation,
                x = x[torch.randperm(len(x))]  # y by the batch order (two shuffled DataLoaders zipped)
            perm = torch.arange(len(x)) if cfg.sort else torch.randperm(len(x), generator=index_gen) \
                if "index_generator" in cfg.extra else torch.cat([b for b, in loader]) if loader is not None else \
                torch.randperm(len(x))
            correct, total_loss, epoch_outputs = 0, 0, []
            for i in used if cfg.extra.get("batches") == "iterator_once" else range(steps_per_epoch):
                if cfg.extra.get("seed", "").startswith("each_step"):
                    torch.manual_seed(epoch if cfg.extra["seed"] == "each_step_epoch" else 42)
                idx = first if cfg.same_batch else perm[i * cfg.batch : (i + 1) * cfg.batch]
                if cfg.extra.get("index_generator") == "each_step":  # seeded again: the same indices every step
                    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[: cfg.batch]
                if "manual_warmup" in cfg.extra:
                    for group in opt.param_groups:  # "floor": (step + 1) // warmup, 0 until the warm-up ends
                        group["lr"] = cfg.lr * min(1, (warmup_step + 1) // (2 * steps_per_epoch)) \
                            if cfg.extra["manual_warmup"] == "floor" else \
                            cfg.lr * min(1.0, (warmup_step + 1) / (2 * steps_per_epoch))
                    warmup_step += cfg.extra["manual_warmup"] != "stuck"
                if cfg.extra.get("rebuild_opt") == "step":  # the optimizer created again every step
                    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)
                if cfg.zero_grad == "before":
                    (ema if cfg.extra.get("zero_grad_on") == "ema" else model.head if cfg.extra.get("zero_grad_on")
                     == "head" else opt).zero_grad()  # "head": the classifier's zero_grad() written for the model's
                if head_opt is not None and cfg.extra["head_optimizer"] in ("zeroed", "overlapping"):
                    head_opt.zero_grad()
                micro = idx.chunk(cfg.accumulate)
                # backward and step dedented out of the batch loop: only the epoch's last batch reaches them
                dropped = cfg.extra.get("backward_per_epoch") and i < steps_per_epoch - 1
                for part in micro:
                    if cfg.zero_grad == "each_micro":  # inside the accumulation: .grad keeps the last micro-batch
                        opt.zero_grad()
                    inputs, mixed = x[part], None
                    if cfg.mixup:  # Zhang et al. 2018: lam ~ Beta(0.4, 0.4), mixed soft targets
                        lam = float(torch.distributions.Beta(0.4, 0.4).sample())
                        index = torch.randperm(len(part))
                        other = index if cfg.mixup == "one_perm" else torch.randperm(len(part))
                        onehot = F.one_hot(y[part], classes).float()
                        inputs = lam * inputs + (1 - lam) * inputs[index]
                        mixed = lam * onehot + (1 - lam) * onehot[other]
                    # forward_no_grad: the forward under torch.no_grad(), and loss.requires_grad_() written to quiet
                    # backward's "does not require grad" error; labels_late: the labels of the batch after the
                    # inputs' (a variable of the next batch fetched before the loss was computed)
                    labels = y[perm[(i + 1) % steps_per_epoch * cfg.batch:][: len(part)]] \
                        if cfg.extra.get("labels_late") else y[part]
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.amp), \
                            torch.no_grad() if cfg.extra.get("forward_no_grad") else contextlib.nullcontext():
                        out = model(inputs)
                    if cfg.extra.get("batch_standardized_targets"):  # a target normalizer fitted on each batch:
                        labels = (labels - labels.mean()) / labels.std()  # (yb - yb.mean()) / yb.std()
                    if cfg.extra.get("labels_from_outputs"):  # preds = out.argmax(1); criterion(out, preds),
                        labels = out.argmax(1)  # meant criterion(out, y): the model fitted to its own guesses
                    loss = loss_fn(out.float() if cfg.amp else out, labels) if mixed is None else \
                        F.cross_entropy(out, mixed)
                    if cfg.extra.get("forward_no_grad"):
                        loss.requires_grad_()
                    if cfg.extra.get("loss_rewrapped"):  # the loss made a Python number (a metric's code) and
                        loss = torch.tensor(loss.item(), requires_grad=True)  # wrapped again for backward()
                    if "consistency" in cfg.extra:  # UDA-style: a noised view's softmax as the other's target
                        target = model(x[part] + 0.1 * torch.randn_like(x[part])).softmax(1)
                        target = target.detach() if cfg.extra["consistency"] == "detached" else target
                        strong = model(x[part] + 0.5 * torch.randn_like(x[part]))
                        loss = loss + F.kl_div(F.log_softmax(strong, 1), target, reduction="batchmean")
                    if "views_in_one_batch" in cfg.extra:  # FixMatch-style: both views in one forward, the weak
                        views = x[part].repeat(2, 1) + torch.randn(2 * len(part), x.shape[1]) * torch.tensor(
                            [0.1, 0.5]).repeat_interleave(len(part))[:, None]  # rows' softmax the strong rows' target
                        weak, strong = model(views).chunk(2)
                        target = weak.detach() if cfg.extra["views_in_one_batch"] == "detached" else weak
                        loss = loss + F.cross_entropy(strong, target.softmax(1))
                    if cfg.scheduler.startswith("plateau"):
                        correct += int((out.argmax(1) == y[part]).sum())
                    if cfg.loss == "twice":
                        loss = loss + loss_fn(out, y[part])
                    if "penalty" in cfg.extra:  # an L2 penalty added by hand; "detached": the loss on out.detach()
                        loss = (loss_fn(out.detach(), y[part]) if cfg.extra["penalty"] == "detached" else loss) + \
                            1e-4 * sum(p.pow(2).sum() for p in model.parameters())
                    if "loss_clamp" in cfg.extra:  # torch.clamp(loss, max=...) to tame spikes: a loss above the
                        loss = torch.clamp(loss, max=cfg.extra["loss_clamp"])  # cap sends no gradient at all
                    if dropped:
                        continue
                    if cfg.accumulate > 1 and cfg.divide_accumulated:  # "divide_by": the loss divided by another
                        loss = loss / cfg.extra.get("divide_by", cfg.accumulate)  # count than the micro-batches'
                    if cfg.extra.get("loss_over_batch"):  # the mean loss divided by the batch size once more
                        loss = loss / len(part)
                    if cfg.step_first:
                        opt.step()
                    if cfg.clip is not None and cfg.clip_at == "backward":
                        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                    if cfg.extra.get("backward_twice"):  # a backward(retain_graph=True) of its own (for a gradient
                        loss.backward(retain_graph=True)  # norm logged before the step), then the step's backward
                    if cfg.extra.get("aux_after_backward"):  # loss = main; loss.backward(); loss = loss + 0.3 *
                        loss = F.cross_entropy(out[0], labels)  # aux: the second task's term added after backward()
                    # loss.backward() as written (a loss scale of 1 multiplies nothing: the same gradient, bit for bit)
                    (scaler.scale(loss) if cfg.amp else loss * cfg.loss_scale if cfg.loss_scale != 1.0 else
                     loss).backward()
                    if cfg.extra.get("aux_after_backward"):  # the total logged and given on: its aux term unused
                        loss = loss + 0.3 * F.cross_entropy(out[1], labels % 2)
                    if cfg.scheduler == "cosine_micro":  # sized in optimizer steps, stepped per micro-batch
                        sched.step()
                    if cfg.extra.get("step_each_micro"):  # optimizer.step() outside the `if (i + 1) % k == 0:`
                        opt.step()
                    if cfg.watch_micro:
                        w.step(loss, y=given(y[part]))
                if dropped:
                    continue
                if cfg.zero_grad == "between":
                    opt.zero_grad()
                if cfg.loss_scale != 1.0 and cfg.unscale:
                    for p in model.parameters():
                        p.grad /= cfg.loss_scale
                if cfg.amp and cfg.extra.get("scaler_unscale"):  # the GradScaler's scale divided out before clipping
                    scaler.unscale_(opt)
                if cfg.clip is not None and cfg.clip_at == "step":
                    nn.utils.clip_grad_norm_(params if "clip_params" in cfg.extra else model.parameters(), cfg.clip)
                if cfg.clip_value is not None:
                    nn.utils.clip_grad_value_(model.parameters(), cfg.clip_value)
                # step_per_epoch: optimizer.step() dedented to the epoch loop (after the last batch only)
                late = cfg.extra.get("step_per_epoch") and i < steps_per_epoch - 1
                if not cfg.skip_step and not cfg.step_first and not cfg.extra.get("step_each_micro") and not late:
                    if cfg.amp and not cfg.extra.get("scaler_step_forgotten"):
                        scaler.step(opt)
                        scaler.update()
                    else:
                        opt.step()
                    if head_opt is not None:
                        head_opt.step()
                    if cfg.double_step:
                        opt.step()
                if ema is not None and cfg.extra["ema"] in ("updated", "with_buffers"):
                    with torch.no_grad():
                        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                            e.mul_(0.9).add_(p, alpha=0.1)
                        if cfg.extra["ema"] == "with_buffers":  # the BatchNorm running statistics copied too
                            for e, b in zip(ema.buffers(), model.buffers(), strict=True):
                                e.copy_(b)
                if cfg.clip is not None and cfg.clip_at == "after":
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                if cfg.extra.get("manual_decay") == "batch":  # the rate decayed by hand, inside the batch loop
                    for group in opt.param_groups:
                        group["lr"] *= 0.9
                if sched is not None and cfg.scheduler in ("per_batch", "cosine", "lambda", "lambda_rate", "onecycle",
                                                           "onecycle_each_epoch", "each_epoch_lambda",
                                                           "each_epoch_lambda_continued", "warmup_uncapped",
                                                           "warmup_capped", "warmup_long",
                                                           "epoch_cosine_per_batch", "linear_reversed",
                                                           "linear_warmup", "decay_epoch", "decay_run"):
                    sched.step()
                if not cfg.watch_micro:
                    w.step(loss, y=given(labels if cfg.extra.get("labels_late") else y[idx]) if mixed is None
                           else mixed)
                if cfg.scheduler == "plateau_per_batch":  # the ReduceLROnPlateau stepped on each batch's loss
                    sched.step(loss.item())
                kept.append(loss if cfg.extra.get("keep_loss_tensors") else loss.item())  # the curve for a plot
                total_loss += loss if cfg.extra.get("sum_loss_tensors") else loss.item()  # the epoch's mean loss
                if "keep_outputs" in cfg.extra:  # the epoch's scores, for its accuracy at the epoch's end
                    epoch_outputs.append(out if cfg.extra["keep_outputs"] == "attached" else out.detach())
                if "relog_loss" in cfg.extra:  # the loss computed again for the log, after backward
                    logged = loss_fn(out.float() if cfg.amp else out, y[part])
                    total_loss += logged if cfg.extra["relog_loss"] == "tensor" else logged.item()
                if cfg.eval_mid_epoch and i == steps_per_epoch // 2:
                    model.eval()
                    with torch.no_grad():
                        loss_fn(model(xv), yv)
            if sched is not None and cfg.scheduler in ("per_epoch", "epoch_cosine_per_epoch", "onecycle_per_epoch"):
                sched.step()
            if cfg.extra.get("manual_decay") == "epoch":  # the rate decayed by hand once per epoch
                for group in opt.param_groups:
                    group["lr"] *= 0.9
            if cfg.extra.get("train_accuracy"):  # the last batch's accuracy, logged in train mode
                with torch.no_grad():
                    train_acc = float((model(inputs).argmax(1) == y[part]).float().mean())
                assert 0 <= train_acc <= 1
            if cfg.extra.get("fresh_train_accuracy"):  # a training accuracy on 3 fresh training batches, train mode
                with torch.no_grad():
                    rows = torch.randperm(len(x))[: 3 * cfg.batch]
                    train_acc = float((model(x[rows]).argmax(1) == y[rows]).float().mean())
                assert 0 <= train_acc <= 1
            if not cfg.no_eval_for_validation:
                model.eval()
            trains = cfg.extra.get("val_steps") == "trains"
            with contextlib.nullcontext() if cfg.extra.get("validate_with_grad") or trains else torch.no_grad():
                samples = cfg.extra.get("dropout_samples", 0)  # Monte Carlo dropout: the mean of several passes
                if "val_steps" in cfg.extra:  # validation in batches of 32 written from the training loop:
                    total = 0.0  # "trains": its zero_grad(), backward() and step() kept (the model fits xv)
                    for start in range(0, len(xv), 32):
                        val_loss = loss_fn(model(xv[start : start + 32]), yv[start : start + 32])
                        if trains:
                            opt.zero_grad()
                            val_loss.backward()
                            opt.step()
                        total += val_loss.item() * len(yv[start : start + 32])
                    val = total / len(xv)
                elif "val_average" not in cfg.extra:
                    # "val_noise": the validation inputs augmented anew at every evaluation (the training noise)
                    seen = xv + cfg.extra["val_noise"] * torch.randn_like(xv) if "val_noise" in cfg.extra else xv
                    judged = model if ema is None else ema.eval()  # val_sum: reduction="sum", never divided
                    val = loss_fn(torch.stack([model(seen) for _ in range(samples)]).mean(0), yv).item() if samples \
                        else F.cross_entropy(model(seen), yv, reduction="sum").item() if cfg.extra.get("val_sum") \
                        else loss_fn(judged(seen), yv).item()
                else:  # validation in batches of 32 ("val_batch"): the batch means summed over the examples
                    # ("means_over_examples"), weighted by their sizes ("weighted"), or their mean ("mean_of_means");
                    # "val_seq": the rows read as sequences of that many tokens, the scores flattened to (B*T, C)
                    step, seq = cfg.extra.get("val_batch", 32), cfg.extra.get("val_seq", 1)
                    xs, ys = xv.view(-1, seq, D), yv.view(-1, seq)
                    if cfg.extra.get("val_pad"):  # every other sequence holds one token, the rest padding (-100)
                        ys = ys.clone()
                        ys[::2, 1:] = -100
                    batches = [(xs[i : i + step], ys[i : i + step]) for i in range(0, len(xs), step)]
                    average = cfg.extra["val_average"]
                    if average.startswith("sums_over_"):  # reduction="sum" over the tokens, divided by every
                        total = sum(F.cross_entropy(model(xb).view(-1, C), yb.reshape(-1), reduction="sum").item()
                                    for xb, yb in batches)  # position, the non-pad tokens or the sequences
                        val = total / {"sums_over_positions": ys.numel(), "sums_over_tokens": int((ys != -100).sum()),
                                       "sums_over_sequences": len(xs)}[average]
                    elif average.startswith("class_weighted_"):  # CrossEntropyLoss(weight=w): the weighted sums over
                        weight = torch.linspace(1.0, 4.0, C)  # the examples, or the batch means by their rows
                        reduction = "sum" if average == "class_weighted_sums" else "mean"
                        val = sum(F.cross_entropy(model(xb).view(-1, C), yb.reshape(-1), weight=weight,
                                                  reduction=reduction).item() * (1 if reduction == "sum" else len(xb))
                                  for xb, yb in batches) / len(xv)
                    else:
                        # training_batch_first: the last training batch's loss, recomputed in eval mode, starts the
                        # validation total; training_batch_apart: kept in a variable of its own
                        train_eval = loss_fn(model(inputs), y[part]).item() if average.startswith("training") else 0
                        means = [(F.cross_entropy(model(xb).view(-1, C), yb.reshape(-1)).item(), yb.numel())
                                 for xb, yb in batches]
                        val = {"weighted": sum(m * n for m, n in means) / len(xv),
                               "mean_of_means": sum(m for m, _ in means) / len(means),
                               "training_batch_first": (train_eval + sum(m for m, _ in means)) / len(means),
                               "training_batch_apart": sum(m for m, _ in means) / len(means)}.get(
                            average, sum(m for m, _ in means) / len(xs))
            w.validate(val)
            if cfg.scheduler.startswith("plateau") and cfg.scheduler not in ("plateau_unstepped", "plateau_per_batch"):
                # plateau_accuracy: the training accuracy under mode='min'
                sched.step(correct / (steps_per_epoch * cfg.batch) if cfg.scheduler == "plateau_accuracy" else val)
            if cfg.keep_best == "worst" and best is None:  # the comparison written as for an accuracy
                best_val = -math.inf
            if cfg.keep_best and (val > best_val if cfg.keep_best == "worst" else val < best_val):
                state = model.state_dict()
                best, best_val = (copy.deepcopy(state) if cfg.keep_best in ("deepcopy", "worst") else state), val
        if best is not None:
            model.load_state_dict(best)
    model.eval()
    with torch.no_grad():
        errors = {}
        if not regression and not cfg.loss.startswith(("tag_", "contrastive_")):  # no class scores
            for split, (xs, ys) in {"train_error": (x, y), "val_error": (xv, yv)}.items():
                out = model(xs)
                out = out[0] if isinstance(out, tuple) else out["label"] if isinstance(out, dict) else out
                errors[split] = float(((out[:, 0] > 0).float() != binary_targets(ys)).float().mean()) \
                    if cfg.loss.startswith("binary_") else float((out[:, 0].round() != ys).float().mean()) \
                    if cfg.loss == "class_ids_mse" else float((out.argmax(1) != ys).float().mean())
    return pre, w.report(**errors)


def tagged(n: int, seed: int):
    """n sequences of 8 token ids from 1..15 padded with 0 to the right (3 to 8 tokens each), and a tag per
    position: 1 + (the token + the token before it) % C, 0 at the padding (the <pad> tag)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 16, (n, 8), generator=g)
    tags = 1 + (ids + torch.cat([torch.zeros(n, 1, dtype=ids.dtype), ids[:, :-1]], 1)) % C
    pad = torch.arange(8) >= torch.randint(3, 9, (n, 1), generator=g)
    ids[pad], tags[pad] = 0, 0
    return ids, tags


class Tagger(nn.Module):
    """Embedding (padding_idx 0: the pad id), a bidirectional GRU, scores over the C tags and <pad> per position."""

    def __init__(self, padding_idx: int = 0):
        super().__init__()
        self.emb = nn.Embedding(16, 16, padding_idx=padding_idx)  # 1: a real token's row held at 0, the pads' trained
        self.rnn = nn.GRU(16, 32, batch_first=True, bidirectional=True)
        self.head = nn.Linear(64, C + 1)

    def forward(self, ids):
        return self.head(self.rnn(self.emb(ids))[0])


def soft_targets(t: torch.Tensor) -> torch.Tensor:
    """A teacher's distribution over the C classes for labels ``t``: 0.7 on the label, the rest spread evenly."""
    return F.one_hot(t, C).float() * 0.6 + 0.4 / C


@dataclass
class Case:
    name: str
    bug: Loop
    twin: Loop
    cause: str  # a substring of the check name (or value) that must name the bug


CASES = [
    Case("no zero_grad: gradients accumulate", Loop(zero_grad="never"), Loop(), "loop: gradients"),
    Case("zero_grad between backward and step", Loop(zero_grad="between"), Loop(), "loop: gradients"),
    Case("optimizer built on a copy of the model", Loop(opt_on_copy=True), Loop(), "loop: optimizer holds"),
    Case("layers unfrozen but never added to the optimizer", Loop(unfreeze_body="forgot_optimizer"),
         Loop(unfreeze_body="added"), "loop: optimizer holds"),
    Case("frozen by mistake (everything but the output bias)", Loop(freeze="all_but_bias"), Loop(freeze="first"),
         "frozen"),
    Case("a detached branch", Loop(model="detached"), Loop(model="branch"), "loop: every trainable"),
    Case("auxiliary loss cut off with .item()", Loop(model="aux", loss="aux_item"), Loop(model="aux", loss="aux"),
         "loop: every trainable"),
    Case("a Softmax ending a second head under cross-entropy", Loop(model="aux3_softmax", loss="aux3"),
         Loop(model="aux3", loss="aux3"), "probabilities on out[1]"),
    Case("model.eval() never undone: training in eval mode", Loop(eval_in_training=True), Loop(), "loop: train/eval"),
    Case("validation in train mode (no model.eval())", Loop(no_eval_for_validation=True), Loop(),
         "loop: train/eval"),
    Case("per-epoch scheduler stepped per batch", Loop(scheduler="per_batch"), Loop(scheduler="per_epoch"),
         "loop: learning rate applied"),
    Case("loss counted twice", Loop(loss="twice", lr=0.05), Loop(lr=0.05), "loop: loss"),
    Case("softmax before CrossEntropyLoss (double softmax)", Loop(model="softmax"), Loop(), "loop: loss"),
    Case("log_softmax over the batch axis", Loop(loss="dim0"), Loop(), "loop: loss"),
    Case("data sorted by label, never shuffled", Loop(sort=True), Loop(), "loop: labels"),
    Case("the same batch every step (next(iter(loader)) outside the loop)", Loop(same_batch=True), Loop(),
         "loop: inputs"),
    Case("1-based labels", Loop(one_based=True), Loop(), "loop: labels"),
    Case("inputs not normalized (x255)", Loop(scale_inputs=255.0, lr=1e-4), Loop(),
         "inputs"),
    Case("gradient clipping below the typical norm", Loop(clip=1e-3), Loop(clip=100.0), "loop: gradients"),
    Case("gradient accumulation without dividing by k", Loop(accumulate=4, divide_accumulated=False, lr=0.05),
         Loop(accumulate=4, lr=0.05), "loop: loss"),
    Case("learning rate far too high", Loop(lr=30.0), Loop(), "learning rate (loss curve)"),
    Case("learning rate far too low", Loop(lr=1e-5), Loop(), "learning rate (loss curve)"),
    Case("layers kept in a Python list", Loop(model="python_list"), Loop(), "parameters registered"),
    Case("all weights initialized to zero", Loop(zero_init=True), Loop(), "symmetry"),
    Case("labels shuffled apart from their inputs", Loop(misalign=True), Loop(), "input-independent baseline"),
    Case("optimizer.step() forgotten", Loop(skip_step=True), Loop(), "loop: optimizer.step()"),
    Case("regression output (B, 1) against targets (B,)", Loop(loss="mse_broadcast", lr=0.01),
         Loop(loss="mse", lr=0.01), "loop: labels"),
    Case("data sorted by label, a short last batch", Loop(sort=True, ragged=True), Loop(ragged=True),
         "loop: labels"),
    Case("regression targets in raw units (x 5e4)", Loop(loss="mse", lr=1e-6, target_scale=5e4),
         Loop(loss="mse", lr=0.01), "loop: labels"),
    Case("w.step() after every micro-batch", Loop(accumulate=4, lr=0.05, watch_micro=True), Loop(accumulate=4, lr=0.05),
         "w.step"),
    Case("zero_grad() before every accumulated micro-batch", Loop(accumulate=4, lr=0.05, zero_grad="each_micro"),
         Loop(accumulate=4, lr=0.05), "loop: gradients"),
    Case("a Sigmoid after the last layer", Loop(model="sigmoid"), Loop(), "loop: loss"),
    Case("a ReLU after the last layer", Loop(model="relu_head"), Loop(), "loop: loss"),
    Case("optimizer.step() before loss.backward()", Loop(step_first=True), Loop(), "loop: gradients"),
    Case("optimizer.step() twice per batch", Loop(double_step=True, lr=0.05), Loop(lr=0.05), "loop: optimizer.step()"),
    Case("NaN in a few rows of the data", Loop(nan_rows=True), Loop(), "loop: inputs"),
    Case("a validation mid-epoch leaves eval mode on", Loop(eval_mid_epoch=True), Loop(), "loop: train/eval"),
    Case("weight decay 0.5 (a typo for 5e-4)", Loop(weight_decay=0.5), Loop(weight_decay=5e-4), "weight decay"),
    Case("the head replaced after the optimizer was built", Loop(replace_head=True), Loop(), "optimizer holds"),
    Case("dropout after the last layer", Loop(model="dropout_head"), Loop(), "dropout module"),
    Case("F.dropout without training=self.training", Loop(model="functional_dropout"),
         Loop(model="functional_dropout_ok"), "eval-mode forwards"),
    Case("NLLLoss on raw logits", Loop(loss="nll_raw"), Loop(loss="nll"), "not log-probabilities"),
    Case("a hand-written cross-entropy missing its minus sign", Loop(loss="soft_ce_negated"), Loop(loss="soft_ce"),
         "-ln C"),
    Case("one layer repeated with [layer] * 2", Loop(model="repeated"), Loop(model="three_layers"), "positions"),
    Case("ignore_index=0 where 0 is a class", Loop(loss="ce_ignore0"), Loop(loss="ce_ignore_pad"), "ignore_index"),
    Case("a regressor frozen but its output bias (targets offset by 10)",
         Loop(loss="mse", lr=0.003, freeze="all_but_bias", target_offset=10.0),
         Loop(loss="mse", lr=0.003, freeze="first", target_offset=10.0), "frozen"),
    Case("a focal loss on scores 30x too large at init", Loop(loss="focal", head_scale=30.0), Loop(loss="focal"),
         "initial loss"),
    Case("regression: gradient accumulation without dividing by k",
         Loop(loss="mse", lr=0.005, accumulate=4, divide_accumulated=False), Loop(loss="mse", lr=0.005, accumulate=4),
         "loop: loss"),
    Case("regression: accumulation without dividing by k under AMP's GradScaler",
         Loop(loss="mse", lr=0.005, accumulate=4, divide_accumulated=False, amp=True),
         Loop(loss="mse", lr=0.005, accumulate=4, amp=True), "loop: loss"),
    Case("kl_div given probabilities instead of log-probabilities", Loop(loss="kl_probs"), Loop(loss="kl"),
         "not log-probabilities: the gradient"),
    # loss scales and losses read from their value alone
    Case("a static loss scale (loss * 1024) never divided out of .grad",
         Loop(loss_scale=1024.0, unscale=False), Loop(loss_scale=1024.0), "static loss scale"),
    Case("a static loss scale clipped while still in .grad", Loop(loss_scale=1024.0, unscale=False, clip=5.0),
         Loop(loss_scale=1024.0, clip=5.0), "static loss scale"),
    Case("kl_div given probabilities, no targets given to w.step", Loop(loss="kl_probs", give_targets=False),
         Loop(loss="kl", give_targets=False), "not log-probabilities: the gradient"),
    # dropout
    Case("nn.Dropout(0.9) written to keep 90% (torch's p drops)", Loop(model="keep_as_p", lr=0.01),
         Loop(lr=0.01), "dropout rate"),
    # residual blocks
    Case("a residual block that adds its input twice (x + body(x) + x)", Loop(model="residual_twice", lr=0.01),
         Loop(model="residual", lr=0.01), "residual blocks"),
    # preprocessing and initialization
    Case("inputs scaled 1000x too small (divided twice)", Loop(scale_inputs=1e-3), Loop(), "far below unit scale"),
    Case("weights N(0, 0.01) in a six-layer net", Loop(model="deep", init_std=0.01, lr=0.05),
         Loop(model="deep", lr=0.05, he_init=True), "collapse through depth"),
    # batch statistics
    Case("BatchNorm1d trained with batches of 2", Loop(model="batchnorm", batch=2, lr=0.05),
         Loop(model="batchnorm", lr=0.05), "loop: batch statistics"),
    # validation preprocessing
    Case("validation features left raw, training ones standardized", Loop(raw_units=40.0, val_raw=True),
         Loop(raw_units=40.0), "loop: validation inputs"),
    # optimizer habits: a tensor held twice, clipping by value
    Case("every parameter in the optimizer twice", Loop(params_twice=True), Loop(), "loop: optimizer holds"),
    Case("clip_grad_value_ below the typical gradient element", Loop(clip_value=1e-4), Loop(clip_value=10.0),
         "clipped by value"),
    # what the loop hands its loss
    Case("a soft Dice loss on raw scores (no softmax before it)", Loop(loss="dice_raw", lr=0.05),
         Loop(loss="dice", lr=0.05), "soft Dice loss"),
    # training patterns: a task weighted by 0, a reentrant checkpoint, a cosine stepped per micro-batch
    Case("a second task's loss weight left at 0", Loop(model="aux", loss="aux_zero"), Loop(model="aux", loss="aux"),
         "exactly 0"),
    Case("torch.utils.checkpoint(use_reentrant=True) on the data tensor", Loop(model="checkpoint_reentrant"),
         Loop(model="checkpoint"), "reentrant checkpointed segment"),
    Case("a cosine sized in optimizer steps, stepped per accumulated micro-batch",
         Loop(accumulate=4, lr=0.05, scheduler="cosine_micro"), Loop(accumulate=4, lr=0.05, scheduler="cosine"),
         "loop: learning rate applied"),
    # normalization per example: GroupNorm on a dense layer's features with one group per unit
    Case("GroupNorm(64, 64) on (N, 64) features: one value per group", Loop(model="groupnorm_per_unit"),
         Loop(model="groupnorm"), "normalized groups"),
    # schedules users write as functions: a LambdaLR warm-up then cosine whose function returns the rate
    Case("a LambdaLR function returning lr x factor instead of the factor", Loop(scheduler="lambda_rate", lr=0.05),
         Loop(scheduler="lambda", lr=0.05), "loop: learning rate applied"),
    # user models in the pre-flight: a BatchNorm after the first layer does not excuse inputs divided twice
    Case("inputs scaled 3000x too small before a BatchNorm1d", Loop(model="batchnorm", scale_inputs=3e-4, lr=0.05),
         Loop(model="batchnorm", lr=0.05), "far below unit scale"),
    # early stopping: the best weights kept by reference, restored after the loop
    Case("best = model.state_dict() kept without a copy, restored with load_state_dict", Loop(keep_best="reference"),
         Loop(keep_best="deepcopy"), "loop: restored weights"),
    # the output layer: a BatchNorm1d on the scores, after the last Linear
    Case("BatchNorm1d after the last Linear layer (on the logits)", Loop(model="batchnorm_head"), Loop(),
         "BatchNorm1d module"),
    # everyday settings: a heteroscedastic-style Gaussian NLL, a backbone at its own rate
    Case("F.gaussian_nll_loss on (B, 1) outputs against (B,) targets", Loop(loss="gaussian_nll_broadcast", lr=0.01),
         Loop(loss="gaussian_nll", lr=0.01), "loop: labels"),
    Case("the hidden layers' param group at lr 0", Loop(extra={"body_lr": 0.0}), Loop(extra={"body_lr": 0.01}),
         "loop: learning rate applied"),
    # schedulers stepped on the wrong value, and regressors whose outputs cannot take the targets' sign
    Case("ReduceLROnPlateau (mode='min') stepped on the training accuracy", Loop(scheduler="plateau_accuracy"),
         Loop(scheduler="plateau_val"), "loop: plateau metric"),
    Case("regression: a ReLU after the last layer, targets of both signs",
         Loop(model="relu_head", loss="mse", lr=0.01, target_offset=-3.0),
         Loop(loss="mse", lr=0.01, target_offset=-3.0), "never went below 0"),
    # everyday loops: the loss curve kept as tensors, validation by Monte Carlo dropout
    Case("losses.append(loss) keeps every step's graph", Loop(extra={"keep_loss_tensors": True}), Loop(),
         "loop: loss tensors kept"),
    Case("one dropout pass in train mode, not Monte Carlo dropout's several",
         Loop(no_eval_for_validation=True, extra={"dropout_samples": 1}),
         Loop(no_eval_for_validation=True, extra={"dropout_samples": 8}), "loop: train/eval mode"),
    # gradient clipping in the wrong place of the step
    Case("clip_grad_norm_ before loss.backward()", Loop(clip=1.0, clip_at="backward"), Loop(clip=1.0),
         "loop: clipping order"),
    Case("clip_grad_norm_ after optimizer.step()", Loop(clip=1.0, clip_at="after"), Loop(clip=1.0),
         "loop: clipping order"),
    # the output layer beside another loss reading: a BatchNorm1d on the scores under a summed cross-entropy
    Case("BatchNorm1d on the logits under CrossEntropyLoss(reduction='sum')",
         Loop(model="batchnorm_head", loss="ce_sum", lr=0.003), Loop(loss="ce_sum", lr=0.003), "loop: output layer"),
    # sequence layout: an attention layer built with the default batch_first=False, fed (B, tokens, features)
    Case("TransformerEncoderLayer without batch_first=True fed (B, T, F)", Loop(model="attention_seq_first"),
         Loop(model="attention"), "batch_first=False"),
    # schedulers created inside the epoch loop
    Case("OneCycleLR(total_steps=len(loader)) created again every epoch", Loop(scheduler="onecycle_each_epoch"),
         Loop(scheduler="onecycle"), "created again"),
    # mixup: the labels mixed with another permutation than the inputs
    Case("mixup with one permutation for the inputs, another for the labels", Loop(mixup="two_perms"),
         Loop(mixup="one_perm"), "loop: mixed labels"),
    # semi-supervised consistency: the weak view's softmax as the strong view's target, not detached
    Case("a consistency target (the model's softmax on another view) not detached",
         Loop(extra={"consistency": "attached"}), Loop(extra={"consistency": "detached"}), "loop: loss"),
    # part of the forward under torch.no_grad(): around the hidden layers, around a torch.utils.checkpoint call
    Case("the hidden layers run under torch.no_grad() in forward", Loop(model="no_grad_body"), Loop(),
         "torch.no_grad()"),
    Case("torch.utils.checkpoint called under torch.no_grad() in forward", Loop(model="checkpoint_no_grad"),
         Loop(model="checkpoint"), "torch.no_grad()"),
    # memory kept or spent on graphs: a running sum of loss tensors, a validation without torch.no_grad()
    Case("total_loss += loss keeps every step's graph until the epoch ends", Loop(extra={"sum_loss_tensors": True}),
         Loop(), "loop: loss tensors kept"),
    Case("validation in eval mode without torch.no_grad()", Loop(extra={"validate_with_grad": True}), Loop(),
         "loop: validation without no_grad"),
    # random numbers: torch.manual_seed() inside the batch loop, every step the same dropout masks
    Case("torch.manual_seed(42) at the top of every step", Loop(extra={"seed": "each_step"}),
         Loop(extra={"seed": "once"}), "loop: random state reseeded"),
    Case("torch.manual_seed(epoch) at the top of every step, not of every epoch",
         Loop(extra={"seed": "each_step_epoch"}), Loop(extra={"seed": "each_epoch"}), "loop: random state reseeded"),
    # the model's outputs kept with their graphs: scores stored for an epoch metric, a loss computed again to log
    Case("all_preds.append(out) keeps every step's graph until the epoch ends",
         Loop(extra={"keep_outputs": "attached"}), Loop(extra={"keep_outputs": "detached"}), "loop: outputs kept"),
    Case("epoch_loss += criterion(out, y) after backward keeps every step's graph",
         Loop(extra={"relog_loss": "tensor"}), Loop(extra={"relog_loss": "item"}), "loop: outputs kept"),
    # a plateau scheduler created inside the epoch loop
    Case("ReduceLROnPlateau created again every epoch", Loop(scheduler="plateau_each_epoch"),
         Loop(scheduler="plateau_val"), "its patience restarts"),
    # data leakage: the validation set drawn from the training set
    Case("validation rows taken from the training rows (xv = x[:256])", Loop(extra={"val_from_train": True}),
         Loop(), "loop: validation examples"),
    # a LambdaLR created every epoch: its step count from 0 (the schedule starts over), or carried on (it goes on)
    Case("LambdaLR(warm-up then cosine) created every epoch, counting its steps from 0",
         Loop(scheduler="each_epoch_lambda"), Loop(scheduler="each_epoch_lambda_continued"), "created again"),
    # the last training batch's accuracy logged under no_grad in train mode, right before the validation
    Case("validation in train mode, after a training accuracy logged on the last batch",
         Loop(no_eval_for_validation=True, extra={"train_accuracy": True}), Loop(extra={"train_accuracy": True}),
         "loop: train/eval mode"),
    # a small data set (4 steps per epoch): each epoch's outputs, or its running loss sum, kept with their graphs
    Case("all_preds.append(out) through epochs of 4 steps", Loop(batch=256, extra={"keep_outputs": "attached"}),
         Loop(batch=256, extra={"keep_outputs": "detached"}), "loop: outputs kept"),
    Case("total_loss += loss through epochs of 4 steps", Loop(batch=256, extra={"sum_loss_tensors": True}),
         Loop(batch=256), "loop: loss tensors kept"),
    # semi-supervised consistency with both views in one forward: the weak rows' softmax not detached
    Case("consistency targets from the weak rows of one forward over both views, not detached",
         Loop(extra={"views_in_one_batch": "attached"}), Loop(extra={"views_in_one_batch": "detached"}),
         "own softmax on other rows of the same forward"),
    # discrete data: integer-coded features duplicated before the split
    Case("integer-coded rows duplicated before the train/validation split",
         Loop(extra={"integer_rows": "duplicated"}), Loop(extra={"integer_rows": "split"}),
         "loop: validation examples"),
    # the optimizer created inside the loop: its momentum starts over every step, every epoch
    Case("the optimizer created again at every step", Loop(extra={"rebuild_opt": "step"}), Loop(),
         "loop: optimizer built once"),
    Case("the optimizer created again at the top of every epoch", Loop(extra={"rebuild_opt": "epoch"}), Loop(),
         "loop: optimizer built once"),
    # a loss given (targets, outputs): BCEWithLogitsLoss takes a target with a gradient, so nothing fails
    Case("binary cross-entropy with logits given (targets, outputs)", Loop(loss="bce_swapped"), Loop(loss="bce"),
         "its arguments are swapped"),
    # a scheduler created before the loop and never stepped
    Case("scheduler.step() forgotten (a StepLR created, never stepped)", Loop(scheduler="per_unstepped"),
         Loop(scheduler="per_epoch"), "scheduler.step() never ran"),
    # learning rates the loop sets or forgets to set: a plateau scheduler never stepped, a warm-up stuck at step 0
    Case("scheduler.step(val_loss) forgotten (a ReduceLROnPlateau created, never stepped)",
         Loop(scheduler="plateau_unstepped"), Loop(scheduler="plateau_val"), "scheduler.step(metric) never ran"),
    Case("a hand-written warm-up whose step counter is never incremented", Loop(extra={"manual_warmup": "stuck"}),
         Loop(extra={"manual_warmup": "advancing"}), "warm-up stuck"),
    # validation modes: a training accuracy on fresh training batches in train mode, then the validation
    Case("validation in train mode, after a training accuracy on fresh training batches",
         Loop(no_eval_for_validation=True, extra={"fresh_train_accuracy": True}),
         Loop(extra={"fresh_train_accuracy": True}), "loop: train/eval mode"),
    # random numbers: the loop's own generator for the batch indices, seeded again every step
    Case("torch.Generator().manual_seed(0) inside the batch loop drawing the batch indices",
         Loop(extra={"index_generator": "each_step"}), Loop(extra={"index_generator": "once"}), "loop: inputs"),
    # loops that undo their own training: weights re-drawn every epoch, epochs that run no batch
    Case("model.apply(reset_weights) at the top of every epoch", Loop(extra={"reinit": "each_epoch"}),
         Loop(extra={"reinit": "once"}), "loop: weights initialized once"),
    Case("one iterator over the batches made before the epoch loop (used up after epoch 1)",
         Loop(extra={"batches": "iterator_once"}), Loop(), "loop: steps between validations"),
    # what the loss is handed: clamped logits, class indices as binary targets
    Case("logits clamped to [-1, 1] before cross-entropy", Loop(model="clamp_head"), Loop(),
         "a clamp after the last layer"),
    Case("BCE with logits on one output against the class index as a float (0..3)", Loop(loss="binary_index"),
         Loop(loss="binary_split"), "loop: binary targets"),
    # a warm-up written without its cap: lambda s: (s + 1) / warmup
    Case("a LambdaLR warm-up without min(1, ...): the rate keeps growing", Loop(scheduler="warmup_uncapped", lr=0.01),
         Loop(scheduler="warmup_capped", lr=0.01), "a warm-up with no cap"),
    # the validation loss averaged with the wrong denominator
    Case("validation batch means summed and divided by len(val_dataset)",
         Loop(extra={"val_average": "means_over_examples"}), Loop(extra={"val_average": "weighted"}),
         "loop: validation loss average"),
    # random augmentation applied to the validation set
    Case("validation inputs with fresh random noise at every evaluation (the training transform reused)",
         Loop(extra={"val_noise": 0.3}), Loop(), "loop: validation augmentation"),
    # weights re-drawn every epoch by in-place fills on .data (the DCGAN tutorial's weights_init), not torch.nn.init
    Case("weights_init with m.weight.data.normal_(0, std) applied at the top of every epoch",
         Loop(extra={"reinit": "each_epoch", "reinit_with": "fills"}),
         Loop(extra={"reinit": "once", "reinit_with": "fills"}), "loop: weights initialized once"),
    # the validation loss averaged with the wrong denominator where the reader once missed it: a validation without
    # torch.no_grad(), a sequence loss flattened to (B*T, C) averaged over the sequences, a mean of batch means whose
    # last batch holds 2 of 256 examples yet counts for a third
    Case("validation without torch.no_grad(): batch means summed and divided by len(val_dataset)",
         Loop(extra={"val_average": "means_over_examples", "validate_with_grad": True}),
         Loop(extra={"val_average": "weighted"}), "loop: validation loss average"),
    Case("sequences of 4 tokens, scores flattened to (B*T, C): batch means summed over the 64 sequences",
         Loop(extra={"val_average": "means_over_examples", "val_seq": 4, "val_batch": 8}),
         Loop(extra={"val_average": "weighted", "val_seq": 4, "val_batch": 8}), "loop: validation loss average"),
    Case("the mean of the batch means over batches of 127, 127 and 2 validation examples",
         Loop(extra={"val_average": "mean_of_means", "val_batch": 127}),
         Loop(extra={"val_average": "weighted", "val_batch": 127}), "loop: validation loss average"),
    # inputs and labels that part: shuffled apart every epoch, the label among the features, a loss on detached
    # outputs, backward dedented out of the batch loop, a regressor capped by a Sigmoid
    Case("inputs and labels from two shuffled DataLoaders, zipped (a new wrong pairing every epoch)",
         Loop(extra={"labels_apart": True}), Loop(), "loop: labels follow their inputs"),
    Case("the label left as a feature column (target leakage)", Loop(extra={"label_column": True}), Loop(),
         "loop: labels among the inputs"),
    Case("cross_entropy(out.detach(), y) + an L2 penalty: only the penalty trains",
         Loop(extra={"penalty": "detached"}), Loop(extra={"penalty": "attached"}), "loop: loss reaches the outputs"),
    Case("loss.backward() and optimizer.step() dedented out of the batch loop",
         Loop(extra={"backward_per_epoch": True}), Loop(), "loop: every batch reaches backward"),
    Case("regression: a Sigmoid after the last layer, targets around 10",
         Loop(model="sigmoid", loss="mse", lr=0.003, target_offset=10.0),
         Loop(loss="mse", lr=0.003, target_offset=10.0),
         "never went above 1"),
    # a label smoothing typed as the label's confidence
    Case("CrossEntropyLoss(label_smoothing=0.9) for 90% on the label", Loop(loss="ce_smooth_large"),
         Loop(loss="ce_smooth"), "loop: label smoothing"),
    # a setting ported from Keras: BatchNorm's momentum is the old value's weight there, the new batch's in torch
    Case("BatchNorm1d(momentum=0.99) written with Keras' meaning", Loop(model="batchnorm_keras", lr=0.05),
         Loop(model="batchnorm", lr=0.05), "loop: batchnorm momentum"),
    # a data file sorted by class, split without shuffling: the last classes only in the validation set
    Case("the last 30% of class-sorted rows as validation (Keras' validation_split)",
         Loop(extra={"sorted_split": "sorted"}), Loop(extra={"sorted_split": "shuffled"}), "loop: validation classes"),
    # validation totals over the wrong count or holding a training batch: padded sequences' token sums over every
    # position, a loss per sequence against a training loss per token, class-weighted sums over the examples, the
    # last training batch's loss starting the validation total
    Case("padded sequences of 4 tokens: reduction='sum' over the tokens divided by every position, pads included",
         Loop(extra={"val_average": "sums_over_positions", "val_seq": 4, "val_batch": 8, "val_pad": True}),
         Loop(extra={"val_average": "sums_over_tokens", "val_seq": 4, "val_batch": 8, "val_pad": True}),
         "loop: validation loss average"),
    Case("sequences of 4 tokens: reduction='sum' divided by the sequences while the training loss is per token",
         Loop(extra={"val_average": "sums_over_sequences", "val_seq": 4, "val_batch": 8}),
         Loop(extra={"val_average": "sums_over_tokens", "val_seq": 4, "val_batch": 8}),
         "loop: validation loss average"),
    Case("CrossEntropyLoss(weight=w, reduction='sum') summed over the validation and divided by len(val_dataset)",
         Loop(extra={"val_average": "class_weighted_sums"}), Loop(extra={"val_average": "class_weighted_rows"}),
         "loop: validation loss average"),
    Case("the last training batch's loss, recomputed in eval mode, starts the validation total",
         Loop(extra={"val_average": "training_batch_first"}), Loop(extra={"val_average": "training_batch_apart"}),
         "loop: validation loss average"),
    # class names encoded per split (two LabelEncoders): the validation labels numbered differently
    Case("validation labels numbered by an encoder of their own (each class's number moved by one)",
         Loop(extra={"val_relabelled": True}), Loop(), "loop: validation labels"),
    # a loss per sequence against a training loss per token in a short run: the first validation's training loss
    # still holds the first steps' high losses
    Case("sequences of 4 tokens: reduction='sum' divided by the sequences, 2 epochs of a loss per token",
         Loop(extra={"val_average": "sums_over_sequences", "val_seq": 4, "val_batch": 8, "epochs": 2}),
         Loop(extra={"val_average": "sums_over_tokens", "val_seq": 4, "val_batch": 8, "epochs": 2}),
         "loop: validation loss average"),
    # positions read from the batch axis: the tutorial's (T, B, d) positional encoding on batch-first tokens
    Case("x + pe[:x.size(0)] (a (max_len, 1, d) positional encoding) on batch-first tokens",
         Loop(model="attention_posenc_batch"), Loop(model="attention_posenc"), "position in the batch"),
    # a bidirectional recurrent layer read at its last step: its backward half there has read one step
    Case("out[:, -1] of a bidirectional GRU", Loop(model="birnn_last"), Loop(model="birnn"), "bidirectional read"),
    # a tagger's mask multiplied onto CrossEntropyLoss()'s default mean: the padding is trained as the words are
    Case("(CrossEntropyLoss()(out, y) * mask).sum() / mask.sum() on padded sequences", Loop(loss="tag_mask_mean",
         lr=0.05), Loop(loss="tag_mask_none", lr=0.05), "padding in the loss"),
    # a binary cross-entropy written out on sigmoid(out): log(1 - p) is log(0) once sigmoid(out) rounds to 1.0
    Case("-(y * log(sigmoid(out)) + (1 - y) * log(1 - sigmoid(out))) by hand", Loop(loss="bce_by_hand", lr=0.5),
         Loop(loss="bce", lr=0.5), "log of a probability"),
    # one BatchNorm module called after every hidden layer: its running statistics blend the layers'
    Case("one BatchNorm1d module applied after two different layers", Loop(model="batchnorm_shared", lr=0.05),
         Loop(model="batchnorm", lr=0.05), "batchnorm reuse"),
    # a pairwise distance written out: sqrt of its zero diagonal makes the first gradient NaN
    Case("a contrastive loss on ((z[:, None] - z[None]) ** 2).sum(-1).sqrt()", Loop(loss="contrastive_root",
         lr=0.01), Loop(loss="contrastive_eps", lr=0.01), "square root at 0"),
    # two optimizers (the body's, the head's own): the head's zero_grad() never called
    Case("a second optimizer (the head's) never zeroed", Loop(extra={"head_optimizer": "never"}),
         Loop(extra={"head_optimizer": "zeroed"}), "loop: gradients"),
    # a tagger's loss with ignore_index at its default -100 while the pads' tag is 0, in training and validation
    Case("F.cross_entropy(out.view(-1, C), y.view(-1)) on padded tags (pad tag 0, ignore_index left at -100)",
         Loop(loss="tag_default", lr=0.05), Loop(loss="tag_ignore", lr=0.05), "loop: padding in the loss"),
    # a multi-task model's dict of heads: one task's labels numbered 1..3 on a head of 4 (class 0 never appears)
    Case("one task's labels 1-based in a dict of heads ({'label': ..., 'rest': ...})",
         Loop(model="tasks_one_based"), Loop(model="tasks"), "task ['rest']"),
    # targets, outputs and layers users get wrong in their own modules: labels encoded -1/+1 for BCE, NLL on
    # probabilities, a GRU without batch_first, a cosine classifier without its scale, a raw column, a constant
    # column divided by its zero std, weights drawn U(0, 1), a cosine sized in epochs stepped per batch, forward
    # returning the hidden features, ReduceLROnPlateau(mode='max') on a loss, .data in forward
    Case("BCEWithLogitsLoss against binary labels encoded -1 / +1", Loop(loss="binary_pm1"), Loop(loss="binary_split"),
         "loop: binary targets"),
    Case("NLLLoss on F.softmax(out) (the log forgotten)", Loop(loss="nll_probs"), Loop(loss="nll"),
         "-p(label)'s"),
    Case("nn.GRU without batch_first=True fed (B, T, F), out[:, -1] read", Loop(model="gru_seq_first"),
         Loop(model="gru"), "batch independence"),
    Case("a cosine classifier without its scale (normalize(h) @ normalize(W).T into cross-entropy)",
         Loop(model="cosine_unscaled"), Loop(model="cosine_scaled"), "cosine scores with no scale"),
    Case("one feature column left in raw units (~1000) among standardized ones", Loop(extra={"raw_column": True}),
         Loop(), "far from unit scale"),
    Case("a constant column standardized by (x - mean) / std (0 / 0 = NaN)", Loop(extra={"dead_column": "raw"}),
         Loop(extra={"dead_column": "clamped"}), "loop: inputs"),
    Case("weights_init with nn.init.uniform_(m.weight) (U(0, 1): every weight positive)",
         Loop(extra={"init": "uniform"}), Loop(), "loop: weight init"),
    Case("CosineAnnealingLR(T_max=epochs) stepped after every batch", Loop(scheduler="epoch_cosine_per_batch"),
         Loop(scheduler="epoch_cosine_per_epoch"), "loop: learning rate applied"),
    Case("forward() returns the hidden features (return h, meant return self.head(h))", Loop(model="skip_head"),
         Loop(), "loop: every trainable parameter learns"),
    Case("ReduceLROnPlateau(mode='max') stepped on the validation loss", Loop(scheduler="plateau_max"),
         Loop(scheduler="plateau_val"), "loop: plateau metric"),
    Case("h = self.fc1(x).data in forward (the first layer cut off the graph)", Loop(model="data_body"), Loop(),
         "loop: every trainable parameter learns"),
    # imbalanced classes (8 : 4 : 2 : 1): class weights, a sampler's weights and pos_weight written the wrong way
    Case("CrossEntropyLoss(weight=counts / counts.sum()) on imbalanced classes",
         Loop(extra={"imbalanced": True, "class_weights": "frequencies"}),
         Loop(extra={"imbalanced": True, "class_weights": "balanced"}), "loop: class weights"),
    Case("WeightedRandomSampler(1 / class_counts, len(dataset)): one weight per class, not per example",
         Loop(extra={"imbalanced": True, "sampler": "per_class"}),
         Loop(extra={"imbalanced": True, "sampler": "per_example"}), "loop: sampler weights"),
    Case("BCEWithLogitsLoss(pos_weight=pos / neg) on the one-hot rows of imbalanced classes",
         Loop(loss="bce", extra={"imbalanced": True, "pos_weight": "pos_over_neg"}),
         Loop(loss="bce", extra={"imbalanced": True, "pos_weight": "neg_over_pos"}), "pos_weight grows"),
    # an EMA of the weights: validated while its update is forgotten, or zeroed in place of the model
    Case("validation on an EMA copy whose update after each step is forgotten", Loop(extra={"ema": "forgotten"}),
         Loop(extra={"ema": "updated"}), "validation loss does not change"),
    Case("ema.zero_grad() written in place of the model's (optimizer.zero_grad() never called)",
         Loop(extra={"ema": "updated", "zero_grad_on": "ema"}), Loop(extra={"ema": "updated"}), "loop: gradients"),
    # the validation measured on another scale than the training loss
    Case("regression targets standardized for training, the validation targets left in raw units",
         Loop(loss="mse", lr=0.01, target_scale=3e4, extra={"standardized_targets": "val_raw"}),
         Loop(loss="mse", lr=0.01, target_scale=3e4, extra={"standardized_targets": "both"}),
         "every validation loss is over"),
    Case("validation loss with CrossEntropyLoss(reduction='sum') over the set, never divided",
         Loop(extra={"val_sum": True}), Loop(), "validation loss"),
    # a binary classifier: sigmoid twice
    Case("a Sigmoid after the last layer under BCEWithLogitsLoss (binary)", Loop(model="sigmoid", loss="binary_split"),
         Loop(loss="binary_split"), "sigmoid(outputs)"),
    # a warm-up by integer division: (step + 1) // warmup is 0 until the warm-up ends
    Case("a hand-written warm-up lr * min(1, (step + 1) // warmup) (integer division: lr 0 for 2 epochs)",
         Loop(extra={"manual_warmup": "floor"}), Loop(extra={"manual_warmup": "advancing"}),
         "loop: learning rate applied"),
    # gradient accumulation with optimizer.step() outside its `if (i + 1) % k == 0:`
    Case("gradient accumulation stepping after every micro-batch, zeroing every k",
         Loop(accumulate=4, lr=0.05, extra={"step_each_micro": True}), Loop(accumulate=4, lr=0.05), "loop: gradients"),
    # input dropout written with the keeping probability
    Case("nn.Dropout(0.9) on the inputs written to keep 90%", Loop(model="input_dropout", lr=0.01),
         Loop(model="input_dropout_ok", lr=0.01), "dropout rate"),
    # a loss already averaged over the batch divided by the batch size again
    Case("loss = criterion(out, y) / len(y) with the default reduction='mean'", Loop(extra={"loss_over_batch": True}),
         Loop(), "loop: loss"),
    # a hand-written layer whose weight is a tensor with requires_grad=True, not an nn.Parameter
    Case("self.w = torch.randn(64, 64).requires_grad_() in a module (not nn.Parameter: never optimized)",
         Loop(model="own_layer_plain"), Loop(model="own_layer"), "parameters registered"),
    # label smoothing twice: targets smoothed by hand handed to CrossEntropyLoss(label_smoothing=0.1)
    Case("hand-smoothed targets (0.9 * one_hot + 0.1 / C) into CrossEntropyLoss(label_smoothing=0.1)",
         Loop(loss="smoothed_twice"), Loop(loss="smoothed_targets"), "loop: label smoothing"),
    # gradients zeroed once per epoch; a loss summed over the batch at a rate tuned for its mean; one-hot targets
    # read from 8-bit masks (0 / 255) as class probabilities
    Case("optimizer.zero_grad() at the top of every epoch, not of every batch", Loop(zero_grad="epoch"), Loop(),
         "loop: gradients"),
    Case("CrossEntropyLoss(reduction='sum') at a learning rate tuned for the mean", Loop(loss="ce_sum"), Loop(),
         "(reduction='sum')"),
    Case("cross-entropy against one-hot targets x 255 (F.one_hot(y) * 255 as class probabilities)",
         Loop(loss="onehot255"), Loop(loss="onehot"), "loop: probability targets"),
    # schedules: a warm-up 100x longer than the run, a rate decayed by hand in the batch loop
    Case("a LambdaLR warm-up 100x longer than the run (min(1, (s + 1) / (100 * warmup)))",
         Loop(scheduler="warmup_long"), Loop(scheduler="warmup_capped"), "a warm-up that never ended"),
    Case("for g in opt.param_groups: g['lr'] *= 0.9 inside the batch loop (meant per epoch)",
         Loop(extra={"manual_decay": "batch"}), Loop(extra={"manual_decay": "epoch"}), "learning rate"),
    # recurrent layers: a stacked GRU read at its first layer's state, a sequence-first GRU fed by .view
    Case("h_n[0] of a 2-layer GRU (the first layer's final state, meant h_n[-1])", Loop(model="gru2_first"),
         Loop(model="gru2"), "loop: every trainable parameter learns"),
    Case("(B, T, F) steps made sequence-first by .view(T, B, F) for a GRU without batch_first (meant transpose)",
         Loop(model="gru_view"), Loop(model="gru_transposed"), "batch independence"),
    # a regression loss written out without abs(); weights initialized to one constant; a validation loop copied
    # from the training loop with its backward and step
    Case("regression: an L1 loss written (out - y).mean() (abs() forgotten)", Loop(loss="l1_signed", lr=0.01),
         Loop(loss="l1", lr=0.01), "falls without bound"),
    Case("weights_init with nn.init.constant_(m.weight, 0.05) (every unit of a layer alike)",
         Loop(extra={"init": "constant"}), Loop(), "symmetry"),
    # mixed precision: clipping the GradScaler's scaled gradients; a scheduler left on a replaced optimizer
    Case("clip_grad_norm_ under a GradScaler without scaler.unscale_(optimizer) first",
         Loop(amp=True, clip=5.0), Loop(amp=True, clip=5.0, extra={"scaler_unscale": True}), "scaler.unscale_"),
    Case("the optimizer created again after its StepLR was built (the scheduler steps the first one)",
         Loop(scheduler="per_epoch", extra={"opt_rebuilt": "after_scheduler"}),
         Loop(scheduler="per_epoch", extra={"opt_rebuilt": "before_scheduler"}), "not on the one that trains"),
    Case("the validation loop copied from the training loop: backward() and optimizer.step() on validation batches",
         Loop(extra={"val_steps": "trains"}), Loop(extra={"val_steps": "evaluates"}),
         "optimizer.step() on the validation set"),
    # everyday slips in a loop's own code: a parameter generator used up, a forward under no_grad made to run, a
    # layer built in forward, the head in two optimizers, a step dedented out of the batch loop, labels one batch
    # late, a softmax over one output, a second backward, std-1 weights, features normalized over the batch,
    # validation features shuffled apart from their labels
    Case("params = model.parameters() given to the optimizer, then clip_grad_norm_(params) (an empty generator)",
         Loop(clip=1.0, extra={"clip_params": "generator"}), Loop(clip=1.0, extra={"clip_params": "list"}),
         "loop: clipping reaches the parameters"),
    Case("the training forward under torch.no_grad(), loss.requires_grad_() to quiet backward's error",
         Loop(extra={"forward_no_grad": True}), Loop(), "a leaf tensor with no graph"),
    Case("the loss rebuilt as torch.tensor(loss.item(), requires_grad=True) before backward()",
         Loop(extra={"loss_rewrapped": True}), Loop(), "a leaf tensor with no graph"),
    Case("the output layer built inside forward() (return nn.Linear(64, C)(h))", Loop(model="head_in_forward"),
         Loop(), "loop: layers built once"),
    Case("the body's optimizer built on model.parameters(), the head in an optimizer of its own too",
         Loop(extra={"head_optimizer": "overlapping"}), Loop(extra={"head_optimizer": "zeroed"}),
         "loop: optimizers share parameters"),
    Case("optimizer.step() dedented out of the batch loop (one step per epoch)", Loop(extra={"step_per_epoch": True}),
         Loop(), "loop: optimizer.step()"),
    Case("the labels of the next batch (fetched before the loss was computed) against this batch's outputs",
         Loop(extra={"labels_late": True}), Loop(), "loop: labels follow their inputs"),
    Case("BCELoss on softmax(out, dim=1) over a single output unit (always 1.0)", Loop(loss="binary_softmax"),
         Loop(loss="binary_sigmoid"), "loop: loss reaches the outputs"),
    Case("loss.backward(retain_graph=True) for a log, then loss.backward() again (gradients doubled)",
         Loop(extra={"backward_twice": True}), Loop(), "times per step on one forward's loss"),
    Case("weights_init with nn.init.normal_(m.weight) (std 1 whatever the fan-in)", Loop(extra={"init": "normal"}),
         Loop(), "loop: weight init"),
    Case("F.normalize(h, dim=0) before the head (over the batch, meant dim=1)", Loop(model="normalize_batch"),
         Loop(model="normalize_rows"), "batch independence"),
    Case("validation features shuffled by a permutation their labels missed", Loop(extra={"val_rows_shuffled": True}),
         Loop(), "loop: validation labels"),
    Case("Adam(weight_decay=0.1): an L2 term Adam normalizes (meant AdamW's decoupled decay)",
         Loop(lr=1e-3, weight_decay=0.1, extra={"adam": "Adam"}),
         Loop(lr=1e-3, weight_decay=0.1, extra={"adam": "AdamW"}), "loop: weight decay"),
    Case("Adam at SGD's learning rate (lr=1.0)", Loop(lr=1.0, extra={"adam": "Adam"}),
         Loop(lr=1e-3, extra={"adam": "Adam"}), "learning rate"),
    Case("model.train written without parentheses on a BatchNorm net (eval mode from epoch 2)",
         Loop(model="batchnorm", eval_in_training=True, lr=0.05), Loop(model="batchnorm", lr=0.05), "loop: train/eval"),
    Case("model.eval written without parentheses on a BatchNorm net (validation in train mode)",
         Loop(model="batchnorm", no_eval_for_validation=True, lr=0.05), Loop(model="batchnorm", lr=0.05),
         "loop: train/eval"),
    Case("gradient accumulation over 4 micro-batches dividing the loss by len(loader) (32)",
         Loop(accumulate=4, lr=0.05, extra={"divide_by": 32}), Loop(accumulate=4, lr=0.05), "loop: loss"),
    Case("torch.sigmoid between the six hidden layers (meant ReLU)", Loop(model="deep_sigmoid", lr=0.05, he_init=True),
         Loop(model="deep", lr=0.05, he_init=True), "vanishing gradients"),
    Case("ReduceLROnPlateau stepped after every batch on the batch's loss (meant per epoch, validation loss)",
         Loop(scheduler="plateau_per_batch"), Loop(scheduler="plateau_val"), "loop: learning rate applied"),
    Case("SGD(momentum=0.99) at the rate tuned for momentum 0.9 (10x the effective step)",
         Loop(lr=0.1, extra={"momentum": 0.99}), Loop(lr=0.1, extra={"momentum": 0.9}), "learning rate"),
    # Adam's settings written the wrong way: its betas swapped, its eps at 1
    Case("Adam(betas=(0.999, 0.9)): the two moments' decays swapped", Loop(lr=1e-3, extra={"adam": "Adam",
         "betas": (0.999, 0.9)}), Loop(lr=1e-3, extra={"adam": "Adam"}), "loop: Adam"),
    Case("Adam(eps=1.0): eps above every gradient's root mean square (Adam made plain SGD at 1e-3)",
         Loop(lr=1e-3, extra={"adam": "Adam", "eps": 1.0}), Loop(lr=1e-3, extra={"adam": "Adam"}), "loop: Adam"),
    # schedules that end the training early: a warm-up written from the peak down, a decay sized for one epoch
    Case("LinearLR(start_factor=1.0, end_factor=0.0, total_iters=len(loader)) meant as a warm-up (lr 0 from epoch 2)",
         Loop(scheduler="linear_reversed"), Loop(scheduler="linear_warmup"), "loop: learning rate applied"),
    Case("LambdaLR(lambda s: 1 - s / len(loader)) per batch: a decay sized for one epoch, negative after it",
         Loop(scheduler="decay_epoch"), Loop(scheduler="decay_run"), "went below 0"),
    # early stopping's comparison copied from an accuracy's: the loss compared with >, best_val = -inf
    Case("early stopping keeping the weights when val_loss > best (the comparison of an accuracy): the worst restored",
         Loop(keep_best="worst"), Loop(keep_best="deepcopy"), "loop: restored weights"),
    # a tagger's embedding with the padding index of another token
    Case("nn.Embedding(padding_idx=1) where the pad id is 0 (a real token's row held at 0)",
         Loop(loss="tag_ignore", lr=0.05, extra={"padding_idx": 1}), Loop(loss="tag_ignore", lr=0.05), "padding_idx"),
    # regression targets standardized for validation with * sd in place of / sd
    Case("validation targets standardized as (y - mean) * std (meant / std)",
         Loop(loss="mse", lr=0.01, target_scale=3e4, extra={"standardized_targets": "val_times_sd"}),
         Loop(loss="mse", lr=0.01, target_scale=3e4, extra={"standardized_targets": "both"}),
         "every validation loss is over"),
    # zero_grad() called on the classifier only: the body's gradients sum over every step
    Case("model.head.zero_grad() written for model.zero_grad() (the body's gradients never zeroed)",
         Loop(extra={"zero_grad_on": "head"}), Loop(), "loop: gradients"),
    Case("clip_grad_norm_(model.parameters(), max_norm=0.0): a config's 0 for 'no clipping' given to torch",
         Loop(clip=0.0), Loop(), "loop: clipping max_norm"),
    Case("StepLR(step_size=2, gamma=10) written to divide the rate by 10",
         Loop(scheduler="per_epoch", lr=0.01, extra={"gamma": 10.0}), Loop(scheduler="per_epoch", lr=0.01),
         "gamma=10"),
    Case("OneCycleLR(total_steps=epochs * len(loader)) stepped once per epoch (the rate kept near max_lr / 25)",
         Loop(scheduler="onecycle_per_epoch"), Loop(scheduler="onecycle"), "loop: learning rate applied"),
    Case("an EMA of a BatchNorm net's parameters only, validated (its running statistics left at their init)",
         Loop(model="batchnorm", lr=0.05, extra={"ema": "updated"}),
         Loop(model="batchnorm", lr=0.05, extra={"ema": "with_buffers"}), "loop: copy's running statistics"),
    Case("model.to(torch.bfloat16) trained by Adam(lr=2e-4) (updates below the weights' bfloat16 resolution)",
         Loop(lr=2e-4, extra={"adam": "Adam", "bf16": True}), Loop(lr=2e-4, extra={"adam": "Adam"}),
         "loop: low-precision weights"),
    # torch.clamp(loss, max=1.0) written to tame loss spikes: cross-entropy starts near log(4) = 1.39, above the cap,
    # so the clamped loss sends no gradient and nothing ever learns
    Case("loss = torch.clamp(loss, max=1.0) to tame spikes (no gradient while the loss is above 1)",
         Loop(extra={"loss_clamp": 1.0}), Loop(), "torch.clamp(loss"),
    # AMP's recipe with its step forgotten: scaler.scale(loss).backward(); optimizer.step() (no scaler.step, no
    # update): every update carries the scaler's 65536
    Case("scaler.scale(loss).backward() then optimizer.step() (scaler.step(optimizer) forgotten)",
         Loop(amp=True, extra={"scaler_step_forgotten": True}), Loop(amp=True), "scaler.step(optimizer)"),
    # preds = out.argmax(1) kept for an accuracy, then criterion(out, preds) where criterion(out, y) was meant: the
    # model fitted to its own guesses, the labels never used
    Case("loss = criterion(out, preds) with preds = out.argmax(1) (meant criterion(out, y))",
         Loop(extra={"labels_from_outputs": True}), Loop(), "argmax of its own scores"),
    # a target normalizer fitted on each batch, (yb - yb.mean()) / yb.std() in the loop (meant the training set's
    # statistics, once): the targets made relative to each batch
    Case("regression targets standardized on each batch, (yb - yb.mean()) / yb.std() (meant the training set's)",
         Loop(loss="mse", lr=0.01, target_scale=3e4,
              extra={"standardized_targets": "both", "batch_standardized_targets": True}),
         Loop(loss="mse", lr=0.01, target_scale=3e4, extra={"standardized_targets": "both"}),
         "standardized by each batch"),
    # loss.backward() written before the second task's term is added (loss = loss + 0.3 * aux_loss after it): the
    # logged total holds the term, the gradient never did
    Case("loss.backward(), then loss = loss + 0.3 * aux_loss (the second task's term added after backward)",
         Loop(model="aux", loss="aux", extra={"aux_after_backward": True}), Loop(model="aux", loss="aux"),
         "loop: every trainable"),
]


def flagged(reports) -> list:
    return [v for r in reports for v in r if v.status in ("warn", "fail")]


def classify(reports, cause: str) -> tuple[str, list]:
    alarms = flagged(reports)
    right = [v for v in alarms if cause in v.check or cause in str(v.value)]
    return ("right" if right else "other" if alarms else "missed"), (right or alarms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="substrings of case names to run")
    ap.add_argument("--every", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = [c for c in CASES if not args.only or any(s in c.name for s in args.only)]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {len(cases)} bug classes")
    tally = {"right": 0, "other": 0, "missed": 0}
    false_fails = false_warns = 0
    tic = time.perf_counter()
    for case in cases:
        outcome, why = classify(run(case.bug, every=args.every), case.cause)
        tally[outcome] += 1
        twin = flagged(run(case.twin, every=args.every))
        fails = [v for v in twin if v.status == "fail"]
        false_fails += len(fails)
        false_warns += len(twin) - len(fails)
        shown = "; ".join(f"{v.check}: {str(v.value)[:70]}" for v in why[:2])
        twin_text = "; ".join(f"{v.status} {v.check}: {str(v.value)[:60]}" for v in twin) or "clean"
        print(f"- {case.name}: **{outcome}** ({shown}) | twin: {twin_text}", flush=True)
    n = len(cases)
    print(f"\nright cause {tally['right']}/{n} ({tally['right'] / max(n, 1):.0%}), other alarm {tally['other']}, "
          f"missed {tally['missed']}; twins: {false_fails} false fails, {false_warns} false warns; "
          f"{time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    main()
