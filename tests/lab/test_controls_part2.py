"""Regularization-strength, model-ladder, random-labels, encoder-8-3-8, l1-vs-l2, grokking and deep-relu-init:
their controls (the claim made false on purpose) never pass, and their verdicts are effects with intervals that come
out pass, fail or inconclusive on synthetic results (no training)."""

import json
import math
from dataclasses import replace

import pytest
import torch

from trainwell.config import load_config
from trainwell.lab import (
    base,
    encoder838,
    fresh_signals,
    grokking,
    l1_vs_l2,
    model_ladder,
    random_labels,
    registry,
    runner,
)
from trainwell.lab import deep_relu_init as drelu
from trainwell.lab import regularization_strength as regstr

PART2 = ["regularization-strength", "model-ladder", "random-labels", "encoder-8-3-8", "l1-vs-l2", "grokking",
         "deep-relu-init"]
EXPERIMENTS = registry.experiments()


def test_part2_experiments_declare_control_and_literature():
    for name in PART2:
        mod = EXPERIMENTS[name]
        assert runner.has_control(mod), name
        assert len(mod.CONTROL) > 20 and len(mod.LITERATURE) > 60
        assert mod.Config().control is False and mod.Config.quick().control is False


def _status(v, name=None):
    if name is None:
        return v["status"]
    return next(c["status"] for c in v["evidence"]["criteria"] if name in c["name"])


# -- regularization-strength ----------------------------------------------------------------------------------------
def _reg_result(val_by_lambda, train_by_lambda, draws=6, spread=0.01):
    lams = [0.0, 3e-4, 1e-3, 3e-3, 1e-2]
    rows = []
    for d in range(draws):
        wobble = spread * ((d % 3) - 1)
        for lam, v, t in zip(lams, val_by_lambda, train_by_lambda, strict=True):
            rows.append({"lambda": lam, "draw": d, "train_acc": t + wobble, "select_acc": v + wobble,
                         "val_acc": v + wobble + (spread / 2 if d % 2 else -spread / 2)})
    means = [{"lambda": lam, **{k: sum(r[k] for r in rows if r["lambda"] == lam) / draws
                                for k in ("train_acc", "select_acc", "val_acc")}} for lam in lams]
    return {"lambdas": lams, "rows": rows, "means": means, "repeats": draws}


def test_regularization_strength_verdict_pass_fail_inconclusive():
    peak = _reg_result([0.80, 0.84, 0.88, 0.85, 0.70], [0.95, 0.93, 0.90, 0.85, 0.72])
    assert regstr.verdict(peak)["status"] == "pass"
    assert regstr.chosen_lambda(peak) == 1e-3
    flat_then_down = _reg_result([0.90, 0.86, 0.84, 0.80, 0.70], [0.95, 0.93, 0.90, 0.85, 0.72])
    assert regstr.verdict(flat_then_down)["status"] == "fail"  # the smallest lambda is best: no middle peak
    same = _reg_result([0.85] * 5, [0.9] * 5)
    assert regstr.verdict(same)["status"] == "fail"  # the control's result: every arm the same net
    assert regstr.verdict(_reg_result([0.80, 0.84, 0.88, 0.85, 0.70], [0.95, 0.93, 0.90, 0.85, 0.72],
                                      draws=1))["status"] == "inconclusive"


# -- model-ladder ----------------------------------------------------------------------------------------------------
def _ladder(accs, n=1000, shift=(0, 0)):
    def correct(acc):
        k = round(acc * n)
        return [1] * k + [0] * (n - k)

    c = {name: correct(a) for name, a in accs.items()}
    models = {name: {"test_acc": a, "published": model_ladder.PUBLISHED[name], "params": 1, "epochs": 1,
                     "test_size": n} for name, a in accs.items()}
    return {"models": models, "paired": {"mlp-logistic": base.paired_correct(c["mlp"], c["logistic"]),
                                         "cnn-mlp": base.paired_correct(c["cnn"], c["mlp"])}, "tolerance": 0.05}


def test_model_ladder_verdict_pass_fail_inconclusive():
    assert model_ladder.verdict(_ladder({"logistic": 0.32, "mlp": 0.68, "cnn": 0.94}))["status"] == "pass"
    v = model_ladder.verdict(_ladder({"logistic": 0.32, "mlp": 0.32, "cnn": 0.32}))  # the control: one model
    assert v["status"] == "fail" and _status(v, "mlp - logistic") == "fail"
    assert _status(v, "mlp: test accuracy within") == "fail"
    v = model_ladder.verdict(_ladder({"logistic": 0.32, "mlp": 0.654, "cnn": 0.94}))
    assert v["status"] == "inconclusive" and _status(v, "mlp: test accuracy within") == "inconclusive"


def test_model_ladder_band_is_the_wilson_interval():
    c = model_ladder.near_published("mlp", 0.68, 1000, 0.68, 0.05)
    lo, hi = base.wilson(680, 1000)
    assert (c["lo"], c["hi"]) == (round(lo, 5), round(hi, 5)) and c["status"] == "pass"
    assert model_ladder.near_published("mlp", 0.55, 1000, 0.68, 0.05)["status"] == "fail"



@pytest.mark.slow
def test_model_ladder_fresh_signals_are_new_draws_of_the_published_generator(tmp_path, monkeypatch):
    import numpy as np

    from trainwell.data.embedded import mnist1d_arrays

    published = mnist1d_arrays()
    monkeypatch.setenv("TRAINWELL_CACHE", str(tmp_path))
    x, y = fresh_signals.fresh_signals(60)
    assert x.shape == (60, 1, 40) and x.dtype == torch.float32 and y.shape == (60,)
    assert set(y.tolist()) <= set(range(10))
    again, _ = fresh_signals.fresh_signals(60)  # from the cache: the same signals
    assert torch.equal(x, again) and list(tmp_path.glob("mnist1d-fresh-*.npz"))
    old = np.concatenate([published["x"], published["x_test"]])
    assert all(np.abs(old - s).sum(axis=1).min() > 1e-3 for s in x[:, 0].double().numpy())  # none of the published
    assert abs(float(x.std()) - float(published["x_test"].std())) < 0.2 * float(published["x_test"].std())


@pytest.mark.slow  # seconds each
def test_model_ladder_scores_a_model_on_the_fresh_signals():
    x = torch.randn(50, 1, 40)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, 10))
    t = base.Trained({}, [], model, None, load_config(None, [*base.LAB_SETTINGS, "data.name=mnist1d"]))
    y = model(x).argmax(dim=1)
    y[:10] = (y[:10] + 1) % 10
    assert fresh_signals.fresh_correct(t, x, y) == [0] * 10 + [1] * 40

# -- random-labels --------------------------------------------------------------------------------------------------
def _rl(steps, test_rand=0.10, fit=1.0, draws=4):
    out = []
    for d in range(draws):
        w = 1 + 0.05 * (d - 1.5)
        out.append({kind: {"steps": round(s * w), "steps_run": 10_000, "train_acc": fit if kind != "true_labels"
                           else 1.0, "test_acc": (test_rand + 0.004 * (d - 1.5)) if kind == "random_labels" else 0.6}
                    for kind, s in steps.items()})
    return {"draws": out, "target": 0.99, "chance": 0.1, "chance_band": 0.03}


def test_random_labels_verdict_pass_fail_inconclusive_and_pixels_remark():
    v = random_labels.verdict(_rl({"true_labels": 400, "random_labels": 1200, "random_pixels": 200}))
    assert v["status"] == "pass"
    assert "faster than the true labels" in v["evidence"]["remark"]
    ctrl = random_labels.verdict(_rl({"true_labels": 400, "random_labels": 400, "random_pixels": 400},
                                     test_rand=0.6))  # the control: true labels in every arm
    assert ctrl["status"] == "fail" and _status(ctrl, "log(steps") == "fail"
    assert random_labels.verdict(_rl({"true_labels": 400, "random_labels": 1200, "random_pixels": 200},
                                     fit=0.9))["status"] == "fail"  # not memorized
    v = random_labels.verdict(_rl({"true_labels": 400, "random_labels": 1200, "random_pixels": 800},
                                  test_rand=0.125))  # near the band's edge
    assert _status(v, "chance") == "inconclusive" and v["status"] == "inconclusive"
    assert "took longer" in v["evidence"]["remark"]


def test_random_labels_whole_epoch_counts_never_give_a_zero_width_interval():
    # four draws with the same whole-epoch counts (20 steps an epoch): the interval spans one epoch's uncertainty
    draw = {"true_labels": {"steps": 220, "epochs_run": 11, "steps_run": 220},
            "random_labels": {"steps": 320, "epochs_run": 16, "steps_run": 320},
            "random_pixels": {"steps": 180, "epochs_run": 9, "steps_run": 180}}
    m, lo, hi = random_labels.ratio_interval({"draws": [draw] * 4}, "random_labels")
    assert m == pytest.approx(math.log(320 / 220))
    assert lo == pytest.approx(math.log(301 / 220)) and hi == pytest.approx(math.log(320 / 201))


# -- encoder-8-3-8 --------------------------------------------------------------------------------------------------
def _enc(reconstructed):
    codes = [[float(i & 4 > 0), float(i & 2 > 0), float(i & 1 > 0)] for i in range(8)]
    starts = [{"reconstructed": r, "distinct_codes": 8, "first_epoch_all": 10} for r in reconstructed]
    return {"starts": starts, "codes": codes, "rounded": ["".join(str(int(v)) for v in c) for c in codes],
            "threshold": 0.5, "hidden": 3}


def test_encoder_verdict_pass_fail_inconclusive():
    assert encoder838.verdict(_enc([8] * 8))["status"] == "pass"
    assert encoder838.verdict(_enc([5, 6, 4, 8, 5, 6, 4, 5]))["status"] == "fail"  # 1 of 8: Wilson upper < 0.5
    assert encoder838.verdict(_enc([8, 8, 8, 8, 6, 6, 6, 6]))["status"] == "inconclusive"


# -- l1-vs-l2 ----------------------------------------------------------------------------------------------------------
def _l1l2(near_l1, near_l2, acc_l1=0.95, acc_l2=0.95, draws=3, n=360):
    runs = []
    for d in range(draws):
        for kind, near, acc in (("l1", near_l1, acc_l1), ("l2", near_l2, acc_l2)):
            k = round(acc * n)
            runs.append({"kind": kind, "lambda": 1e-3, "draw": d, "val_acc": acc, "test_acc": acc,
                         "near_zero": near + 0.01 * (d - 1), "correct": [1] * k + [0] * (n - k)})
    return {"runs": runs, "near_zero": 1e-3, "margin": 0.2, "equivalence": 0.03, "draws": draws}


def test_l1_vs_l2_verdict_pass_fail_inconclusive():
    assert l1_vs_l2.verdict(_l1l2(0.6, 0.01))["status"] == "pass"
    assert l1_vs_l2.verdict(_l1l2(0.05, 0.05))["status"] == "fail"  # the control: the L1 arm is the L2 arm
    assert l1_vs_l2.verdict(_l1l2(0.6, 0.01, draws=1))["status"] == "inconclusive"
    v = l1_vs_l2.verdict(_l1l2(0.6, 0.01, acc_l1=0.90, acc_l2=0.95))
    assert _status(v, "test accuracy") == "fail" and v["status"] == "fail"  # not matched



def test_l1_vs_l2_compares_each_penalty_at_its_best_validation_strength():
    arms = {("l1", 3e-4): (0.97, 0.3), ("l1", 1e-3): (0.96, 0.6),
            ("l2", 3e-3): (0.98, 0.01), ("l2", 1e-2): (0.965, 0.1)}
    runs = [{"kind": k, "lambda": lam, "draw": d, "val_acc": acc + 0.001 * d, "test_acc": acc, "near_zero": near,
             "correct": [1] * 300 + [0] * 60} for d in range(3) for (k, lam), (acc, near) in arms.items()]
    a, b = l1_vs_l2.matched({"runs": runs})
    assert (a["lambda"], b["lambda"]) == (3e-4, 3e-3)  # not the closest validation accuracies (1e-3, 1e-2)
    tie = [dict(r, val_acc=0.97) for r in runs]
    assert [r["lambda"] for r in l1_vs_l2.matched({"runs": tie})] == [3e-4, 3e-3]  # a tie: the smaller lambda

# -- grokking --------------------------------------------------------------------------------------------------------
def _grok(small_test, large_test, train=30, at_train=0.05, draws=3):
    def arm(test, j):
        return {"weight_decay": 1, "train_step": train + j, "test_step": test if test is None else test + 7 * j,
                "test_at_train_step": at_train, "steps_run": 2000}
    return {"draws": [{"small": arm(small_test, j), "large": arm(large_test, j)} for j in range(draws)],
            "min_delay": 5.0}


def test_grokking_verdict_pass_fail_inconclusive():
    assert grokking.verdict(_grok(1040, 380))["status"] == "pass"
    ctrl = grokking.verdict(_grok(1040, 1040))  # the control: both decays equal
    assert ctrl["status"] == "fail" and _status(ctrl, "small decay / large decay") == "fail"
    assert grokking.verdict(_grok(60, 40))["status"] == "fail"  # no delay: ratio 2 < 5
    v = grokking.verdict(_grok(None, None))  # neither reaches 95% test: undecided comparison
    assert _status(v, "small decay / large decay") == "inconclusive"


# -- deep-relu-init ---------------------------------------------------------------------------------------------------
def _drelu(he30, xa30, he22, xa22, he_step=150, xa_step=300, draws=3, ratio=(0.9, 1e-5)):
    runs = []
    for d in range(draws):
        w = 0.01 * (d - 1)
        loss = {"he-30": he30, "xavier-30": xa30, "he-22": he22, "xavier-22": xa22}
        step = {"he-22": he_step, "xavier-22": xa_step, "he-30": None, "xavier-30": None}
        runs.append({k: {"final_train_loss": v + w, "test_acc": 0.5, "steps": 720,
                         "first_below": None if step[k] is None else step[k] + 10 * d} for k, v in loss.items()})
    return {"deep": 30, "shallow": 22, "ln10": math.log(10), "draws": runs,
            "probe": {"he": [1.0, ratio[0]], "xavier": [1.0, ratio[1]]}}


def test_deep_relu_init_verdict_pass_fail_inconclusive():
    ln10 = math.log(10)
    assert drelu.verdict(_drelu(1.2, ln10, 1.0, 1.5))["status"] == "pass"
    ctrl = drelu.verdict(_drelu(ln10, ln10, 1.5, 1.5, 300, 300, ratio=(1e-5, 1e-5)))  # He replaced by Xavier
    assert ctrl["status"] == "fail" and _status(ctrl, "log(step") == "fail"
    v = drelu.verdict(_drelu(1.2, ln10, 1.0, 1.5, draws=1))
    assert v["status"] == "inconclusive"


def test_deep_relu_init_counts_the_extra_shallow_draws():
    ln10 = math.log(10)
    res = _drelu(1.2, ln10, 1.0, 1.5, draws=6)
    for d in res["draws"][3:]:  # draws 3-5 trained only the 22-layer nets
        del d["he-30"], d["xavier-30"]
    crit = {c["name"]: c for c in drelu.verdict(res)["evidence"]["criteria"]}
    assert [c["n"] for name, c in crit.items() if name.startswith("30 layers")] == [3, 3]
    assert [c["n"] for name, c in crit.items() if name.startswith("22 layers")] == [6, 6]


def test_deep_relu_init_reads_a_diverged_net_as_untrained():
    """A net whose loss became NaN stops early and its final loss is stored as null: the verdict reads it as at
    chance (it did not train) instead of crashing (a 30-layer He net diverged once in a 30-epoch run)."""
    ln10 = math.log(10)
    res = _drelu(1.2, ln10, 1.0, 1.5, draws=6)
    res["draws"][1]["he-30"]["final_train_loss"] = None
    res["draws"][2]["xavier-30"]["final_train_loss"] = float("nan")
    v = drelu.verdict(res)
    he = next(c for c in v["evidence"]["criteria"] if c["name"].startswith("30 layers: 0.85 ln 10 - He"))
    assert he["effect"] == pytest.approx((5 * (0.85 * ln10 - 1.2) - 0.15 * ln10 - sum(0.01 * (d - 1) for d in
                                                                                   (0, 2, 3, 4, 5))) / 6, abs=1e-4)
    assert v["evidence"]["he, 30 layers"]["final train loss"][1] == round(ln10, 4)


def test_part2_quick_results_keep_json_and_verdict_shape():
    # every criterion is JSON-safe (no infinities) and every verdict is decided from intervals
    for v in (regstr.verdict(_reg_result([0.85] * 5, [0.9] * 5, draws=1)), grokking.verdict(_grok(None, 300)),
              drelu.verdict(_drelu(1.2, math.log(10), 1.0, 1.5, draws=1))):
        json.dumps(v, allow_nan=False)
        assert v["decided"] and v["status"] in base.STATUSES


# -- the controls, trained (slow) -------------------------------------------------------------------------------------
# the smallest size that decides each control (fail or inconclusive, never pass)
CONTROL_SIZES = {
    "regularization-strength": dict(epochs=150, repeats=2, heldout_per_class=300, lambdas=[0.0, 1e-3, 1e-2]),
    "model-ladder": dict(epochs_linear=5, epochs_mlp=5, epochs_cnn=2),
    "random-labels": dict(hidden=[128, 128], val_fraction=0.9, max_epochs=150, draws=2),
    "encoder-8-3-8": dict(epochs=150, lr=1.0, draws=3),
    "l1-vs-l2": dict(l1=[1e-3], l2=[3e-3], epochs=10, draws=2),
    "grokking": dict(max_steps=300, draws=2),
    "deep-relu-init": dict(width=32, epochs=2, shallow_epochs=2, val_fraction=0.75, probe_width=128, draws=2,
                           shallow_draws=2, deep=30, shallow=22),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", PART2)
def test_part2_control_never_passes(name, tmp_path):
    mod = EXPERIMENTS[name]
    cfg = replace(mod.Config(), **CONTROL_SIZES[name], control=True)
    result = json.loads(json.dumps(mod.run(cfg, workdir=tmp_path)))
    v = mod.verdict(result)
    assert v["status"] in ("fail", "inconclusive"), v["evidence"]
    assert v.get("decided") and v["evidence"]["criteria"]
