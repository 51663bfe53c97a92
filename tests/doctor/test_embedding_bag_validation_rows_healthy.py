"""A bag-of-words classifier fed an ``nn.EmbeddingBag``'s flat input: the documents' token ids concatenated into one
1-D tensor, with the offsets where each begins (the torchtext tutorial's text classifier). Its rows are tokens, so
every validation token is some training token; ``loop: validation examples`` does not call that a leak. The same
model evaluated on its training documents, fed as (documents, length) rows, is still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.validation_rows import flat_bags

NAME = "loop: validation examples"
V, C, L = 200, 4, 12


def _data():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(480) % C
    topic = torch.randint(0, V, (C, 10), generator=g)
    docs = torch.randint(0, V, (480, L), generator=g)
    docs[:, :5] = topic[labels][:, torch.randint(0, 10, (5,), generator=g)]
    return docs, labels


class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(V, 16, mode="mean")
        self.fc = nn.Linear(16, C)

    def forward(self, text, offsets=None):
        return self.fc(self.bag(text, offsets))


def _run(kind: str):
    torch.manual_seed(0)
    docs, labels = _data()
    model = Bag()
    opt = torch.optim.SGD(model.parameters(), lr=2.0)
    val = torch.arange(384, 480) if kind == "flat" else torch.arange(96)  # the leak: training documents

    def forward(rows):
        if kind == "flat":  # every document's ids concatenated, with their offsets
            return model(docs[rows].reshape(-1), torch.arange(len(rows)) * L)
        return model(docs[rows])

    with doctor.watch(model, opt, every=10) as w:
        for _ in range(3):
            model.train()
            for rows in torch.randperm(384).split(32):
                loss = F.cross_entropy(forward(rows), labels[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(forward(val), labels[val]).item())
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def reports():
    return {kind: _run(kind) for kind in ("flat", "leaked")}


@pytest.mark.slow
def test_flat_token_ids_of_an_embedding_bag_are_not_training_rows(reports):
    v = reports["flat"].get(NAME)
    assert v is None or v.status == "pass", v


@pytest.mark.slow
def test_training_documents_evaluated_as_rows_are_still_named(reports):
    v = reports["leaked"].get(NAME)
    assert v is not None and v.status == "fail", v


def test_flat_bags_are_token_ids_beside_shorter_offsets():
    text, offsets = torch.randint(0, V, (40,)), torch.tensor([0, 12, 30])
    assert flat_bags((text, offsets), {}, text)
    assert flat_bags((text,), {"offsets": offsets}, text)
    users, items = torch.randint(0, 9, (40,)), torch.randint(0, 9, (40,))
    assert not flat_bags((users, items), {}, users)  # a recommender's pairs: one row per example
    assert not flat_bags((text.view(4, 10),), {}, text.view(4, 10))  # (bags, length) rows
