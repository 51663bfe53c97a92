"""A text classifier over ``nn.EmbeddingBag`` with flat token ids and per-document offsets, as torch's text
classification tutorial builds it. Offsets left as the documents' lengths (the ``cumsum`` forgotten) give most bags
no token: their rows get the bias alone, the same output for different documents, and the loss stays flat. Watch
names the dropped inputs, not the learning rate; the tutorial's offsets pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

VOCAB, CLASSES = 500, 4
NAME = "loop: inputs reach the outputs"


def _documents(n=1024):
    """Token-id documents of 12 to 28 tokens; half of each one's tokens are words of its class."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    docs = []
    for label in labels.tolist():
        length = int(torch.randint(5, 20, (1,), generator=g))
        words = torch.randint(0, 25, (length // 2,), generator=g) + 25 * label
        docs.append(torch.cat([torch.randint(0, VOCAB, (length,), generator=g), words]))
    return docs, labels


def _collate(docs, cumsum: bool):
    lengths = torch.tensor([0] + [len(d) for d in docs[:-1]])
    return torch.cat(docs), lengths.cumsum(0) if cumsum else lengths


class BagClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(VOCAB, 32, mode="mean")
        self.fc = nn.Linear(32, CLASSES)

    def forward(self, ids, offsets):
        return self.fc(self.bag(ids, offsets))


def _train(cumsum: bool):
    torch.manual_seed(0)
    docs, labels = _documents()
    model = BagClassifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with doctor.watch(model, opt) as w:
        for _ in range(3):
            order = torch.randperm(len(docs)).tolist()
            for i in range(0, len(docs), 32):
                batch = order[i : i + 32]
                ids, offsets = _collate([docs[k] for k in batch], cumsum)
                loss = F.cross_entropy(model(ids, offsets), labels[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=labels[batch])
    return w.report()


@pytest.mark.parametrize("cumsum", [True, False])
@pytest.mark.slow  # 0.17 s each on a 2-core CPU (RESULTS §51)
def test_embedding_bag_offsets_left_as_lengths_are_named_not_the_learning_rate(cumsum):
    report = _train(cumsum)
    alarms = [v for v in report if v.status in ("warn", "fail")]
    if cumsum:  # every bag holds its own document's tokens
        assert NAME not in [v.check for v in alarms]
        assert not [v for v in alarms if "lower the learning rate" in (v.advice or "")]
        return
    assert report[NAME].status == "warn" and "cumsum" in report[NAME].advice
    assert [v.check for v in alarms] == [NAME]  # the flat curve's "lower the rate" defers to it


def test_labels_shuffled_apart_from_their_documents_are_not_told_to_lower_the_rate():
    """A flat loss with an embedding table whose update/weight ratio is ~1e-4 and a head whose ratio is ~1e-2: the
    two weights straddle the healthy ~1e-3, so the flat curve asks whether the labels match the inputs."""
    torch.manual_seed(0)
    docs, labels = _documents()
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    model = BagClassifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with doctor.watch(model, opt) as w:
        for _ in range(3):
            for i in range(0, len(docs), 32):
                ids, offsets = _collate(docs[i : i + 32], cumsum=True)
                loss = F.cross_entropy(model(ids, offsets), labels[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=labels[i : i + 32])
    curve = w.report()["learning rate (loss curve)"]
    assert str(curve.value).startswith("flat")
    assert "lower the learning rate" not in curve.advice and "shuffled" in curve.advice


def _queries(n=1024, vocab=12, classes=3):
    """Intent queries of one or two words from a dozen: the same query comes back many times in a batch, and
    some requests arrive empty."""
    g = torch.Generator().manual_seed(0)
    docs = [torch.randint(0, vocab, (int(torch.randint(0, 3, (1,), generator=g)),), generator=g) for _ in range(n)]
    return docs, torch.tensor([int(d[0]) % classes if len(d) else 0 for d in docs])


class QueryBags(nn.Module):
    """Bag of words, summed with per-token weights when given (``per_sample_weights``), averaged otherwise."""

    def __init__(self, weighted: bool):
        super().__init__()
        self.bag = nn.EmbeddingBag(12, 16, mode="sum" if weighted else "mean")
        self.fc = nn.Linear(16, 3)

    def forward(self, ids, offsets, weights=None):
        return self.fc(self.bag(ids, offsets, per_sample_weights=weights))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.slow  # 0.17 s each on a 2-core CPU (RESULTS §51)
def test_the_same_query_twice_in_a_batch_is_not_read_as_dropped_inputs(weighted):
    """Equal bags give equal outputs: two rows with the same tokens, or two empty bags, have the same inputs
    whatever their offsets (also beside per-sample weights, equal for equal tokens)."""
    torch.manual_seed(0)
    docs, labels = _queries()
    model = QueryBags(weighted)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt) as w:
        for _ in range(2):
            order = torch.randperm(len(docs)).tolist()
            for i in range(0, len(docs), 32):
                ids, offsets = _collate([docs[k] for k in order[i : i + 32]], cumsum=True)
                weights = torch.full((len(ids),), 0.5) if weighted else None
                loss = F.cross_entropy(model(ids, offsets, weights), labels[order[i : i + 32]])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=labels[order[i : i + 32]])
    assert NAME not in [v.check for v in w.report() if v.status in ("warn", "fail")]
