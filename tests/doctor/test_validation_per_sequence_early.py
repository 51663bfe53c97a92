"""A language model trained on a loss per token (``F.cross_entropy(..., ignore_index=PAD)``, the mean over the
non-pad tokens) and validated with the token sums divided by the sequences (a loss per sequence, ~T times larger),
on a task it learns within the first epoch: the first validation's training loss (the mean over that epoch) still
holds the first steps' high losses, far above the per-token validation mean. The watch reads the training loss's
own call as a mean per token, so the first validation is read too and two epochs are enough to name the unit; the
validation per token is not named, nor is a per-sequence validation in a loop whose training loss is per sequence
(the mean per token scaled by the tokens per sequence)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: validation loss average"
V, T, PAD = 16, 12, 0


def _data(n, g):
    """Random token sequences of random lengths padded with PAD, whose targets are a fixed map of each token."""
    x = torch.randint(1, V, (n, T), generator=g)
    lengths = torch.randint(4, T + 1, (n,), generator=g)
    x[torch.arange(T)[None] >= lengths[:, None]] = PAD
    return TensorDataset(x, torch.where(x == PAD, PAD, (x * 7 + 3) % (V - 1) + 1))


class Tagger(nn.Module):
    """An embedding, a GRU and a linear head over the vocabulary."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 16, padding_idx=PAD)
        self.rnn, self.head = nn.GRU(16, 32, batch_first=True), nn.Linear(32, V)

    def forward(self, ids):
        return self.head(self.rnn(self.emb(ids))[0])


def _run(validation, training="per_token"):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    train = DataLoader(_data(640, g), batch_size=32, shuffle=True)
    val = DataLoader(_data(128, g), batch_size=64)
    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(2):
            model.train()
            for xb, yb in train:
                loss = F.cross_entropy(model(xb).reshape(-1, V), yb.reshape(-1), ignore_index=PAD)
                if training == "per_sequence":  # the mean per token times the tokens per sequence
                    loss = loss * (yb != PAD).sum(1).float().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            total, tokens, sequences = 0.0, 0, 0
            with torch.no_grad():
                for xb, yb in val:
                    total += F.cross_entropy(model(xb).reshape(-1, V), yb.reshape(-1), ignore_index=PAD,
                                             reduction="sum").item()
                    tokens, sequences = tokens + int((yb != PAD).sum()), sequences + len(xb)
            w.validate(total / (tokens if validation == "per_token" else sequences))
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def runs():
    return {"bug": _run("per_sequence"), "twin": _run("per_token"),
            "sequence_loop": _run("per_sequence", training="per_sequence")}


@pytest.mark.slow
def test_a_loss_per_sequence_is_named_from_the_first_validation(runs):
    v = runs["bug"][NAME]
    assert v.status == "fail" and "on all 2 validations read" in v.value, v.value
    assert "divided by the 128 sequences: a loss per sequence" in v.value and "per token" in v.value
    assert "total_tokens" in v.advice
    assert f"explained by '{NAME}'" in runs["bug"]["overfitting"].value


@pytest.mark.slow
def test_a_validation_per_token_and_a_loop_per_sequence_are_not_named(runs):
    assert NAME not in runs["twin"]
    assert NAME not in runs["sequence_loop"]
