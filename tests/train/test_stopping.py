import math

import pytest
import torch

from tests.helpers import tiny
from trainwell.config import load_config
from trainwell.errors import ConfigError, TrainwellError
from trainwell.pipeline import fit
from trainwell.rundir import read_jsonl
from trainwell.train.stopping import (
    Divergence,
    EarlyStopping,
    FixedSchedule,
    LossChange,
    NonFinite,
    OverfitDetector,
    WeightChange,
)


def stop_epoch(criterion, sequence):
    """Feed the sequence one value at a time; return the 0-based epoch at which the criterion fires."""
    for t in range(1, len(sequence) + 1):
        stop, reason = criterion.evaluate(sequence[:t])
        if stop:
            assert reason
            return t - 1
    return None


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    "kwargs, sequence, expected",
    [
        ({"patience": 2}, [5, 4, 3, 3, 3, 3], 4),  # equal values never reset the counter
        ({"patience": 2}, [5, 4, 4.5, 3.9, 4, 4], 5),
        ({"patience": 1}, [1, 2], 1),
        ({"patience": 3}, [1, 0.5, 0.4, 0.3, 0.2], None),
        ({"patience": 2, "min_delta": 0.1}, [1.0, 0.95, 0.91, 0.85], 2),  # 0.05 and 0.09 are not improvements
        ({"patience": 2, "min_delta": 0.1}, [1.0, 0.95, 0.89, 0.85, 0.84], 4),  # best moves only on real gains
        ({"patience": 2, "min_delta": 0.1, "relative": True}, [10, 8.9, 8.5, 8.1], 3),  # 10% of |best| = 0.89 after 8.9
        ({"patience": 5}, [1, 0.5, NAN, 0.1], 2),  # guard 1: non-finite
        ({"patience": 5, "stopping_threshold": 0.5}, [1, 0.6, 0.5, 0.49], 3),  # guard 2: strict threshold
        ({"patience": 5, "divergence_threshold": 2.0}, [1, 1.5, 2.0, 2.1], 3),  # guard 3: strict divergence
        ({"patience": 5, "divergence_threshold": 2.0}, [INF], 0),
        ({"patience": 2, "mode": "max"}, [0.5, 0.6, 0.6, 0.59], 3),  # accuracy: higher is better
        ({"patience": 2, "mode": "max", "stopping_threshold": 0.9}, [0.5, 0.95], 1),
    ],
)
def test_early_stopping_semantics(kwargs, sequence, expected):
    assert stop_epoch(EarlyStopping(**kwargs), sequence) == expected


def test_early_stopping_scan_reports_best_and_wait():
    stop, _, best, best_i, wait = EarlyStopping(patience=10).scan([3, 2, 2.5, 2.2])
    assert (stop, best, best_i, wait) == (False, 2, 1, 2)


@pytest.mark.parametrize(
    "threshold, window, sequence, expected",
    [
        (0.1, 2, [10, 8, 6, 5.5, 5.3, 5.2], 5),  # drops 40%, 31%, 11.7%, then (5.5-5.2)/5.5 = 5.5%
        (0.01, 3, [1.0, 0.9, 0.8, 0.7, 0.7, 0.7, 0.7], 6),
        (0.5, 10, [1.0] * 10, None),  # never before w + 1 values exist
        (0.5, 10, [1.0] * 11, 10),
        (0.0, 1, [1, 2], 1),  # a rising loss has a negative change
    ],
)
def test_loss_change(threshold, window, sequence, expected):
    assert stop_epoch(LossChange(threshold, window), sequence) == expected


def test_loss_change_value_is_the_relative_drop():
    crit = LossChange(0.1, window=2)
    assert crit.value([10, 8]) is None
    assert crit.value([10, 8, 6]) == pytest.approx(0.4)
    assert crit.value([10, 8, 6, 5.5, 5.3]) == pytest.approx((6 - 5.3) / 6)


def test_weight_change_uses_the_max_coordinate_not_the_vector_length():
    many_small = [torch.zeros(10000), torch.full((10000,), 0.009)]  # length 0.9, max 0.009
    assert stop_epoch(WeightChange(0.01, window=1), many_small) == 1
    one_big = [torch.zeros(3), torch.tensor([0.0, 0.02, 0.0])]
    assert stop_epoch(WeightChange(0.01, window=1), one_big) is None


def test_weight_change_relative_and_window():
    w = [torch.tensor([100.0, 0.001]), torch.tensor([100.5, 0.001]), torch.tensor([100.9, 0.001])]
    assert stop_epoch(WeightChange(0.01, window=2, relative=True), w) == 2  # 0.9 / 100 < 1%
    assert stop_epoch(WeightChange(0.01, window=2, relative=False), w) is None
    assert WeightChange(0.01, window=2).value(w[:2]) is None


def test_fixed_schedule_and_guards():
    fixed = FixedSchedule(3, factor=0.1, more=2)
    assert stop_epoch(fixed, [1.0] * 10) == 4
    assert fixed.lr_factor_after(2) == 0.1 and fixed.lr_factor_after(1) is None
    assert stop_epoch(NonFinite(), [1, 0.5, INF]) == 2
    assert stop_epoch(Divergence(10), [1.0, 0.01, 0.05, 0.5, 2.0]) == 4  # 0.5 is 50x best but below the start
    with pytest.raises(ValueError, match=r"Divergence\(factor=1.0\) is not allowed"):
        Divergence(1.0)


@pytest.mark.parametrize(
    "train, val, expected",
    [
        ([5, 4, 3, 2, 1, 0.5], [5, 4, 4.1, 4.2, 4.3, 4.4], 4),
        ([5, 4, 3, 3.5, 4, 4.5], [5, 4, 4.1, 4.2, 4.3, 4.4], None),  # train loss rose too: not overfitting
        ([5, 4, 3, 2, 1, 0.5], [5, 4, 4.1, 4.0, 4.3, 4.4], None),
    ],
)
def test_overfit_detector(train, val, expected):
    assert OverfitDetector(window=3).detect(train, val) == expected


SMALL = [*tiny(n_per_class=60, hidden=(16,), epochs=None, name=None, quiet=False), "train.batch_size=32",
         "report.enabled=false", "optim.schedule=none"]


@pytest.mark.slow  # 0.34 s each on a 2-core CPU (RESULTS §51)
def test_fit_stops_with_early_stopping_and_restores_the_best_weights(workdir):
    cfg = load_config(None, SMALL + ["train.epochs=200", "optim.lr=0.05", "stop.criteria=['early_stopping']",
                                     "stop.patience=3", "stop.min_delta=0.05", "stop.min_delta_relative=true"])
    res = fit(cfg, out="es", quiet=True)
    history = read_jsonl(res.run_dir / "metrics.jsonl")
    assert res.summary["stop_reason"].startswith("early stopping: no improvement for 3 epochs")
    assert len(history) < 200
    assert all("patience_wait" in r for r in history)
    best = res.summary["stop"]["restored_best_epoch"]
    assert res.summary["final"]["val_loss"] == pytest.approx(history[best]["val_loss"], rel=1e-5)


def test_fit_loss_change_then_extra_epochs_at_lower_lr(workdir):
    cfg = load_config(None, SMALL + ["train.epochs=300", "stop.criteria=['loss_change']", "stop.loss_window=5",
                                     "stop.loss_threshold=0.2", "stop.extra_epochs=3", "stop.extra_lr_factor=0.1"])
    res = fit(cfg, out="lc", quiet=True)
    history = read_jsonl(res.run_dir / "metrics.jsonl")
    assert "then 3 epochs at lr x 0.1" in res.summary["stop_reason"]
    assert history[-1]["lr"] == pytest.approx(0.001) and history[-5]["lr"] == pytest.approx(0.01)
    assert history[4]["loss_change"] is None and history[5]["loss_change"] is not None


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_fit_fixed_schedule_and_weight_change_report_values(workdir):
    cfg = load_config(None, SMALL + ["train.epochs=50", "stop.criteria=['fixed', 'weight_change']",
                                     "stop.fixed_epochs=4", "stop.fixed_more=2", "stop.weight_window=2",
                                     "stop.weight_threshold=1e-9"])
    res = fit(cfg, out="fx", quiet=True)
    history = read_jsonl(res.run_dir / "metrics.jsonl")
    assert len(history) == 6 and res.summary["stop_reason"].startswith("fixed schedule")
    assert [r["lr"] for r in history] == pytest.approx([0.01] * 4 + [0.001] * 2)
    assert history[1]["weight_change"] is None and history[2]["weight_change"] > 0


def test_divergence_guard_stops_and_fails(workdir):
    from trainwell.cli import main

    code = main(["fit", "--quiet", "--out", "dv", *[a for s in SMALL for a in ("--set", s)], "--set",
                 "train.epochs=30", "--set", "optim.name=sgd", "--set", "optim.lr=50", "--set", "init.scheme=he_normal",
                 "--set", "model.activation=linear"])
    import json

    summary = json.loads((workdir / "dv" / "summary.json").read_text())
    assert summary["failed"] and code == 1
    assert summary["stop_reason"].startswith(("diverged", "non-finite"))
    assert (workdir / "dv" / "checkpoints" / "last.pt").exists() or summary["epochs"] <= 1


def test_stop_config_errors():
    for bad, fragment in (("stop.criteria=['patience']", "stop.criteria[0]"),
                          ("stop.criteria=['fixed', 'fixed']", "list each criterion once"),
                          ("stop.patience=-1", "stop.patience = -1"),
                          ("stop.divergence_factor=0.5", "stop.divergence_factor")):
        with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")):
            load_config(None, [bad])
    assert load_config(None, ["stop.divergence_factor=none"]).stop.divergence_factor is None


def test_divergence_against_the_untrained_models_loss():
    from trainwell.train.stopping import Divergence

    guard = Divergence(10.0, expected=math.log(10))  # 23.0 is 10 x ln 10
    assert guard.evaluate([1.6e6, 1e5]) == (False, "")  # first epoch the highest: the old rule never fires
    stop, reason = guard.evaluate([1.6e6, 1e5, 3e4])
    assert stop and "stayed above 10 x the untrained model's 2.303 for 3 epochs" in reason
    assert not guard.evaluate([1.6e6, 1e5, 20.0])[0]  # it came back below 10 x ln C
    assert not Divergence(10.0).evaluate([1.6e6, 1e5, 3e4])[0]  # no expectation: only the first rule


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_run_that_ends_far_above_ln_c_is_failed(workdir):
    from trainwell.train import Callback

    class Explode(Callback):  # weights blown up before training, still finite: no epoch looks worse than the first
        def on_epoch_start(self, state):
            if state.epoch == 0:
                with torch.no_grad():
                    for p in state.model.parameters():
                        p.mul_(300.0)

    cfg = load_config(None, SMALL + ["train.epochs=2", "stop.divergence_factor=10", "optim.lr=1e-9"])
    res = fit(cfg, out="far", quiet=True, callbacks=[Explode()])
    assert res.summary["failed"] and "a failed run" in res.summary["stop_reason"]


def test_generalization_loss_is_prechelts_gl_and_stops_at_the_first_epoch_above_alpha():
    from trainwell.train.stopping import GeneralizationLoss

    val = [2.0, 1.5, 1.2, 1.25, 1.1, 1.13, 1.2, 1.3]
    gl = GeneralizationLoss(alpha=5.0)
    expected = [100 * (v / min(val[: t + 1]) - 1) for t, v in enumerate(val)]  # Prechelt 1998, eq. GL(t)
    assert [gl.value(val[: t + 1]) for t in range(len(val))] == pytest.approx(expected)
    first = next(t for t, g in enumerate(expected) if g > 5.0)
    assert [gl.evaluate(val[: t + 1])[0] for t in range(len(val))].index(True) == first == 6
    assert gl.value([math.nan]) is None and not gl.evaluate([1.0, math.inf])[0]
    with pytest.raises(ValueError, match=r"GeneralizationLoss\(alpha=0\) is not allowed"):
        GeneralizationLoss(alpha=0)


def test_a_registered_criterion_runs_in_the_stopper_from_its_config_name():
    import torch.nn as nn

    from trainwell.config import StopConfig
    from trainwell.train import stop_callback
    from trainwell.train.callbacks import State

    cfg = StopConfig(criteria=["generalization_loss"], gl_alpha=5.0, divergence_factor=None)
    stopper = stop_callback.from_config(cfg)
    state = State(model=nn.Linear(1, 1), optimizer=None)
    for epoch, v in enumerate([2.0, 1.5, 1.2, 1.25, 1.1, 1.13, 1.2, 1.3]):
        state.epoch, state.metrics = epoch, {"train_loss": 1.0 / (epoch + 1), "val_loss": v}
        state.history.append(state.metrics)
        stopper.on_epoch_end(state)
        if state.stop:
            break
    assert epoch == 6 and state.stop.startswith("generalization loss: 9.1% above the best validation loss 1.1")
    assert state.metrics["generalization_loss"] == pytest.approx(100 * (1.2 / 1.1 - 1))


@pytest.mark.parametrize("seed", range(6))
def test_stopper_flags_the_overfit_epoch_a_whole_series_scan_finds(seed):
    """Fed one epoch at a time (the scan resumes where the previous epoch's stopped), the Stopper flags the epoch
    that OverfitDetector finds over the whole run, on random walks of train and validation loss, some with epochs
    that log no validation loss."""
    from trainwell.train.callbacks import State
    from trainwell.train.stop_callback import Stopper

    g = torch.Generator().manual_seed(seed)
    n = 60
    train = (3 - torch.rand(n, generator=g).cumsum(0) * 0.05 + torch.rand(n, generator=g) * 0.3).tolist()
    val = (2 + torch.randn(n, generator=g).cumsum(0) * 0.1).tolist()
    logged = (torch.rand(n, generator=g) > (0.3 if seed % 2 else 0.0)).tolist()
    history = [{"epoch": e, "train_loss": train[e], **({"val_loss": val[e]} if logged[e] else {})} for e in range(n)]
    stopper = Stopper(overfit=OverfitDetector(window=3))
    state = State(model=None, optimizer=None)
    for e in range(n):
        state.epoch, state.metrics = e, history[e]
        state.history.append(history[e])
        stopper.on_epoch_end(state)
    both = [r for r in history if "val_loss" in r]  # every epoch logs train_loss: pair the two by epoch
    t = OverfitDetector(window=3).detect([r["train_loss"] for r in both], [r["val_loss"] for r in both])
    assert stopper.overfit_epoch == (None if t is None else both[t]["epoch"])


def test_stopper_names_the_overfit_epoch_when_validation_runs_every_other_epoch():
    """Validation on even epochs only: its loss rises at epochs 4, 6 and 8 while training loss falls, so the
    overfitting epoch is 8 (the third rise), not the 5th epoch of the run nor one paired with the wrong train loss."""
    from trainwell.train.callbacks import State
    from trainwell.train.stop_callback import Stopper

    val = {0: 1.0, 2: 0.9, 4: 1.0, 6: 1.1, 8: 1.2}
    stopper = Stopper(overfit=OverfitDetector(window=3))
    state = State(model=None, optimizer=None)
    for e in range(10):
        record = {"epoch": e, "train_loss": 2.0 - 0.1 * e, **({"val_loss": val[e]} if e in val else {})}
        state.epoch, state.metrics = e, record
        state.history.append(record)
        stopper.on_epoch_end(state)
        assert stopper.overfit_epoch == (8 if e >= 8 else None)


@pytest.mark.parametrize("seed", range(4))
def test_the_stoppers_series_read_once_equal_a_pass_over_the_whole_history(seed):
    """The Stopper reads each closed epoch's record once and keeps the series (O(1) per epoch). Fed one epoch at a
    time, with validation on some epochs only, a value a later callback adds to the epoch being closed, and the
    history replaced midway (a resume), its series and its patience count equal a pass over the whole history."""
    from trainwell.train.callbacks import State
    from trainwell.train.stop_callback import Stopper

    g = torch.Generator().manual_seed(seed)
    n = 50
    train = (3 - torch.rand(n, generator=g).cumsum(0) * 0.05).tolist()
    val = (2 + torch.randn(n, generator=g).cumsum(0) * 0.1).tolist()
    logged = (torch.rand(n, generator=g) > 0.3).tolist()
    stopper = Stopper(early_stopping=EarlyStopping(patience=1000), monitor="val_loss", strict=False,
                      divergence=Divergence(1e9))
    state = State(model=torch.nn.Linear(1, 1), optimizer=None)
    for e in range(n):
        record = {"epoch": e, "train_loss": train[e], **({"val_loss": val[e]} if logged[e] else {})}
        state.epoch, state.metrics = e, record
        state.history.append(record)
        stopper.on_epoch_end(state)
        record["late"] = float(e)  # added after the Stopper ran, by a later callback
        if e == n // 2:
            # another history of the same length (a resumed run's, say): it is read again, not continued
            state.history = [{**r, "train_loss": r["train_loss"] + 1.0} for r in state.history]
        for key in ("train_loss", "val_loss", "late"):
            assert stopper._series(state, key) == [r[key] for r in state.history if key in r]
        vals = [r["val_loss"] for r in state.history if "val_loss" in r]
        if "val_loss" in record:
            assert record["patience_wait"] == EarlyStopping(patience=1000).scan(vals)[4]


@pytest.mark.parametrize("seed", range(6))
def test_early_stopping_scan_resumed_from_its_memo_equals_a_walk_from_the_start(seed):
    """``EarlyStopping.scan(series, memo)`` fed a growing series (its last value changing once before the next
    arrives) returns what a walk of the whole series returns, for every setting that changes the walk: mode,
    patience, min_delta (relative too), thresholds, baseline, start_from_epoch, NaN checked or counted."""
    g = torch.Generator().manual_seed(seed)
    values = (1 + torch.randn(80, generator=g).cumsum(0) * 0.05).tolist()
    for i in torch.randint(0, 80, (3,), generator=g).tolist():
        values[i] = math.nan if seed % 2 else values[i]
    settings = [dict(patience=5), dict(mode="max", patience=8, min_delta=0.01), dict(patience=6, relative=True,
                min_delta=0.02, start_from_epoch=10), dict(patience=1000, stopping_threshold=min(values[:60]) + 0.01),
                dict(patience=1000, divergence_threshold=max(values[:60]) - 0.01), dict(patience=7, baseline=0.5),
                dict(patience=4, check_finite=False)]
    for kw in settings:
        es, memo = EarlyStopping(**kw), {}
        for n in range(1, len(values) + 1):
            provisional = values[: n - 1] + [values[n - 1] + 1.0]  # the epoch being closed, read once early
            assert es.scan(provisional, memo) == es.scan(provisional), (kw, n)
            assert es.scan(values[:n], memo) == es.scan(values[:n]), (kw, n)
        assert es.scan(values[:10], memo) == es.scan(values[:10])  # a shorter series: walked from the start


@pytest.mark.parametrize("criterion", ["early_stopping", "generalization_loss"])
def test_a_validation_criterion_without_validation_data_is_refused_as_early_stopping_is(criterion):
    """GeneralizationLoss reads the validation loss: without validation data it would never fire and say nothing;
    it is refused in the first epoch, with the same advice as EarlyStopping."""
    from torch import nn

    from trainwell.train import Trainer
    from trainwell.train.stopping import GeneralizationLoss

    torch.manual_seed(0)
    x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
    model = nn.Linear(3, 2)
    callback = EarlyStopping(patience=1) if criterion == "early_stopping" else GeneralizationLoss(alpha=5)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=3, batch_size=16,
                      callbacks=[callback])
    with pytest.raises(TrainwellError) as err:
        trainer.fit((x, y))
    message = str(err.value)
    assert "'val_loss', which this run does not log (available: epoch, lr, step, time, train_acc, train_loss)" \
        in message and "give validation data" in message and len(message.splitlines()) == 1
    assert not isinstance(err.value, ConfigError) and "stop.strict" not in message
    assert len(trainer.state.history) == 1  # refused at the end of the first epoch
    assert len(trainer.fit((x, y), (x, y)).history) >= 1  # with validation data it runs


@pytest.mark.parametrize("argument", [{"patience": 1.5}, {"patience": True}, {"start_from_epoch": 0.5}])
def test_early_stopping_counts_epochs_in_integers(argument):
    (name, value), = argument.items()
    with pytest.raises(ValueError, match=rf"^EarlyStopping\({name}={value!r}\) is not allowed: use an integer >= 0"):
        EarlyStopping(**argument)
    import numpy as np

    assert EarlyStopping(patience=np.int64(2)).evaluate([3.0, 2.0, 2.5, 2.6]) == EarlyStopping(patience=2).evaluate(
        [3.0, 2.0, 2.5, 2.6])


@pytest.mark.parametrize("argument, message", [
    ({"min_delta": "0.01"}, "min_delta='0.01') is not allowed: use a finite number >= 0"),
    ({"min_delta": None}, "min_delta=None) is not allowed: use a finite number >= 0"),
    ({"baseline": "0.5"}, "baseline='0.5') is not allowed: use a finite number or None"),
    ({"stopping_threshold": "0.1"}, "stopping_threshold='0.1') is not allowed: use a finite number or None"),
    ({"stopping_threshold": math.nan}, "stopping_threshold=nan) is not allowed: use a finite number or None"),
    ({"divergence_threshold": "5"}, "divergence_threshold='5') is not allowed: use a finite number or None"),
    ({"mode": "val_acc"}, "mode='val_acc') is not allowed: the first positional argument is mode ('min', 'max' or "
                          "None for auto), not the metric: write EarlyStopping(monitor='val_acc')"),
])
def test_early_stopping_refuses_what_it_would_compare_wrongly_when_built(argument, message):
    """Each was accepted (and failed in fit, or never fired) or escaped as a raw comparison TypeError."""
    with pytest.raises(ValueError) as err:
        EarlyStopping(**argument)
    assert str(err.value).startswith("EarlyStopping(" + message) and len(str(err.value).splitlines()) == 1


def test_early_stopping_names_the_monitor_given_where_mode_goes_and_takes_numpy_and_0dim_tensor_numbers():
    with pytest.raises(ValueError, match=r"^EarlyStopping\(mode='val_acc'\) .* write EarlyStopping\(monitor="):
        EarlyStopping("val_acc")  # Keras' positional monitor
    with pytest.raises(ValueError, match=r"^EarlyStopping\(mode='maximize'\) is not allowed: use 'min', 'max' or "
                                         r"None \(auto\)$"):
        EarlyStopping(mode="maximize")  # no metric name: no pointer to monitor=
    import numpy as np

    es = EarlyStopping(min_delta=np.float32(0.5), stopping_threshold=torch.tensor(1.0), baseline=np.float64(3.0))
    assert es.evaluate([2.0, 1.8, 0.5]) == EarlyStopping(min_delta=0.5, stopping_threshold=1.0, baseline=3.0).evaluate(
        [2.0, 1.8, 0.5])


@pytest.mark.parametrize("alpha", ["5", None, math.nan])
def test_generalization_loss_refuses_an_alpha_that_is_not_a_number_by_name(alpha):
    from trainwell.train.stopping import GeneralizationLoss

    with pytest.raises(ValueError, match=rf"^GeneralizationLoss\(alpha={alpha!r}\) is not allowed: use a finite "
                                         rf"number > 0 \(percent\)$"):
        GeneralizationLoss(alpha=alpha)


@pytest.mark.parametrize("build, named", [
    (lambda: FixedSchedule(epochs="5"), "FixedSchedule(epochs='5')"), (lambda: FixedSchedule(5, more=1.5), "more=1.5"),
    (lambda: FixedSchedule(5, factor=None), "factor=None"), (lambda: LossChange(threshold="0.01"), "threshold='0.01'"),
    (lambda: LossChange(window=0), "window=0"), (lambda: WeightChange(threshold=float("nan")), "threshold=nan"),
    (lambda: Divergence(factor="10"), "factor='10'"), (lambda: Divergence(expected="2.3"), "expected='2.3'"),
    (lambda: Divergence(window=2.5), "window=2.5"), (lambda: OverfitDetector(window=None), "window=None")])
def test_the_other_criteria_refuse_what_they_would_compare_wrongly_when_built(build, named):
    with pytest.raises(ValueError, match=r"is not allowed: use") as err:
        build()
    assert named in str(err.value) and len(str(err.value).splitlines()) == 1


def test_the_criteria_take_numpy_numbers_as_numbers():
    import numpy as np

    assert FixedSchedule(np.int64(5), factor=np.float32(0.1)).epochs == 5
    assert LossChange(threshold=np.float64(0.01), window=np.int32(3)).window == 3
