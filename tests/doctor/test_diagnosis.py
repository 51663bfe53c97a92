"""The diagnoses read off a run (doctor/diagnosis.py): the learning rate from the loss curve, bias and variance,
overfitting, and advice that agrees across verdicts."""

import math

import pytest
import torch

from tests import doctor_fixtures
from trainwell.data import load
from trainwell.doctor.diagnosis import bias_variance, learning_rate_diagnosis, overfitting


def test_lr_diagnosis_on_synthetic_curves():
    t = torch.arange(400, dtype=torch.float64)
    noise = 0.01 * torch.randn(400, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    good = (2.3 * torch.exp(-t / 40) + 0.05 + noise).tolist()
    low = (2.3 - 0.001 * t + noise).tolist()
    plateau = (1.0 + 1.3 * torch.exp(-t / 3) + noise).tolist()
    rising = (1.0 + 0.002 * t + noise).tolist()
    nan = good[:50] + [math.nan] + good[51:]
    bouncing = (0.6 + 1.7 * torch.exp(-t / 30) + 0.5 * (1 + torch.sin(2 * math.pi * t / 200))).tolist()
    assert learning_rate_diagnosis(good).value.startswith("good")
    assert learning_rate_diagnosis(low).value.startswith("too low")
    assert learning_rate_diagnosis(plateau).value.startswith("high")
    assert learning_rate_diagnosis(rising).status == "fail"
    assert learning_rate_diagnosis(nan).status == "fail"
    assert learning_rate_diagnosis([1.0, math.inf] * 10).status == "fail"
    assert learning_rate_diagnosis(bouncing).value.startswith("too high")


@pytest.mark.parametrize("steps", [0, 1, 5, 9])
def test_lr_diagnosis_never_passes_too_few_steps(steps):
    v = learning_rate_diagnosis([2.3 * 0.9**i for i in range(steps)])
    assert v.status != "pass" and v.value.startswith("unknown")


def test_lr_diagnosis_noisy_slow_curves_are_not_too_high():
    """Noise divided by a tiny drop read "too high"; slow mini-batch curves must read too low or flat. A linear fall
    of 0.72 with noise 0.3 leaves 35% of the drop to the second half beyond a bending curve's, 3.8 noise sigmas of
    the 10%-of-run means on average: where the noise brings it under 3 sigmas the shape reads "noisy"; with noise
    0.1 (11 sigmas) every seed reads too low. A draw that bends the noisy line to over 60% of its drop by
    mid-run is read like any small drop that bends: "noisy" where its second-half fall is within 3 sigmas of a
    bending curve's."""
    t = torch.arange(400, dtype=torch.float64)
    labels = []
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        slow = (2.3 - 0.002 * t + 0.3 * torch.randn(400, generator=g, dtype=torch.float64)).tolist()
        labels.append(learning_rate_diagnosis(slow, 8).value)
        clearer = (2.3 - 0.002 * t + 0.1 * torch.randn(400, generator=g, dtype=torch.float64)).tolist()
        assert learning_rate_diagnosis(clearer, 8).value.startswith("too low")
        almost_flat = (1.1 - 0.0001 * t + 0.05 * torch.randn(400, generator=g, dtype=torch.float64)).tolist()
        assert learning_rate_diagnosis(almost_flat, 8).value.split(":")[0] in ("flat", "too low")
        assert learning_rate_diagnosis([1.0986] * 300).value.startswith("flat")
    within_noise = ("noisy: a near-linear decrease, but within the batch noise",
                    "noisy: a small drop whose second half falls within the batch noise of a bending curve's")
    assert all(v.startswith(("too low", *within_noise)) for v in labels), labels
    assert sum(v.startswith("too low") for v in labels) >= 14, labels


def test_lr_diagnosis_reads_a_plateau_as_high_only_beyond_the_batch_noise():
    """A plateau (over 97% of the drop by mid-run) must stand out of the noise of the k-step means against a curve
    still bending (85%): a one-sided 2-sigma test, so a bending curve reads "high" on ~2% of noise draws."""
    t = torch.arange(96, dtype=torch.float64)

    def label(tau, amp, noise, seed):
        z = torch.randn(96, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return learning_rate_diagnosis((1.0 + amp * torch.exp(-t / tau) + noise * z).tolist()).value.split(":")[0]

    # a fast drop then a level, with little noise: "high" (its share stands > 10 sigmas above a bending curve's)
    assert all(label(5, 0.3, 0.002, seed) == "high" for seed in range(20))
    # a curve that makes ~87% of its drop by mid-run, with 5% per-step noise (a 96-step mini-batch run)
    bending = [label(25, 0.2, 0.05, seed) for seed in range(200)]
    assert bending.count("high") <= 10, bending.count("high")
    assert bending.count("levelled off") > bending.count("high")


def sgd_curve(lr, batch_size, seed, epochs=40, dead=False):
    """Per-step losses of plain SGD on spirals with a user-written loop (no trainwell trainer)."""
    x, y = load("spirals", n_per_class=100).train
    return doctor_fixtures.sgd_curve(x, y, lr, batch_size, seed, epochs, dead)


# Non-chaotic regimes only: the verdict must not depend on the CPU's rounding (a lr = 3.0 run is chaotic and
# read "high" or "too high" depending on the machine). Calibration over lr 1e-3..30: benchmarks/RESULTS.md.
@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("batch_size", [32, 10_000])
def test_lr_diagnosis_on_real_runs_holds_across_batch_sizes_and_seeds(seed, batch_size):
    epochs = 40 if batch_size < 1000 else 300
    assert learning_rate_diagnosis(sgd_curve(0.003, batch_size, seed, epochs)).value.startswith("too low")
    assert learning_rate_diagnosis(sgd_curve(0.3, batch_size, seed, epochs)).value.startswith("good")
    exploding = sgd_curve(30.0, batch_size, seed, 5 if batch_size < 1000 else 20)
    assert learning_rate_diagnosis(exploding).value.startswith("too high")
    dead = learning_rate_diagnosis(sgd_curve(0.1, batch_size, seed, epochs, dead=True))
    assert dead.value.startswith("flat") and dead.status != "pass"


def test_bias_variance_and_overfitting():
    assert bias_variance(0.01, 0.02, 0.0).status == "pass"
    v = bias_variance(0.30, 0.32, 0.04)
    assert v.value.startswith("high bias") and "bigger model" in v.advice
    v = bias_variance(0.02, 0.20, 0.04)
    assert v.value.startswith("high variance") and "regularization" in v.advice
    assert bias_variance(0.0, 0.03, 0.04).value.startswith("better than human")
    # no human level: a small training error is information, a large one or a large gap still warns
    assert bias_variance(0.08, 0.09).status == "info"
    assert bias_variance(0.30, 0.31).status == "warn"
    assert bias_variance(0.02, 0.20).status == "warn"
    hist = [{"train_loss": 1.0, "val_loss": 1.2, "train_acc": 0.9, "val_acc": 0.8}]
    assert overfitting(hist, None).status == "pass"
    assert "onset at epoch 8" in overfitting(hist, 7).value  # index 7 is the 8th epoch: read from 1


def test_bias_below_human_level_is_not_a_negative_bias():
    from trainwell.doctor.diagnosis import bias_variance

    v = bias_variance(0.01, 0.10, human_error=0.05)
    assert "below human level by 4.0% (no avoidable bias)" in v.value and "-4.0%" not in v.value
    assert v.status == "warn" and v.value.startswith("high variance")


def test_a_rising_curve_reports_a_rise_not_a_drop():
    from trainwell.doctor.diagnosis import learning_rate_diagnosis

    v = learning_rate_diagnosis([1.0 + 0.01 * t for t in range(200)])
    assert v.value.startswith("too high") and "rise" in v.value and "drop" not in v.value


def test_lr_advice_is_consistent_across_verdicts():
    from trainwell.doctor.diagnosis import reconcile

    monitor = {"check": "update/weight ratio", "status": "warn", "value": "1e-6",
               "advice": "updates are tiny (healthy ~1e-3): raise the learning rate"}
    for curve_value, kept in (("too high: the loss rose", False), ("good: steady decrease", True),
                              ("too low: slow", True)):
        curve = {"check": "learning rate (loss curve)", "status": "warn", "value": curve_value, "advice": "x"}
        out = reconcile([monitor, curve])
        assert ("raise the learning rate" in out[0]["advice"] and "do not" not in out[0]["advice"]) == kept
        assert out[1] == curve and monitor["advice"].endswith("raise the learning rate")  # inputs untouched


def test_a_train_val_gap_within_two_standard_errors_of_the_val_error_is_not_variance():
    # 2 sqrt(e (1 - e) / n): 2.34 points at 5.2% error on 360 examples, 0.44 points on 10000
    assert bias_variance(0.03, 0.052, 0.02, val_examples=360).status == "pass"
    assert bias_variance(0.03, 0.052, 0.02, val_examples=10_000).value.startswith("high variance")
    assert bias_variance(0.03, 0.052, 0.02).value.startswith("high variance")  # the size unknown: the 2-point rule
    assert bias_variance(0.03, 0.09, 0.02, val_examples=360).value.startswith("high variance")  # 6 points: > 2 SE
    two_se = round(200 * (0.01 * 0.99 / 10) ** 0.5, 1)
    assert bias_variance(0.0, 0.01, val_examples=10).expected == f"both <= {two_se:g}%"


def _batch_of_one_curve(steps=3000, seed=0):
    """The per-step loss of online SGD (batch size 1) on a regression: each step's loss is one example's squared
    error, (level x N(0, 1))^2, a chi-square with one degree of freedom around a falling level. The first step's
    example happens to fit well; a later one is 12x its loss by chance."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(steps, dtype=torch.float64)
    level = 0.05 + 1.5 * torch.exp(-t / 600)
    losses = level * torch.randn(steps, generator=g, dtype=torch.float64) ** 2
    losses[0] = 0.5
    return losses


def test_a_single_example_loss_10x_the_first_is_not_a_spike():
    """A batch of one's losses are heavy-tailed: one reaches 10x the first by chance over thousands of steps
    without standing out of the curve's own per-step noise. On a smooth mini-batch curve the same jump is a
    divergence spike."""
    online = _batch_of_one_curve()
    assert float(online.max()) > 10 * float(online[0])
    verdict = learning_rate_diagnosis(online.tolist(), batch_size=1)
    assert "spiked" not in verdict.value and verdict.status != "fail"
    t = torch.arange(400, dtype=torch.float64)
    noise = 0.05 * torch.randn(400, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    minibatch = (2.3 * torch.exp(-t / 60) + 0.1) * (1 + noise)
    minibatch[250], minibatch[251] = 12 * float(minibatch[0]), 3.0
    spiked = learning_rate_diagnosis(minibatch.tolist(), batch_size=32)
    assert spiked.status == "fail" and "spiked" in spiked.value
