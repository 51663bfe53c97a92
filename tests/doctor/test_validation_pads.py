"""A language model trained with ``F.cross_entropy(..., ignore_index=PAD)`` and validated with a loss that leaves
``ignore_index`` out (``reduction="sum"`` divided by ``y.numel()``, or the default mean): the pads, never learned,
count in the validation average only, and the validation loss reads far above the training loss. The watch names
the pads counted (not overfitting, not memorization); a validation that passes ``ignore_index=PAD`` too is not
named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.validation_pads import PADS_COUNTED, pads_counted

NAME = "loop: validation loss average"
V, T, PAD = 20, 12, 0


def _data(n, g):
    """Sequences whose tokens follow from the one before except every third one (drawn at random), of random
    lengths, padded with PAD at the end."""
    x = torch.randint(1, V, (n, T + 1), generator=g)
    for t in range(1, T + 1):
        if t % 3:
            x[:, t] = (x[:, t - 1] * 3 + 1) % (V - 1) + 1
    lengths = torch.randint(3, T + 1, (n,), generator=g)
    x[torch.arange(T + 1)[None] > lengths[:, None]] = PAD
    return TensorDataset(x[:, :-1], x[:, 1:])


class TinyLM(nn.Module):
    """An embedding, a GRU and a linear head over the vocabulary."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 16, padding_idx=PAD)
        self.rnn, self.head = nn.GRU(16, 32, batch_first=True), nn.Linear(32, V)

    def forward(self, ids):
        return self.head(self.rnn(self.emb(ids))[0])


def _validate(model, loader, form):
    """The user's validation loss: ``form`` "pads_ignored" (the healthy one), "sum_over_numel" or "mean"."""
    total, n = 0.0, 0
    with torch.no_grad():
        for xb, yb in loader:
            logits, y = model(xb).reshape(-1, V), yb.reshape(-1)
            if form == "pads_ignored":
                total += F.cross_entropy(logits, y, ignore_index=PAD, reduction="sum").item()
                n += int((y != PAD).sum())
            elif form == "sum_over_numel":  # the pads counted: no ignore_index, every position in the count
                total += F.cross_entropy(logits, y, reduction="sum").item()
                n += y.numel()
            else:  # the default mean over every position, pads included
                total += nn.CrossEntropyLoss()(logits, y).item() * y.numel()
                n += y.numel()
    return total / n


def _run(form):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    train = DataLoader(_data(256, g), batch_size=32, shuffle=True)
    val = DataLoader(_data(96, g), batch_size=48)
    model = TinyLM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss(ignore_index=PAD)
    with doctor.watch(model, opt, every=20) as w:
        for _ in range(4):
            model.train()
            for xb, yb in train:
                loss = criterion(model(xb).reshape(-1, V), yb.reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            w.validate(_validate(model, val, form))
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def runs():
    return {form: _run(form) for form in ("pads_ignored", "sum_over_numel", "mean")}


@pytest.mark.slow
def test_pads_counted_in_the_validation_only_are_named(runs):
    for form in ("sum_over_numel", "mean"):
        v = runs[form][NAME]
        assert v.status == "fail" and v.value.startswith(PADS_COUNTED), (form, v.value)
        assert "ignore_index=0, the validation loss its default -100" in v.value
        assert "pass ignore_index=0 to the validation loss too" in v.advice
        over, curve = runs[form]["overfitting"], runs[form]["learning rate (loss curve)"]
        assert f"explained by '{NAME}'" in over.value
        assert "memorization" not in curve.value and "explained by" not in curve.value  # the training is read as is


@pytest.mark.slow
def test_a_validation_that_ignores_the_pads_too_is_not_named(runs):
    assert NAME not in runs["pads_ignored"]
    assert "explained by" not in runs["pads_ignored"]["overfitting"].value


def test_the_reading_needs_pads_on_every_validation():
    read = [(3.0, 30.0, 100.0, 70.0 * 1.5, 70.0), (3.2, 30.0, 100.0, 70.0 * 1.4, 70.0)]
    value, expected, advice = pads_counted(read, 0, -100)
    assert "30%+ of its targets equal to 0" in value and "3.2 where the mean over its non-pad targets is 1.4" in value
    assert pads_counted(read[:1], 0, -100) is None  # one validation read
    assert pads_counted([read[0], (3.0, 0.0, 100.0, 150.0, 100.0)], 0, -100) is None  # no pads in one of them
    assert pads_counted(read, None, -100) is None  # the training ignores nothing


def test_a_mismeasured_validation_tells_no_memorization():
    from trainwell.doctor.loop_deferral import mismeasured_validation
    from trainwell.doctor.verdict import Verdict

    assert mismeasured_validation([Verdict(NAME, "fail", PADS_COUNTED, "", "")]) == NAME
    assert mismeasured_validation([Verdict(NAME, "pass", "", "", "")]) is None
