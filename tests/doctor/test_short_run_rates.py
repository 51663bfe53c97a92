"""Short healthy loops under Adam and the learning-rate advice: a curve that levelled off within the batch noise
is not told to raise its rate, a rate that is far too low still is; weights that start at zero (LoRA's B) do not
make the update/weight ratio warn, also after a resume from a checkpoint."""

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.monitors import Monitor
from trainwell.train import Trainer

pytestmark = pytest.mark.slow  # each test trains a user's loop (0.1-0.6 s): the fast set keeps its budget

CURVE, RATIO = "learning rate (loss curve)", "monitor: update/weight ratio"


class PooledAttention(nn.Module):
    """Self-attention over padded tokens, mean-pooled over the real ones (no position embedding)."""

    def __init__(self, vocab=30, dim=32, classes=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.att = nn.MultiheadAttention(dim, 4, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids, lengths):
        pad = torch.arange(ids.shape[1])[None] >= lengths[:, None]
        h = self.emb(ids)
        a, _ = self.att(h, h, h, key_padding_mask=pad)
        real = (~pad).float()[..., None]
        return self.head((a * real).sum(1) / real.sum(1))


def tokens(n, seed, length=10, vocab=30):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, length + 1, (n,), generator=g)
    ids = torch.randint(1, vocab, (n, length), generator=g)
    ids[torch.arange(length)[None] >= lengths[:, None]] = 0
    return ids, lengths, ids[:, 0] % 3  # the class is the first token's: a model without positions reads it poorly


def attention_loop(seed):
    """96 Adam steps (lr 3e-3). Measured over seeds 0-2 on held-out tokens: 3x the rate leaves the training loss
    within the seeds' spread (0.87 vs 0.90) and raises the held-out loss (1.01 vs 0.96); 10x raises both."""
    torch.manual_seed(seed)
    model = PooledAttention()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    ids, lengths, y = tokens(1024, seed)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(3):
            for i in range(0, len(ids), 32):
                loss = F.cross_entropy(model(ids[i:i + 32], lengths[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
    return w.report()


@pytest.mark.slow  # seconds each
def test_a_short_curve_that_levelled_off_within_the_noise_is_not_told_to_raise_the_rate():
    for seed in (0, 1, 2):
        curve = attention_loop(seed)[CURVE]
        assert "raise the learning rate" not in (curve.advice or ""), curve.value
        assert not curve.value.startswith("too low"), curve.value


def test_a_far_too_low_rate_on_a_short_loop_is_still_told_to_raise_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    x = torch.randn(2048, 12, generator=torch.Generator().manual_seed(1))
    y = x[:, :4].argmax(1)
    with doctor.watch(model, opt, every=10) as w:
        for i in range(0, 2 * len(x), 32):
            j = i % len(x)
            loss = F.cross_entropy(model(x[j:j + 32]), y[j:j + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[j:j + 32])
    curve = w.report()[CURVE]
    assert curve.status == "warn" and "raise the learning rate" in curve.advice, curve


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update B @ A (B starts at zero)."""

    def __init__(self, base, rank=4, alpha=8):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(rank, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale


def lora_report(lr):
    torch.manual_seed(0)
    model = nn.Sequential(LoRALinear(nn.Linear(16, 64)), nn.ReLU(), LoRALinear(nn.Linear(64, 4)))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    x = torch.randn(2048, 16, generator=torch.Generator().manual_seed(1))
    y = (x[:, :4] + x[:, 4:8]).argmax(1)
    with doctor.watch(model, opt, every=10) as w:
        for i in range(0, 2 * len(x), 64):
            j = i % len(x)
            loss = F.cross_entropy(model(x[j:j + 64]), y[j:j + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[j:j + 64])
    return w.report(), w.monitor


def test_lora_adapters_whose_b_starts_at_zero_do_not_make_the_update_ratio_warn():
    report, monitor = lora_report(3e-3)
    assert RATIO not in [v.check for v in report], report[RATIO]
    assert monitor.zero_start == {"0.B", "2.B"}
    # the left-out tensors' own ratio is large at this healthy rate: ||B|| is only the sum of its updates
    b = monitor.records[0]
    assert set(b["update_ratio"]) == {"0.A", "2.A"}
    assert "left out: 0.B, 2.B, which started at zero" in report["monitors"].value


def test_lora_adapters_at_a_far_too_high_rate_still_make_the_update_ratio_warn():
    report, _ = lora_report(0.3)  # Adam moves every entry of A by ~0.3 a step: ||dA|| / ||A|| ~ 1
    ratio = report[RATIO]
    assert ratio.status == "warn" and "lower the learning rate" in ratio.advice and "left out: 0.B" in ratio.value


def test_a_resumed_run_keeps_the_weights_that_started_at_zero_out_of_the_update_ratio():
    x = torch.randn(2048, 16, generator=torch.Generator().manual_seed(1))
    y = (x[:, :4] + x[:, 4:8]).argmax(1)

    def trainer(epochs, monitor):
        torch.manual_seed(0)
        model = nn.Sequential(LoRALinear(nn.Linear(16, 64)), nn.ReLU(), LoRALinear(nn.Linear(64, 4)))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
        return Trainer(model, opt, epochs=epochs, batch_size=64, callbacks=[monitor], device="cpu")

    first = trainer(1, Monitor(every=10))
    first.fit((x, y))
    saved = io.BytesIO()  # a checkpoint file, as trainwell's Checkpoint writes it and --resume reads it
    torch.save({**first.checkpoint_state(copy=True), **first.callback_states()}, saved)
    saved.seek(0)
    monitor = Monitor(every=10)
    resumed = trainer(2, monitor)
    resumed.load_checkpoint_state(torch.load(saved, weights_only=True))
    resumed.fit((x, y))
    # B is no longer zero after the first epoch, but its norm is still only the sum of its updates
    assert monitor.zero_start == {"0.B", "2.B"}
    after = [r for r in monitor.records if r["epoch"] == 1]
    assert after and all(set(r["update_ratio"]) == {"0.A", "2.A"} for r in after)
    assert "update/weight ratio" not in {w["kind"] for w in monitor.warnings}


@pytest.mark.slow  # 0.31 s each on a 2-core CPU (RESULTS §51)
def test_a_short_noisy_curve_whose_plateau_is_within_the_noise_is_not_told_to_lower_the_rate():
    # a third and a tenth of this rate end with a higher training and held-out loss on this seed (0.93 / 1.04 train)
    curve = attention_loop(1)[CURVE]
    assert curve.status == "info" and curve.value.startswith("levelled off"), curve.value
    assert "lower the learning rate" not in curve.advice, curve.advice
