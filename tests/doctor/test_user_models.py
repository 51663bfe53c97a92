"""The doctor on the models people train (tests/user_models.py): check and watch give verdicts, never an
exception; no check is silently skipped by an internal error; a healthy model gets no fail, a broken one (a
layer in a Python list) gets a fail that names it."""

import pytest
import torch

from tests.user_models import CATALOG, fresh
from trainwell import doctor


def _loop(case, steps: int = 6):
    model, opt = case.model, case.optimizer()
    with doctor.watch(model, opt, every=2) as w:
        for i in range(steps):
            j = torch.arange(i * 8, i * 8 + 16) % len(case.x)
            loss = case.loss_fn(model(case.x[j]), case.y[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=case.y[j])
    return w.report()


def _assert_honest(name: str):
    case = fresh(name)
    report = doctor.check(case.model, case.x, case.y, case.loss_fn, optimizer=case.optimizer())
    crashed = [v for v in report if "could not run" in str(v.value)]
    assert not crashed, crashed
    if case.defect is None:
        assert not report.failed, report.failed
    else:
        assert any(case.defect in f"{v.check} {v.value}" for v in report.failed), report.failed
    watched = _loop(fresh(name))
    assert not [v for v in watched if "could not run" in str(v.value)]
    if case.defect is None:
        assert not watched.failed, watched.failed


#: the fast set: the models on which the doctor used to raise, and one of each output structure and loss option
FAST = ("frozen_first_layer", "tuple_output", "python_list_layers", "class_weights", "nll_weights",
        "label_smoothing")


@pytest.mark.parametrize("name", FAST)
def test_catalog_model(name):
    _assert_honest(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CATALOG if n not in FAST])
def test_catalog_model_rest(name):
    _assert_honest(name)


def test_the_catalog_is_wide():
    assert len(CATALOG) >= 25
