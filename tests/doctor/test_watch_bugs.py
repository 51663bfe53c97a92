"""benchmarks/watch_bugs.py: the loops of benchmarks/loop_bugs.py run plainly (no doctor call) under ``trainwell
watch``. The plain loop is the explicit one's arithmetic, seed for seed, and the script watch reads it."""

import importlib.util
import sys
from pathlib import Path

import pytest

_bench = Path(__file__).parents[2] / "benchmarks"


def _load(name):
    if name in sys.modules:  # loaded by another test file (test_loop_verdicts.py) or by watch_bugs
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _bench / f"{name}.py")
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loop_bugs = _load("loop_bugs")
watch_bugs = _load("watch_bugs")

SOFTMAX = "softmax before CrossEntropyLoss (double softmax)"


def _case(name):
    (case,) = [c for c in loop_bugs.CASES if c.name == name]
    return case


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The loops at one torch thread, as the benchmark runs them (tiny operations: more threads only wait)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def explicit_numbers(_one_thread):
    """The double softmax loop under the explicit watch: the losses and validations handed to w.step / w.validate."""
    real = loop_bugs.doctor.watch
    losses, validations = [], []

    def recording(*args, **kwargs):
        w = real(*args, **kwargs)
        step, validate = w.step, w.validate

        def read_step(loss, **kw):
            losses.append(float(loss.detach()))
            return step(loss, **kw)

        def read_validation(value):
            validations.append(float(value))
            return validate(value)
        w.step, w.validate = read_step, read_validation
        return w
    loop_bugs.doctor.watch = recording
    try:
        pre, report = loop_bugs.run(_case(SOFTMAX).bug)
    finally:
        loop_bugs.doctor.watch = real
    return pre, report, losses, validations


@pytest.mark.slow  # 0.7 s: one loop explicit, one plain
def test_a_plain_loop_makes_no_doctor_call_and_trains_as_the_explicit_one(explicit_numbers, monkeypatch):
    pre, report, losses, validations = explicit_numbers
    assert pre is not None and report is not None and len(losses) == loop_bugs.EPOCHS * (loop_bugs.N // 32)

    def called(*args, **kwargs):
        raise AssertionError("a doctor call in a plain loop")
    monkeypatch.setattr(loop_bugs.doctor, "check", called)
    monkeypatch.setattr(loop_bugs.doctor, "watch", called)
    plain = loop_bugs.Plain()
    assert loop_bugs.run(_case(SOFTMAX).bug, calls=plain) == (None, None)
    assert plain.losses == losses  # the same seed, the same arithmetic: the same numbers, bit for bit
    assert plain.validations == validations and len(validations) == loop_bugs.EPOCHS


@pytest.mark.slow  # 1.3 s: the bug and its twin, each a loop under the script watch
def test_the_script_mode_is_read_by_trainwell_watch():
    case = _case(SOFTMAX)
    reports, sw = watch_bugs.watched(case, "bug", 20)
    assert sw.error is None and len(reports) == 1 and "read from step 2" in reports[0].title
    assert loop_bugs.classify(reports, case.cause)[0] == "right"
    twin, sw = watch_bugs.watched(case, "twin", 20)
    assert sw.error is None and not [v for v in loop_bugs.flagged(twin) if v.status == "fail"]


def test_a_bug_in_the_doctor_calls_alone_is_told_apart():
    assert watch_bugs.in_doctor_calls(_case("w.step() after every micro-batch"))
    assert not watch_bugs.in_doctor_calls(_case("kl_div given probabilities, no targets given to w.step"))
    assert not watch_bugs.in_doctor_calls(_case(SOFTMAX))
