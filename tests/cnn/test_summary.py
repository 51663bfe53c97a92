"""The model summary (cnn/summary.py): output sizes, parameters, receptive fields and the rows autograd never sees."""

import json

import pytest
import torch
from torch import nn

from trainwell.cli import main
from trainwell.cnn.summary import summarize, totals


def test_alexnet_conv1_numbers_from_the_lecture():
    (row,) = summarize(nn.Conv2d(3, 96, 11, stride=4), (3, 227, 227))
    assert row.output_shape == (96, 55, 55)
    assert row.neurons == 290_400
    assert row.params_unshared == 105_705_600  # 290,400 neurons x (11*11*3 + 1)
    assert row.params == 34_944  # 96 x 364
    assert row.receptive_field == (11, 11)
    assert row.mult_adds == 290_400 * 363


@pytest.mark.parametrize("c", [8, 32])
def test_three_3x3_layers_vs_one_7x7(c):
    stack = nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)])
    single = nn.Conv2d(c, c, 7, padding=3, bias=False)
    rows3, rows1 = summarize(stack, (c, 16, 16)), summarize(single, (c, 16, 16))
    assert totals(rows3)["params"] == 27 * c * c and totals(rows1)["params"] == 49 * c * c
    assert rows3[-1].receptive_field == rows1[-1].receptive_field == (7, 7)


def test_receptive_field_grows_with_stride_and_pooling():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.MaxPool1d(2), nn.Conv1d(4, 4, 3), nn.Flatten(), nn.Linear(4 * 7, 2))
    rows = summarize(model, (1, 20))
    assert [r.receptive_field for r in rows[:3]] == [(3,), (4,), (8,)]
    assert rows[-1].receptive_field == (20,)  # a dense layer sees everything
    assert rows[-1].params == rows[-1].params_unshared == 4 * 7 * 2 + 2


@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_summary_cli_on_every_example_config_and_errors(capsys):
    from pathlib import Path

    for path in sorted((Path(__file__).parents[2] / "configs").glob("*.toml")):
        assert main(["summary", str(path)]) == 0, path
    capsys.readouterr()
    assert main(["summary", "--input-shape", "3,227,227", "--json", "--set",
                 "model.blocks=[{type='conv', channels=96, kernel=11, stride=4}]"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert rows[0]["neurons"] == 290_400 and rows[0]["params_unshared"] == 105_705_600
    odd = ["summary", "--input-shape", "1,10", "--set", "model.blocks=[{type='conv', channels=2, kernel=3, stride=2}]"]
    assert main(odd) == 0
    assert "0 (Conv1d): the last 1 along axis 0 of its input never seen" in capsys.readouterr().out
    assert main([*odd, "--set", "model.geometry=strict"]) == 2
    assert "(10-3+2*0)/2+1 = 4.5 is not an integer" in capsys.readouterr().err
    assert main(["summary", "--input-shape", "3,x"]) == 2


def _unseen_by_autograd(w: int, f: int, s: int, p: int) -> int:
    """Trailing input positions whose gradient is exactly zero through a conv with positive weights."""
    x = torch.rand(1, 1, w, dtype=torch.float64, requires_grad=True)
    conv = torch.nn.Conv1d(1, 1, f, stride=s, padding=p, bias=False).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
    conv(x + 1.0).sum().backward()
    seen = (x.grad[0, 0] != 0).tolist()
    return len(seen) - (max(i for i, v in enumerate(seen) if v) + 1)


def test_unseen_rows_agree_with_autograd_and_padding_is_not_input():
    from trainwell.cnn.summary import _unseen

    for w in range(5, 13):
        for f in (1, 2, 3, 5):
            for s in (1, 2, 3):
                for p in range(0, 3):
                    if w + 2 * p < f or f < s:  # f < s skips rows between windows too: not a floor effect
                        continue
                    assert _unseen((w,), (f,), (s,), (p,)) == (_unseen_by_autograd(w, f, s, p),), (w, f, s, p)
    # the ResNet stem on 224: 7x7, stride 2, padding 3 sees every input pixel (torch floors one padded row away)
    assert _unseen((224, 224), (7, 7), (2, 2), (3, 3)) == (0, 0)
    stem = torch.nn.Conv2d(3, 8, 7, stride=2, padding=3)
    from trainwell.cnn.summary import floored_layers, summarize

    assert floored_layers(summarize(torch.nn.Sequential(stem), (3, 224, 224))) == []


class _SharedConv(nn.Module):
    """One conv applied twice (weight sharing across depth) and one ReLU reused, then a head."""

    def __init__(self):
        super().__init__()
        self.c, self.act, self.head = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.head(self.act(self.c(self.act(self.c(x)))).flatten(1))


def test_a_module_called_twice_has_a_row_per_call_and_its_parameters_counted_once():
    model = _SharedConv()
    rows = summarize(model, (4, 8, 8))
    assert [(r.name, r.call) for r in rows] == [("c", 1), ("act", 1), ("c", 2), ("act", 2), ("head", 1)]
    t = totals(rows)
    assert t["params"] == sum(p.numel() for p in model.parameters())  # 2718, torch's own count
    assert t["mult_adds"] == 2 * 4 * 8 * 8 * 4 * 9 + 256 * 10  # both calls compute
    assert t["params_unshared"] == 2 * rows[0].params_unshared + rows[-1].params  # no sharing across calls either
    assert [r.receptive_field for r in rows if r.name == "c"] == [(3, 3), (5, 5)]  # a chain: 3x3, then 3x3 on it


def test_the_summary_table_says_which_rows_repeat_a_layer():
    from rich.console import Console

    from trainwell.cli_tables import layers

    console = Console(width=160, record=True, color_system=None)
    console.print(layers("shared", (4, 8, 8), summarize(_SharedConv(), (4, 8, 8))))
    text = console.export_text()
    assert "c (call 2)" in text and "(148)" in text and "counted once in the total" in text
    total = next(line for line in text.splitlines() if line.lstrip("│ ").startswith("total"))
    assert "2,718" in total
