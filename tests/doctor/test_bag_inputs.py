"""``doctor.check`` on a text classifier over ``nn.EmbeddingBag`` given the flat layout of torch's text
classification tutorial: ``x = (text, offsets)``, every document's token ids end to end and the B offsets where
each starts, with B labels. The examples are the bags: a subset takes whole bags and offsets of its own. Labels
shuffled apart from their documents are named by the held-out baseline; offsets built from the running sum of
every length are named in the error, as a loop would raise on them."""

import pytest
import torch
from torch import nn

from trainwell import doctor

VOCAB, CLASSES = 200, 4


class TextClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.EmbeddingBag(VOCAB, 32, mode="mean")
        self.fc = nn.Linear(32, CLASSES)

    def forward(self, text, offsets):
        return self.fc(self.emb(text, offsets))


def _documents(n=256):
    """Documents of 4 to 17 tokens: their class's words and shared words, as token ids with their lengths."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    docs = []
    for label in labels.tolist():
        length = int(torch.randint(3, 12, (1,), generator=g))
        docs.append(torch.cat([torch.randint(40 * label, 40 * label + 40, (length,), generator=g),
                               torch.randint(160, VOCAB, (length // 2,), generator=g)]))
    return torch.cat(docs), torch.tensor([len(d) for d in docs]), labels


def _offsets(lengths):
    return torch.cat([torch.zeros(1, dtype=torch.long), lengths[:-1]]).cumsum(0)


def test_a_subset_of_bags_takes_whole_bags_with_offsets_of_its_own():
    from trainwell.doctor.bags import Bags, bag_inputs

    text, offsets = torch.arange(10), torch.tensor([0, 3, 4, 8])
    x = bag_inputs((text, offsets), TextClassifier())
    assert isinstance(x, Bags) and len(x) == 4
    picked = x[torch.tensor([2, 0])]
    assert picked.fields[0].tolist() == [4, 5, 6, 7, 0, 1, 2] and picked.fields[1].tolist() == [0, 4]
    assert x[3:].fields[0].tolist() == [8, 9] and x[3:].fields[1].tolist() == [0]
    assert bag_inputs((text, offsets), nn.Linear(2, 2)) is None  # no EmbeddingBag: rows are the examples


@pytest.fixture(scope="module")
def reports():
    text, lengths, labels = _documents()
    out = {}
    for name, y in (("healthy", labels), ("shuffled", labels[torch.randperm(len(labels),
                                                                           generator=torch.Generator().manual_seed(1))])):
        torch.manual_seed(0)
        model = TextClassifier()
        out[name] = doctor.check(model, (text, _offsets(lengths)), y, nn.CrossEntropyLoss(),
                                 optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    return out


@pytest.mark.slow  # 2 checks, 0.7 s on a 2-core CPU
def test_a_healthy_bag_classifier_is_checked_not_refused(reports):
    report = reports["healthy"]
    assert report["overfit a tiny subset"].status == "pass"
    assert report["input-independent baseline"].status == "pass"
    assert report["batch independence"].status == "pass"
    assert report.failed == [] and report.warnings == []


@pytest.mark.slow
def test_labels_shuffled_apart_from_their_documents_are_named_by_the_baseline(reports):
    baseline = reports["shuffled"]["input-independent baseline"]
    assert baseline.status in ("warn", "fail") and "labels" in baseline.advice


def test_offsets_of_every_length_beside_a_leading_zero_are_named():
    text, lengths, labels = _documents(64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])  # one entry too many
    with pytest.raises(ValueError, match="include_last_offset=True"):
        doctor.check(TextClassifier(), (text, offsets), labels, nn.CrossEntropyLoss())


def test_offsets_that_are_the_running_sum_of_every_length_are_named():
    text, lengths, labels = _documents(64)
    with pytest.raises(ValueError, match="running sum of every bag's length"):
        doctor.check(TextClassifier(), (text, lengths.cumsum(0)), labels, nn.CrossEntropyLoss())


class WeightedBags(nn.Module):
    """Bags of weighted tokens (``per_sample_weights``), the bag offsets ending with the number of tokens."""

    def __init__(self, centered: bool):
        super().__init__()
        self.centered = centered
        self.emb = nn.EmbeddingBag(VOCAB, 8, mode="sum", include_last_offset=True)
        self.fc = nn.Linear(8, CLASSES)

    def forward(self, text, offsets, weights):
        bags = self.emb(text, offsets, per_sample_weights=weights)
        if self.centered:  # the bug: centred on the batch's mean bag, so each output reads the other bags
            bags = bags - bags.mean(0, keepdim=True)
        return self.fc(bags)


@pytest.mark.parametrize("centered", [False, True])
def test_batch_independence_reads_each_bags_weighted_tokens_as_its_own(centered):
    from trainwell.doctor.bags import bag_inputs
    from trainwell.doctor.batch_independence import batch_independence

    torch.manual_seed(0)
    text, lengths, _ = _documents(16)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    weights = torch.rand(len(text), generator=torch.Generator().manual_seed(2))
    model = WeightedBags(centered)
    verdict = batch_independence(model, bag_inputs((text, offsets, weights), model))
    assert verdict.status == ("fail" if centered else "pass"), verdict
