"""``CSVLogger("runs/a/metrics.csv")`` in a folder that does not exist yet creates it, as ``Checkpoint("runs/a")``
does; it used to raise FileNotFoundError at the end of the first epoch, after that epoch's training. A
``Checkpoint`` folder holds only the checkpoints it wrote."""
import csv

import pytest
import torch
from torch import nn

from trainwell.train import CSVLogger, Trainer


def test_the_logger_creates_its_folder_and_writes_the_history(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    path = tmp_path / "runs" / "a" / "metrics.csv"
    state = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=8,
                    callbacks=[CSVLogger(path)]).fit((x, y), (x, y))
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row, record in zip(rows, state.history, strict=True):
        assert float(row["train_loss"]) == pytest.approx(record["train_loss"], rel=1e-6)
        assert float(row["val_loss"]) == pytest.approx(record["val_loss"], rel=1e-6)


def test_a_checkpoint_folder_holds_only_what_the_checkpoint_wrote(tmp_path):
    from trainwell.train import Checkpoint

    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8,
            callbacks=[Checkpoint(tmp_path / "run")]).fit((x, y), (x, y))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoints"]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
