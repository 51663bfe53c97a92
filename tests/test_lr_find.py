"""The learning-rate range test (Smith 2017): the sweep, its reading, `trainwell lr-find` and optim.lr = "find"."""

import math

import pytest
import torch

from tests.helpers import boring_net
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.pipeline import fit
from trainwell.train.lr_range import lr_range_test, read_curve

SPIRALS = ["data.name=spirals", "data.options={arms = 3, n_per_class = 60}", "model.kind=mlp",
           "model.hidden=[32,32]", "optim.name=sgd", "optim.schedule=none", "train.epochs=2", "train.batch_size=32"]


def test_the_sweep_is_exponential_stops_on_explosion_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    x = torch.randn(512, 4)
    y = (x[:, 0] > 0).long()
    model = boring_net(4, 16, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.123, momentum=0.9)
    result = lr_range_test(model, opt, x, y, start=1e-5, end=1e3, steps=80, batch_size=32)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:], strict=False)]
    assert result.lrs[0] == pytest.approx(1e-5) and max(ratios) == pytest.approx(min(ratios))  # geometric
    assert "exploded" in result.stopped or "became" in result.stopped  # 1e3 on this problem blows up
    assert len(result.lrs) < 80
    assert result.suggestion == pytest.approx(result.min_lr / 10) and 1e-4 < result.suggestion < 10
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert opt.param_groups[0]["lr"] == 0.123 and not opt.state  # the optimizer is restored too


def test_the_reading_of_a_scripted_curve():
    lrs = [10 ** (-5 + i * 0.1) for i in range(50)]  # 1e-5 .. ~8
    smoothed = [2.0 - 1.5 / (1 + math.exp(-(i - 25) / 3)) if i < 40 else 1.0 + (i - 40) for i in range(50)]
    r = read_curve(lrs, smoothed, smoothed, "test")
    assert r.min_lr == pytest.approx(lrs[39]) and r.suggestion == pytest.approx(lrs[39] / 10)
    assert r.steepest == pytest.approx(lrs[25])  # the logistic falls fastest at its middle
    with pytest.raises(ValueError, match="lower its start rate"):
        read_curve(lrs[:3], [1, 2, 3], [1, 2, 3], "the loss became nan")


@pytest.mark.slow  # 0.37 s each on a 2-core CPU (RESULTS §51)
def test_lr_find_command_prints_a_suggestion_and_writes_the_plot(workdir, capsys):
    sets = [a for s in SPIRALS for a in ("--set", s)]
    assert main(["lr-find", *sets, "--steps", "60", "--out", "lr.png"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("suggested learning rate: ") and "--set optim.lr=" in out and "doctor, a 60-step" in out
    suggested = out.split()[3]
    progress = err.splitlines()  # what runs, as it starts: the command is silent for seconds otherwise
    assert progress[:2] == ["lr-find: loading the data and building the model...",
                            "lr-find: the range test, up to 60 steps while the rate grows from 1e-07 to 10..."]
    assert progress[2].startswith("lr-find: checking ") and "-step run read by the doctor..." in progress[2]
    assert float(progress[-1].split()[2]) == pytest.approx(float(suggested), rel=2e-3)  # the rate last checked
    assert (workdir / "lr.png").stat().st_size > 0
    assert main(["lr-find", "--start", "1", "--end", "0.1"]) == 2


@pytest.mark.slow  # seconds each
def test_optim_lr_find_picks_the_rate_before_training(workdir):
    cfg = load_config(None, [*SPIRALS, 'optim.lr="find"'])
    assert cfg.optim.lr == "find"
    result = fit(cfg, out="run", quiet=True)
    found = result.summary["lr_find"]["suggestion"]
    assert 1e-6 < found < 10 and result.summary["lr_find"]["check"]["check"] == "learning rate (loss curve)"
    assert f"lr = {found}" in (result.run_dir / "config.toml").read_text()  # the run records the number
    with pytest.raises(ConfigError, match="a number or 'find'"):
        load_config(None, ['optim.lr="fast"'])


def _blobs(n=300):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    return torch.randn(n, 4, generator=g) + 2 * torch.nn.functional.one_hot(y, 4).float(), y


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def _curve(x, y=None, model=None, **kw):
    model = model or _net()
    return lr_range_test(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, steps=20, batch_size=50, **kw)


def test_numpy_arrays_and_any_integer_label_dtype_give_the_tensor_curve():
    x, y = _blobs()
    reference = _curve(x, y).losses
    assert _curve(x.numpy(), y.numpy()).losses == reference
    for dtype in (torch.int32, torch.uint8):
        assert _curve(x, y.to(dtype)).losses == reference
    assert _curve((x, y)).losses == reference  # an (x, y) pair, as Trainer.fit takes
    with pytest.raises(TypeError, match=r"y has dtype torch.float32: class labels must be integers"):
        _curve(x, y.float())


def test_a_loader_is_read_batch_by_batch_and_its_generator_restored():
    from torch.utils.data import DataLoader, TensorDataset

    x, y = _blobs()
    model = _net()
    with torch.no_grad():
        first = float(torch.nn.functional.cross_entropy(model(x[:50]), y[:50]))
    assert _curve(DataLoader(TensorDataset(x, y), batch_size=50), model=model).losses[0] == pytest.approx(first)
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    result = _curve(DataLoader(TensorDataset(x, y.int()), batch_size=50, shuffle=True, generator=g))
    assert len(result.losses) == 20 and torch.equal(g.get_state(), state)
    with pytest.raises(TypeError, match="pass a loader alone"):
        _curve(DataLoader(TensorDataset(x, y)), y)


def test_a_model_returning_a_tuple_gives_the_curve_of_its_logits():
    class WithFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _net()

        def forward(self, x):
            return self.net(x), x

    x, y = _blobs()
    assert _curve(x, y, model=WithFeatures()).losses == _curve(x, y, model=_net()).losses


def test_empty_or_mismatched_data_is_named_as_such():
    from torch.utils.data import DataLoader, TensorDataset

    x, y = _blobs()
    with pytest.raises(ValueError, match="got no examples"):
        _curve(x[:0], y[:0])
    with pytest.raises(ValueError, match="the loader yielded no batches"):
        _curve(DataLoader(TensorDataset(x[:0], y[:0]), batch_size=10))
    with pytest.raises(ValueError, match="got 300 inputs but 100 targets"):
        _curve(x, y[:100])


def test_the_test_leaves_torchs_global_random_state_as_it_was():
    x, y = _blobs()
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))
    state = torch.get_rng_state()
    _curve(x, y, model=model)
    assert torch.equal(torch.get_rng_state(), state)


def _ema(raw, beta=0.98):
    avg, out = 0.0, []
    for i, v in enumerate(raw):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def test_a_loss_that_reaches_zero_and_stays_is_read_before_it_did():
    lrs = [10 ** (-6 + i * 0.1) for i in range(70)]  # 1e-6 .. ~8
    raw = [1.1 - 0.02 * max(0, i - 20) for i in range(50)] + [0.0] * 20  # falls from step 21, 0 from step 50 on
    r = read_curve(lrs, raw, _ema(raw), "reached the last rate 10")
    assert r.min_lr == pytest.approx(lrs[49]) and r.suggestion == pytest.approx(lrs[49] / 10)
    assert any("reached 0 at lr" in n for n in r.notes) and not any("may be low" in n for n in r.notes)
    # a zero that does not last (the loss rises again) is read as before
    spiky = raw[:-1] + [0.5]
    assert not any("reached 0" in n for n in read_curve(lrs, spiky, _ema(spiky), "x").notes)
    with pytest.raises(ValueError, match="reached 0 after 2 steps"):
        read_curve(lrs[:20], [1.0, 0.5] + [0.0] * 18, _ema([1.0, 0.5] + [0.0] * 18), "x")


@pytest.mark.parametrize(("argument", "value", "allowed"), [
    ("beta", 1.0, "use a number in [0, 1)"),
    ("beta", -0.1, "use a number in [0, 1)"),
    ("diverge", 0.5, "use a number > 1"),
    ("diverge", 1, "use a number > 1"),
    ("start", 0, "use a finite number > 0"),
    ("start", -1e-7, "use a finite number > 0"),
    ("end", 1e-8, "is not allowed with start=1e-07: use a finite number > start"),
    ("steps", 10.5, "use an integer >= 10"),
    ("steps", 5, "use an integer >= 10"),
    ("batch_size", 2.5, "use an integer >= 1"),
])
def test_each_argument_out_of_range_is_one_line_naming_it_and_what_is_allowed(argument, value, allowed):
    """beta = 1 would divide by zero, a diverge of 1 or less would read the first check as an explosion, start = 0
    is the start's fault, not the end's: each is refused before the model trains, naming the argument."""
    torch.manual_seed(0)
    x = torch.randn(100, 4)
    y = (x[:, 0] > 0).long()
    model = boring_net(4, 8, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as err:
        lr_range_test(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, **{argument: value})
    message = str(err.value)
    assert message.startswith(f"{argument}={value!r} ") and allowed in message and len(message.splitlines()) == 1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
