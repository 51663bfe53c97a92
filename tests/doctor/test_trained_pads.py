"""A tagger's loss that trains the padding: the pad tag 0 is a class index and ``ignore_index`` is left at its
default -100, in training and validation alike (so the validation does not expose it). The watch reads the
gradient the loss sends to the padded positions' scores; the twin passes ``ignore_index=0`` and is not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

V, T, TAGS = 30, 10, 5  # vocabulary, length, tags (0 = <pad>)
NAME = "loop: padding in the loss"


def _sentences(n, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (n, T), generator=g)
    tags = 1 + ids % (TAGS - 1)
    pad = torch.arange(T) >= torch.randint(3, T + 1, (n, 1), generator=g)
    ids[pad], tags[pad] = 0, 0
    return ids, tags


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 16, padding_idx=0)
        self.rnn = nn.GRU(16, 16, batch_first=True)
        self.out = nn.Linear(16, TAGS)

    def forward(self, ids):
        return self.out(self.rnn(self.emb(ids))[0])


def _run(ignore: int):
    torch.manual_seed(0)
    x, y = _sentences(256, 0)
    xv, yv = _sentences(64, 1)
    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    with doctor.watch(model, opt, every=4) as w:
        for _ in range(2):
            model.train()
            for ids, tags in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(ids).reshape(-1, TAGS), tags.reshape(-1), ignore_index=ignore)
                loss.backward()
                opt.step()
                w.step(loss, y=tags)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xv).reshape(-1, TAGS), yv.reshape(-1), ignore_index=ignore).item())
    return {v.check: v for v in w.report()}


@pytest.fixture(scope="module")
def reports():
    return _run(-100), _run(0)


@pytest.mark.slow
def test_pads_trained_in_both_splits_are_named(reports):
    bug = reports[0][NAME]
    assert bug.status == "warn" and "input id 0" in bug.value and "ignore_index" in bug.advice


@pytest.mark.slow
def test_pads_ignored_are_not_named(reports):
    assert NAME not in reports[1]
