"""The rules that read a suggested learning rate off a range-test curve, on curves with a known shape."""

from __future__ import annotations

import math

import pytest

from trainwell.train.lr_range import DEFAULT_RULE, RULES, read_curve, steepest, suggest, valley

N = 100
LRS = [1e-7 * (10 / 1e-7) ** (i / (N - 1)) for i in range(N)]  # the range test's exponential grid


def curve(fall_from: int, fall_to: int, bump: int | None = None) -> list[float]:
    """Flat at 2.3 up to ``fall_from``, a straight fall (in log lr) to 0.3 at ``fall_to``, then a rise that ends in
    an explosion; ``bump`` adds a one-step rise inside the fall."""
    out = []
    for i in range(N):
        if i <= fall_from:
            v = 2.3
        elif i <= fall_to:
            v = 2.3 - 2.0 * (i - fall_from) / (fall_to - fall_from)
        else:
            v = 0.3 + 0.002 * (i - fall_to) ** 2
        out.append(v + (0.5 if i == bump else 0.0))
    return out


@pytest.mark.parametrize("fall", [(30, 70), (20, 50), (45, 85)])
def test_valley_is_halfway_along_the_falling_stretch_in_log_lr(fall):
    a, b = fall
    got = math.log(valley(LRS, curve(a, b)))
    middle = (math.log(LRS[a]) + math.log(LRS[b])) / 2  # the geometric mean of the stretch's ends
    step = math.log(LRS[1] / LRS[0])
    assert abs(got - middle) <= 2.5 * step


def test_valley_ignores_a_one_step_bump_in_the_fall_that_steepest_jumps_to():
    smooth, bumped = curve(30, 70), curve(30, 70, bump=60)
    assert abs(LRS.index(valley(LRS, bumped)) - LRS.index(valley(LRS, smooth))) <= 1
    assert LRS.index(steepest(LRS, bumped)) == 61  # the fall back from the bump is the steepest slope


def test_steepest_is_where_a_logistic_falls_fastest_and_the_minimum_rules_divide_its_rate():
    smoothed = [2.0 - 1.5 / (1 + math.exp(-(i - 40) / 4)) if i < 70 else 0.5 + 0.05 * (i - 70) for i in range(N)]
    assert LRS.index(steepest(LRS, smoothed)) == 40  # the logistic's inflection point
    i_min = min(range(N), key=smoothed.__getitem__)
    assert suggest(LRS, smoothed, "minimum/10") == pytest.approx(LRS[i_min] / 10)
    assert suggest(LRS, smoothed, "minimum/3") == pytest.approx(LRS[i_min] / 3)


def test_the_explosion_at_the_end_is_not_read_as_a_valley():
    smoothed = curve(30, 70)[:80] + [0.3 - 0.05 * k for k in range(5)]  # a last-moment dip as the loss explodes
    assert LRS.index(valley(LRS[:85], smoothed)) < 60


def test_read_curve_gives_every_rule_from_one_curve_and_names_the_one_it_used():
    smoothed = curve(30, 70)
    r = read_curve(LRS, smoothed, smoothed, "test")
    assert set(r.candidates) == set(RULES) and r.rule == DEFAULT_RULE
    assert r.suggestion == r.candidates[DEFAULT_RULE]
    assert read_curve(LRS, smoothed, smoothed, "test", rule="steepest").suggestion == r.candidates["steepest"]
    with pytest.raises(ValueError, match=r"rule='middle' is not allowed: use one of valley, steepest"):
        read_curve(LRS, smoothed, smoothed, "test", rule="middle")


def test_the_rule_follows_the_schedule_and_find_lr_refuses_an_unknown_rule():
    from trainwell.config import load_config
    from trainwell.lr_find import find_lr
    from trainwell.train.lr_range import rule_for

    assert [rule_for(s) for s in ("onecycle", "cosine", "none", "step", "plateau")] == \
        ["minimum/3", "minimum/3", "minimum/10", "minimum/10", "minimum/10"]
    with pytest.raises(ValueError, match=r"rule='valey' is not allowed: use auto or one of valley"):
        find_lr(load_config(None, []), rule="valey")


def test_a_suggestion_below_the_first_rate_tested_is_noted():
    lrs = [1e-7 * 10 ** (i / 4) for i in range(40)]
    rising = [1.0 + 0.01 * i for i in range(40)]  # the loss is lowest at the first rate: minimum/10 is below it
    curve = read_curve(lrs, rising, rising, "reached the last rate")
    assert curve.rule == "minimum/10" and curve.suggestion == pytest.approx(lrs[0] / 10)  # fastai's minimum/10
    assert any("lies below the first rate tested (1e-07)" in n for n in curve.notes)
    falling = [2.0 - 0.01 * i for i in range(20)] + [1.8 + 0.1 * i for i in range(20)]
    assert not any("below the first rate" in n for n in read_curve(lrs, falling, falling, "x").notes)
