"""The doctor on a validation set that is the training set or overlaps it: the validation loss then measures how
well the model remembers its training examples. The watch keys the rows of the training forwards and of the
validation forwards (those without gradients before ``w.validate()``) and names the share of validation rows that
are training rows. A healthy split passes, also on tabular data whose rows repeat naturally, with augmented
training inputs, and when the training set is evaluated beside the validation set."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Subset, TensorDataset, random_split

from trainwell import doctor
from trainwell.doctor.validation_rows import RowKeys, natural_rate

NAME = "loop: validation examples"


def _blobs(n=768, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 0.8).long()
    return TensorDataset(x, y)


def _discrete(n=768, levels=2, features=4, seed=0):
    """Tabular rows of a few discrete features (levels ** features distinct rows): rows repeat by chance."""
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.randint(0, levels, (n, features), generator=g), torch.randint(0, 3, (n, 1), generator=g)],
                  1).float()
    y = ((x[:, 0] + x[:, 1] + x[:, 4]) > 1.5).long()
    return TensorDataset(x, y)


class TokenClassifier(nn.Module):
    """Token ids embedded, averaged over the sequence, classified."""

    def __init__(self, vocab=20, width=16):
        super().__init__()
        self.embed, self.head = nn.Embedding(vocab, width), nn.Linear(width, 3)

    def forward(self, tokens):
        return self.head(self.embed(tokens).mean(1))


def _tokens(n=768, length=32, vocab=20, seed=0):
    """Sequences of a small vocabulary padded with 0 after a random length: many share most of their tokens."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab, (n, length), generator=g)
    lengths = torch.randint(2, length, (n, 1), generator=g)
    tokens[torch.arange(length) >= lengths] = 0
    return TensorDataset(tokens, (tokens[:, :2].sum(1) % 3))


def _train(train_set, val_set, epochs=2, augment=False, evaluate_training=False):
    """The user's loop: DataLoader batches, a validation pass per epoch under no_grad, then w.validate()."""
    torch.manual_seed(0)
    d = train_set[0][0].numel()
    floating = train_set[0][0].is_floating_point()
    model = nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, 3)) if floating else TokenClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    train = DataLoader(train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    val = DataLoader(val_set, batch_size=64)
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            model.train()
            for xb, yb in train:
                if augment:
                    xb = xb + 0.05 * torch.randn_like(xb)
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                if evaluate_training:
                    for xb, _ in DataLoader(train_set, batch_size=64):
                        model(xb)
                total = sum(float(F.cross_entropy(model(xb), yb, reduction="sum")) for xb, yb in val)
            w.validate(total / len(val_set))
    return next(v for v in w.report().verdicts if v.check == NAME)


def _split(ds, seed=0):
    n_val = len(ds) // 8
    return random_split(ds, [len(ds) - n_val, n_val], generator=torch.Generator().manual_seed(seed))


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_validation_set_that_is_the_training_set_fails():
    tr, _ = _split(_blobs())
    v = _train(tr, tr)
    assert v.status == "fail", v
    assert f"{len(tr)} of {len(tr)} validation rows are training rows" in v.value
    assert "random_split" in v.advice


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_validation_subset_overlapping_the_training_split_is_named():
    ds = _blobs()
    tr, _ = _split(ds)
    va = Subset(ds, list(range(128)))  # indices the training split mostly holds
    expected = len(set(range(128)) & set(tr.indices))
    v = _train(tr, va)
    assert v.status == "fail", v
    assert f"{expected} of 128 validation rows are training rows" in v.value


def test_split_after_duplicating_the_data_is_named():
    ds = _blobs(384)
    tr, va = _split(ConcatDataset([ds, ds]))  # each example's copy lands in the other split 7 times in 8
    v = _train(tr, va)
    assert v.status == "fail", v


def test_healthy_split_passes():
    tr, va = _split(_blobs())
    v = _train(tr, va)
    assert v.status == "pass", v
    assert v.value.startswith("0 of 96 validation rows")


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_tabular_rows_that_repeat_naturally_pass():
    for levels, features in ((2, 4), (4, 6)):  # 48 and 12288 distinct rows: most and some rows have a twin
        tr, va = _split(_discrete(levels=levels, features=features))
        v = _train(tr, va)
        assert v.status == "pass", v
        assert "of 96 validation rows equal a training row, as the training rows' own duplicate rate explains" \
            in v.value and not v.value.startswith("0 of")


def test_tabular_rows_that_repeat_naturally_still_name_the_training_set_as_validation():
    tr, _ = _split(_discrete(levels=4, features=6))
    v = _train(tr, tr)
    assert v.status == "fail", v


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_token_sequences_are_keyed_whole():
    tr, va = _split(_tokens())
    assert _train(tr, va).status == "pass"
    assert _train(tr, tr).status == "fail"


def test_augmented_training_inputs_against_the_training_set_pass():
    tr, _ = _split(_blobs())
    assert _train(tr, tr, augment=True).status == "pass"


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_training_set_evaluated_beside_the_validation_set_is_not_counted():
    tr, va = _split(_blobs())
    v = _train(tr, va, evaluate_training=True)
    assert v.status == "pass", v
    assert "not counted" in v.value
    tr, va = _split(_discrete(levels=5, features=4))  # a third of the validation rows have a natural twin
    v = _train(tr, va, evaluate_training=True)
    assert v.status == "pass", v
    assert "not counted" in v.value


def test_row_keys_match_equal_rows_only():
    keys = RowKeys()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 8, 8, generator=g)
    k, elements = keys(x)
    assert torch.equal(k, keys(x.clone())[0]) and elements.shape == (64, 16)
    assert len(torch.unique(k)) == 64
    assert not torch.isin(keys(x + 1e-3)[0], k).any()  # augmented rows
    tokens = torch.randint(0, 50, (32, 128), generator=g)
    changed = tokens.clone()
    changed[:, 77] = (changed[:, 77] + 1) % 50  # one token off: another sequence
    assert not torch.isin(keys(changed)[0], keys(tokens)[0]).any()
    small = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # rows of two elements, keyed whole
    assert keys(small)[0][0] == keys(small)[0][2] != keys(small)[0][1]


def test_natural_rate_counts_twins_whose_elements_recur_beyond_the_row():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 6, generator=g)
    keys = RowKeys()
    copied = torch.cat([x, x[:50]])  # exact copies of continuous rows: not natural
    assert natural_rate(*keys(copied)) == 0.0
    discrete = torch.randint(0, 2, (200, 3), generator=g).float()  # 8 distinct rows: every row has a twin
    assert natural_rate(*keys(discrete)) == 1.0
    constant = torch.zeros(200, 6)  # one input shared by every row (an initial state): no copies
    assert natural_rate(*keys(constant)) == 1.0


def test_token_sequences_split_after_duplicating_the_data_are_named():
    """Token ids from a small vocabulary recur in every column, but a whole sequence of them does not come twice by
    chance: twins are copies, made before the split."""
    ds = _tokens(384)
    tr, va = _split(ConcatDataset([ds, ds]))
    assert _train(tr, va).status == "fail"


def _answers(n=768, questions=10, seed=0):
    """A questionnaire: 10 answers on a 1..5 scale, each the respondent's trait plus a little noise: rows repeat
    by chance, among rows that differ from them in one answer."""
    g = torch.Generator().manual_seed(seed)
    trait = torch.randn(n, 1, generator=g)
    x = (3 + 1.5 * trait + 0.3 * torch.randn(n, questions, generator=g)).round().clamp(1, 5)
    return TensorDataset(x, (trait[:, 0] > 0).long())


def test_correlated_discrete_answers_that_repeat_naturally_pass():
    tr, va = _split(_answers())
    v = _train(tr, va)
    assert v.status == "pass" and "as the training rows' own duplicate rate explains" in v.value, v


def test_correlated_discrete_answers_split_after_duplicating_them_are_named():
    tr, va = _split(ConcatDataset([_answers(384, seed=1)] * 2))
    assert _train(tr, va).status == "fail"
