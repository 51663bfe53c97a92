"""The input-independent baseline's permutation test of the class predictions, taken at several checkpoints of
the training copy: the best checkpoint's p-value is adjusted for the others by the permutation distribution of the
best one (Westfall and Young's min-p), so checkpoints that mostly predict alike count as about one test. A small
GRU on padded, packed token sequences, whose copy memorizes its 192 training sequences and shows its inputs' signal
on the held-out ones only through its class predictions, passes; labels shuffled against the sequences do not."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from trainwell.doctor.baseline import _agreement, input_independent_baseline
from trainwell.doctor.inputs import Inputs

VOCAB, CLASSES = 50, 3


def _script_data():
    """A user's script as it runs: ``torch.manual_seed(0)``, 2000 training and 400 validation token sequences of
    3 to 11 tokens (0 pads them), labelled by their mean token (above half the vocabulary or not) plus whether
    they are longer than 8 (three classes), the model built, then the first 256 sequences of the first shuffled
    epoch (what the pre-flight reads), padded."""
    torch.manual_seed(0)

    def make(n):
        seqs, labels = [], []
        for _ in range(n):
            length = int(torch.randint(3, 12, ()))
            s = torch.randint(1, VOCAB, (length,))
            labels.append(int(s.float().mean() > VOCAB / 2) + int(length > 8))
            seqs.append(s)
        return seqs, torch.tensor(labels)

    seqs, labels = make(2000)
    make(400)
    model = PackedGRU()
    order = torch.randperm(len(seqs))[:256]
    batch = [seqs[i] for i in order]
    lengths = torch.tensor([len(s) for s in batch])
    return model, pad_sequence(batch, batch_first=True, padding_value=0), lengths, labels[order]


class PackedGRU(nn.Module):
    """A user's text classifier: embeddings, a GRU over the packed sequences, a head on its last hidden state."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 32, padding_idx=0)
        self.rnn = nn.GRU(32, 64, batch_first=True)
        self.head = nn.Linear(64, CLASSES)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.emb(x), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        return self.head(h[-1])


def _baseline(shuffle=False):
    model, x, lengths, y = _script_data()
    if shuffle:
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    return input_independent_baseline(model, Inputs((x, lengths)), y, nn.CrossEntropyLoss())


@pytest.mark.slow  # seconds: a GRU trained 100 steps
def test_a_packed_gru_that_memorizes_but_predicts_held_out_classes_beyond_chance_passes():
    verdict = _baseline()
    assert verdict.status == "pass", verdict.value


@pytest.mark.slow  # seconds: a GRU trained 100 steps
def test_a_packed_gru_on_labels_shuffled_against_its_sequences_shows_no_signal():
    verdict = _baseline(shuffle=True)
    assert verdict.status != "pass", verdict.value


def test_checkpoints_that_predict_alike_count_as_about_one_test():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, CLASSES, (64,), generator=g)
    best = labels.clone()
    best[:40] = torch.randint(0, CLASSES, (40,), generator=g)  # right on ~37 of 64: chance is ~21
    single, _ = _agreement([best], labels)
    alike = []
    for i in range(10):  # ten checkpoints, each one prediction away from the best
        p = best.clone()
        p[i] = (p[i] + 1) % CLASSES
        alike.append(p)
    adjusted, tested = _agreement([best, *alike], labels)
    assert tested == 11
    assert adjusted < 3 * single, (adjusted, single)  # Bonferroni would give 11x


def test_the_adjusted_p_value_holds_its_level_on_predictions_independent_of_the_labels():
    g = torch.Generator().manual_seed(0)
    rejected = 0
    for _ in range(100):
        labels = torch.randint(0, CLASSES, (48,), generator=g)
        base = torch.randint(0, CLASSES, (48,), generator=g)
        checkpoints = []
        for _ in range(8):
            p = base.clone()
            flip = torch.rand(48, generator=g) < 0.3
            p[flip] = torch.randint(0, CLASSES, (int(flip.sum()),), generator=g)
            checkpoints.append(p)
        rejected += _agreement(checkpoints, labels, draws=500)[0] < 0.1
    assert rejected <= 18  # 10 expected at a level of 0.1; Binomial(100, 0.1) exceeds 18 with p < 0.01
