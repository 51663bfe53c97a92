"""Inputs and labels shuffled apart: two DataLoaders with ``shuffle=True`` zipped, or a fresh permutation applied to
the inputs only, give every input a label drawn afresh each epoch. The watch names it
(``loop: labels follow their inputs``) from a row that comes back with another label; one DataLoader over
``TensorDataset(x, y)``, pseudo-labels revised for some rows, and rows of few discrete values that repeat with
other labels by nature pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.row_labels import NAME, RowLabels


def _data(n=256):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 10, generator=g)
    return x, (x @ torch.randn(10, 4, generator=g)).argmax(1)


def _train(batches, x_all):
    """A user's loop over ``batches()`` (a fresh pass per epoch); the verdict it gets."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(3):
            for xb, yb in batches():
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return next((v for v in w.report().verdicts if v.check == NAME), None)


@pytest.fixture(scope="module")
def verdicts():
    x, y = _data()
    torch.manual_seed(0)
    x_loader, y_loader = DataLoader(x, batch_size=32, shuffle=True), DataLoader(y, batch_size=32, shuffle=True)
    pairs = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)

    def inputs_only():  # a permutation for the inputs, the labels left in order
        perm = torch.randperm(len(x))
        return [(x[perm][i:i + 32], y[i:i + 32]) for i in range(0, len(x), 32)]
    return {"zipped": _train(lambda: zip(x_loader, y_loader, strict=True), x), "inputs_only": _train(inputs_only, x),
            "together": _train(lambda: iter(pairs), x)}


@pytest.mark.slow
def test_two_zipped_loaders_are_named(verdicts):
    v = verdicts["zipped"]
    assert v is not None and v.status == "fail" and "do not follow their inputs" in v.value
    assert "TensorDataset(x, y)" in v.advice


@pytest.mark.slow
def test_a_permutation_of_the_inputs_only_is_named(verdicts):
    assert verdicts["inputs_only"] is not None and verdicts["inputs_only"].status == "fail"


@pytest.mark.slow
def test_one_loader_over_pairs_passes(verdicts):
    assert verdicts["together"] is None


def _read(rows, label_sets):
    """RowLabels fed the same ``rows`` once per entry of ``label_sets`` (one step per 32 rows)."""
    reader = RowLabels()
    for labels in label_sets:
        for i in range(0, len(rows), 32):
            reader.forward(rows[i:i + 32])
            reader.step(labels[i:i + 32])
    return reader.verdict()


def test_pseudo_labels_revised_for_a_fifth_of_the_rows_pass():
    x, y = _data()
    g = torch.Generator().manual_seed(1)
    revised = torch.where(torch.rand(len(y), generator=g) < 0.2, torch.randint(0, 4, y.shape, generator=g), y)
    assert _read(x, [y, revised, y]) is None


def test_labels_drawn_afresh_each_epoch_fail():
    x, y = _data()
    g = torch.Generator().manual_seed(1)
    v = _read(x, [y[torch.randperm(len(y), generator=g)] for _ in range(3)])
    assert v is not None and v.status == "fail"


def test_discrete_rows_that_repeat_with_other_labels_by_nature_pass():
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 2, (512, 3), generator=g).float()  # 8 distinct rows: each comes with every label
    y = torch.randint(0, 4, (512,), generator=g)
    assert _read(x, [y, y]) is None


def test_float_targets_and_too_few_returns_are_not_read():
    x, y = _data(48)  # 48 returns, under the 64 read
    assert _read(x, [y.float(), y.float()]) is None
    assert _read(x, [y, y[torch.randperm(48, generator=torch.Generator().manual_seed(0))]]) is None


def test_contrastive_positions_and_one_id_per_row_are_not_read():
    x, y = _data()
    g = torch.Generator().manual_seed(3)
    positions = [torch.arange(len(x)) for _ in range(3)]  # arange(B) per batch: each row's label is its position
    shuffled = [x[torch.randperm(len(x), generator=g)] for _ in range(3)]
    reader = RowLabels()
    for rows, labels in zip(shuffled, positions, strict=True):
        for i in range(0, len(rows), 32):
            reader.forward(rows[i:i + 32])
            reader.step(labels[i:i + 32] - i)
    assert reader.verdict() is None
    users = torch.randint(0, 40, (256,), generator=g)  # a recommender's user ids: one id per row, labels vary
    assert _read(users, [torch.randint(0, 2, (256,), generator=g) for _ in range(3)]) is None
