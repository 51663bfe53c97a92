"""A sequence classifier that reads its padding (mean over every position, an LSTM's last state after the padding)
is named by check; one that masks the padding, packs its sequences or passes a key padding mask is not."""

import pytest
import torch
from torch import nn

from trainwell import doctor

PAD = 0


def _batch(n=64, length=12, vocab=30):
    torch.manual_seed(0)
    ids = torch.randint(1, vocab, (n, length))
    lengths = torch.randint(3, length + 1, (n,))
    ids[torch.arange(length)[None, :] >= lengths[:, None]] = PAD  # trailing padding
    return ids, (ids[:, 0] % 3)


class MeanPool(nn.Module):
    def __init__(self, masked: bool):
        super().__init__()
        self.masked = masked
        self.emb = nn.Embedding(30, 16, padding_idx=PAD)
        self.head = nn.Linear(16, 3)

    def forward(self, ids):
        h = self.emb(ids)
        if not self.masked:
            return self.head(h.mean(1))  # the padding's zero vectors counted in the mean
        mask = (ids != PAD).unsqueeze(-1).float()
        return self.head((h * mask).sum(1) / mask.sum(1).clamp_min(1))


class LastState(nn.Module):
    def __init__(self, packed: bool):
        super().__init__()
        self.packed = packed
        self.emb = nn.Embedding(30, 16, padding_idx=PAD)
        self.rnn = nn.LSTM(16, 16, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, ids):
        h = self.emb(ids)
        if self.packed:
            lengths = (ids != PAD).sum(1).clamp_min(1)
            h = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        _, (state, _) = self.rnn(h)
        return self.head(state[-1])


class Encoder(nn.Module):
    """A Transformer encoder given its key padding mask as a second input, pooled over the real tokens."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(30, 16, padding_idx=PAD)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, ids, padding):
        h = self.enc(self.emb(ids), src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def _padding_verdicts(model, x, y):
    return [v for v in doctor.check(model, x, y, nn.CrossEntropyLoss()).verdicts if v.check == "padding"]


@pytest.mark.parametrize("model, named", [(MeanPool(masked=False), True), (MeanPool(masked=True), False),
                                          (LastState(packed=False), True), (LastState(packed=True), False)])
@pytest.mark.slow  # seconds each
def test_a_classifier_that_reads_its_padding_is_named(model, named):
    ids, y = _batch()
    found = _padding_verdicts(model, ids, y)
    assert bool(found) == named
    if named:
        assert found[0].status == "warn" and "id 0" in found[0].value and "mask" in found[0].advice


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_key_padding_mask_given_beside_the_ids_is_extended_with_them_and_reads_no_padding():
    ids, y = _batch()
    assert not _padding_verdicts(Encoder(), (ids, ids == PAD), y)


def test_no_probe_without_padding_in_the_batch():
    ids, y = _batch()
    ids[ids == PAD] = 5
    assert not _padding_verdicts(MeanPool(masked=False), ids, y)


class MaskedMeanPool(nn.Module):
    """Masks the id the data pads with (0) while its embedding is told another padding_idx."""

    def __init__(self, padding_idx: int):
        super().__init__()
        self.emb = nn.Embedding(30, 16, padding_idx=padding_idx)
        self.head = nn.Linear(16, 3)

    def forward(self, ids, mask=None):
        keep = (ids != PAD).unsqueeze(-1).float() if mask is None else mask.unsqueeze(-1).float()
        return self.head((self.emb(ids) * keep).sum(1) / keep.sum(1).clamp_min(1))


def test_a_padding_idx_that_is_not_the_data_padding_is_named_as_such():
    ids, y = _batch()
    full = ids[:, -1] != PAD
    ids[full, -1] = 1  # token 1 is a real token: it ends the full-length sequences and occurs inside others
    assert bool(((ids == 1).int().argmax(1) < ids.shape[1] - 1).any())  # the oracle: 1 occurs mid-sequence
    found = _padding_verdicts(MaskedMeanPool(padding_idx=1), ids, y)
    assert len(found) == 1 and found[0].status == "warn"
    assert "padding_idx=1" in found[0].value and "pads with id 0" in found[0].value
    assert "reads its padding" not in found[0].advice and "padding_idx=0" in found[0].advice


def test_ids_padded_with_the_padding_idx_beside_a_0_1_attention_mask_are_not_named():
    ids, y = _batch()
    ids[ids == PAD] = 29  # a tokenizer whose pad id is the last one (RoBERTa's is 1), its attention mask 0/1 ints
    mask = (ids != 29).long()
    assert not _padding_verdicts(MaskedMeanPool(padding_idx=29), (ids, mask), y)


def _watched_padding(padding_idx: int):
    """A user's loop training MaskedMeanPool on padded ids (pad id 0) for 6 steps under doctor.watch."""
    ids, y = _batch()
    torch.manual_seed(0)
    model = MaskedMeanPool(padding_idx=padding_idx)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=2) as w:
        for step in range(6):
            rows = slice(16 * (step % 4), 16 * (step % 4) + 16)
            loss = nn.functional.cross_entropy(model(ids[rows]), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[rows])
    return [v for v in w.report().verdicts if v.check == "loop: padding"]


def test_watch_names_a_padding_idx_the_training_batches_do_not_pad_with():
    found = _watched_padding(padding_idx=1)
    assert len(found) == 1 and found[0].status == "warn"
    assert "padding_idx=1" in found[0].value and "pads with id 0" in found[0].value
    assert "as a real token" in found[0].value and "padding_idx=0" in found[0].advice
    assert not _watched_padding(padding_idx=PAD)  # the twin: the embedding's padding_idx is the data's pad id
