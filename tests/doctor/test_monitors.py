"""The training monitors (doctor/monitors.py): per-layer records, dead ReLUs, saturated tanh, huge updates."""

import math
import re

import pytest
import torch
from torch import nn

from tests.doctor_fixtures import healthy
from trainwell.doctor.monitors import Monitor
from trainwell.train import Trainer


def run_with_monitor(model, x, y, lr=0.01, steps_every=5, epochs=3):
    mon = Monitor(every=steps_every)
    Trainer(model, torch.optim.SGD(model.parameters(), lr), epochs=epochs, batch_size=32, callbacks=[mon],
            device="cpu").fit((x, y))
    return mon


def test_monitor_records_layers_and_flags_dead_relus_with_the_step(spirals):
    x, y = spirals
    mon = run_with_monitor(healthy(), x, y)
    assert mon.records and mon.records[0]["step"] == 5  # the 6th step was observed whole
    first = mon.records[0]
    assert set(first["activations"]) == {"1", "3"}
    assert {"mean", "std", "dead", "hist", "grad_hist"} <= set(first["activations"]["1"])
    assert all(0 < r < 1 for r in first["update_ratio"].values())
    assert mon.verdicts()[0].status == "pass"
    dead = healthy()
    with torch.no_grad():
        dead[0].bias.fill_(-100.0)
    mon = run_with_monitor(dead, x, y)
    dead_layers = {w["where"]: w["step"] for w in mon.warnings if w["kind"] == "dead ReLUs"}
    assert dead_layers.get("1") == 5


def test_monitor_flags_saturated_tanh_and_huge_updates(spirals):
    x, y = spirals
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 3))
    with torch.no_grad():
        model[0].weight.mul_(200)
    mon = run_with_monitor(model, x * 10, y, lr=50.0)
    kinds = {w["kind"] for w in mon.warnings}
    assert "saturated units" in kinds and "update/weight ratio" in kinds
    assert all(v.status == "warn" for v in mon.verdicts())
    [ratio] = [v for v in mon.verdicts() if v.check == "monitor: update/weight ratio"]  # read over the weights
    assert re.match(r"the updates at step \d+: median update/weight \S+ over 2 weight tensors", ratio.value), ratio


def test_activation_stats_count_dead_units_and_bin_values_as_torch_does():
    """The dead fraction is the share of units (one per feature and position) not positive on any example of the
    batch, counted here one unit at a time; the histogram equals ``torch.histc`` over the tensor's own range."""
    from trainwell.doctor.activation_statistics import _hist, activation_stats

    g = torch.Generator().manual_seed(0)
    out = torch.relu(torch.randn(16, 6, 5, generator=g) - 1.5)
    out[:, 2, :] = 0.0  # channel 2 dead at every position
    stats = activation_stats(nn.ReLU(), out, bins=7)
    units = out.reshape(16, -1)
    dead = sum(all(float(units[i, j]) <= 0 for i in range(16)) for j in range(units.shape[1]))
    assert abs(stats["dead"] - dead / units.shape[1]) < 1e-7 and dead >= 5  # a float32 mean
    lo, hi = float(out.min()), float(out.max())
    assert stats["hist"] == {"lo": lo, "hi": hi, "counts": torch.histc(out, 7, lo, hi).tolist()}
    with_nan = out.clone()
    with_nan[0, 0, 0] = float("nan")
    kept = with_nan[torch.isfinite(with_nan)]
    assert _hist(with_nan, 7)["counts"] == torch.histc(kept, 7, float(kept.min()), float(kept.max())).tolist()


@pytest.mark.parametrize("offset,scale,bins", [(0.0, 1.0, 30), (1000.0, 1e-3, 30), (-3.0, 50.0, 7), (0.0, 1.0, 300),
                                               (0.0, 1.0, 126), (0.0, 1.0, 127), (0.0, 1.0, 255)])
def test_uniform_counts_equal_torch_histc_away_from_the_edges(offset, scale, bins):
    """The monitor's binning against ``torch.histc`` over the values' own range (large offsets included, where
    ``v * scale - lo * scale`` would round whole bins away): equal counts for values not within a rounding error
    of an inner edge, every value counted, the top value in the last bin."""
    from trainwell.doctor.activation_statistics import uniform_counts

    g = torch.Generator().manual_seed(bins)
    t = torch.randn(20000, generator=g) * scale + offset
    lo, hi = float(t.min()), float(t.max())
    width = (hi - lo) / bins
    frac = ((t.double() - lo) / width) % 1.0
    t = t[(frac > 1e-3) & (frac < 1 - 1e-3) | (t == lo) | (t == hi)]  # the range's ends stay
    counts = uniform_counts(t, bins, lo, hi)
    assert counts == torch.histc(t, bins, lo, hi).long().tolist()
    assert sum(counts) == t.numel() and counts[-1] >= 1 and counts[0] >= 1
    assert uniform_counts(torch.tensor([0.0, 0.5, 1.0, 1.0]), 2, 0.0, 1.0) == [1, 3]
    tiny = torch.tensor([0.0, 1.4e-45, 2.8e-45, 4.2e-45])  # float32's smallest subnormal steps
    if not torch.equal(tiny, torch.zeros(4)):  # (unless this machine flushes subnormals)
        assert uniform_counts(tiny, 3, 0.0, float(tiny.max())) == [1, 1, 2]


@pytest.mark.parametrize("n", [4096, 4097, 20001])
@pytest.mark.parametrize("length", [2, 31, 128])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8])
def test_counting_two_values_at_a_time_equals_torch_bincount(n, length, dtype):
    from trainwell.doctor.activation_statistics import _paired_bincount

    g = torch.Generator().manual_seed(n + length)
    idx = torch.randint(0, length, (n,), generator=g).to(dtype)
    idx[0], idx[-1] = 0, length - 1  # both ends of the range, an odd last value included
    assert torch.equal(_paired_bincount(idx, length), torch.bincount(idx, minlength=length))


def test_a_relu_output_is_binned_as_torch_histc_bins_it():
    """A ReLU's output starts at exactly 0 (nothing subtracted): the same counts as ``torch.histc`` away from
    the inner edges, the zeros in the first bin."""
    from trainwell.doctor.activation_statistics import uniform_counts

    t = torch.relu(torch.randn(50_000, generator=torch.Generator().manual_seed(0)))
    lo, hi = 0.0, float(t.max())
    frac = (t.double() / ((hi - lo) / 30)) % 1.0
    t = t[(frac > 1e-3) & (frac < 1 - 1e-3) | (t == lo) | (t == hi)]
    counts = uniform_counts(t, 30, lo, hi)
    assert counts == torch.histc(t, 30, lo, hi).long().tolist() and counts[0] >= int((t == 0).sum()) > 20_000


@pytest.mark.parametrize("kind", ["relu", "gradient", "tanh", "offset", "float64", "huge", "strided", pytest.param(
    "one", marks=pytest.mark.filterwarnings("ignore:std.*degrees of freedom"))])  # torch warns: n - 1 = 0
def test_the_monitors_std_equals_torch_std(kind):
    """From the sum of squares where that cannot cancel or overflow (to float rounding), torch's own otherwise
    (exactly)."""
    from trainwell.doctor.activation_statistics import _std

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 40, 50, generator=g)
    t = {"relu": torch.relu(x), "gradient": x * 1e-4, "tanh": torch.tanh(x + 0.5), "offset": x * 0.01 + 1000.0,
         "float64": x.double(), "huge": x * 1e20, "one": x[:1, :1, :1], "strided": x[:, :, ::2]}[kind]
    want = float(t.std())
    got = _std(t, float(t.mean()))
    if kind in ("offset", "float64", "huge", "one", "strided"):  # torch's own kernel: the same number
        assert got == want or (math.isnan(got) and math.isnan(want))
    else:
        assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("lr, flagged", [(0.05, False), (20.0, True)])
def test_one_of_two_weight_tensors_above_the_band_is_not_a_learning_rate_too_high(lr, flagged):
    """A one-hidden-layer MLP under SGD with momentum, watched every 5 steps: in the first steps the small head's
    update/weight ratio is above 0.1 while the first layer's is near 1e-2; both above the band is a rate too high."""
    from trainwell import doctor

    g = torch.Generator().manual_seed(0)
    centers = 1.5 * torch.randn(4, 16, generator=g)
    y = torch.randint(0, 4, (1024,), generator=g)
    x = centers[y] + torch.randn(1024, 16, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, 1024, 64):
            loss = nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    steps = [r["update_ratio"] for r in w.monitor.records]
    if not flagged:
        assert max(steps[0].values()) > 0.1 > min(steps[0].values())  # one tensor above the band, one inside
    assert ("monitor: update/weight ratio" in w.report().checks) == flagged
