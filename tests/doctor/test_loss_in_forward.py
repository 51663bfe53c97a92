"""A model that computes its own loss, as Hugging Face's models do when given ``labels``: ``out = model(**batch)``,
``out["loss"].backward()``, and a validation that averages ``out["loss"]`` over its batches. The loss calls the
validation makes happen inside the model's forward; the watch reads them there (only those whose value the forward
returns), so a validation averaged with the wrong denominator is named as for a loss computed outside the model,
and a right one is not. A loss the forward returns as a sum of two (an auxiliary penalty folded in) is no single
call's value: not read, and not named either way."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainwell import doctor

NAME = "loop: validation loss average"


class Examples(Dataset):
    """Dicts of features, an attention mask and labels (a tokenized dataset's shape)."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=g)
        self.labels = (self.x[:, :3].sum(1) > 0).long() + (self.x[:, 3] > 1).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"features": self.x[i], "mask": torch.ones(6), "labels": self.labels[i]}


class SelfScoring(nn.Module):
    """Returns ``{"loss", "logits"}`` when given labels; ``aux`` adds a penalty computed with ``F.mse_loss`` inside
    the forward into the loss it returns."""

    def __init__(self, aux: bool = False):
        super().__init__()
        self.body, self.head, self.aux = nn.Sequential(nn.Linear(6, 24), nn.ReLU()), nn.Linear(24, 3), aux

    def forward(self, features, mask, labels=None):
        h = self.body(features * mask)
        logits = self.head(h)
        if labels is None:
            return {"logits": logits}
        loss = F.cross_entropy(logits, labels)
        if self.aux:
            loss = loss + 0.01 * F.mse_loss(h, torch.zeros_like(h))
        return {"loss": loss, "logits": logits}


def _run(average: str, aux: bool = False):
    torch.manual_seed(0)
    model = SelfScoring(aux)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train = DataLoader(Examples(192, 1), batch_size=32, shuffle=True)
    val = DataLoader(Examples(96, 2), batch_size=32)
    with doctor.watch(model, opt, every=50) as w:
        for _ in range(3):
            model.train()
            for batch in train:
                out = model(**batch)
                opt.zero_grad()
                out["loss"].backward()
                opt.step()
                w.step(out["loss"], y=batch["labels"])
            model.eval()
            total = 0.0
            with torch.no_grad():
                for batch in val:
                    total += model(**batch)["loss"].item() * (len(batch["labels"]) if average == "right" else 1)
            w.validate(total / len(val.dataset))
    return w.report()


@pytest.fixture(scope="module")
def reports():
    return {case: _run(*case) for case in [("wrong", False), ("right", False), ("right", True)]}


def _verdict(report):
    return next((v for v in report.verdicts if v.check == NAME), None)


@pytest.mark.slow
def test_batch_means_over_examples_named_inside_the_model(reports):
    v = _verdict(reports[("wrong", False)])
    assert v is not None and v.status == "fail", v
    assert "wrong denominator" in v.value and "96 examples" in v.value


@pytest.mark.slow
@pytest.mark.parametrize("aux", [False, True])
def test_mean_per_example_not_named(reports, aux):
    v = _verdict(reports[("right", aux)])
    assert v is None or v.status == "pass", v


def test_returned_loss_read_not_the_auxiliary_one():
    """The forward's own ``F.mse_loss`` is a call of a loss function too: only the returned value is kept."""
    from trainwell.doctor.validation_average import ValidationLosses

    losses = ValidationLosses()
    losses.in_forward = True
    model = SelfScoring(aux=True).eval()
    batch = Examples(8, 3)[slice(0, 8)]
    with torch.no_grad():
        losses.began(False, 8)
        out = model(**batch)
        losses.forwarded(False, 8, out=out)
        losses.paused()
    assert [p[0] for p in losses._pending] == []  # the returned sum is neither call's value
    model.aux = False
    with torch.no_grad():
        losses.began(False, 8)
        out = model(**batch)
        losses.forwarded(False, 8, out=out)
        losses.paused()
    assert [p[0] for p in losses._pending] == ["cross_entropy"]
    assert torch.equal(losses._pending[0][3], out["loss"])
