"""The doctor on the models people train (tests/user_models.py): check and watch give verdicts, never an
exception; no check is silently skipped by an internal error; a healthy model gets no fail, a broken one (a
layer in a Python list) gets a fail that names it."""

import pytest
import torch
from torch import nn

from tests.doctor_fixtures import WrongBackward
from tests.user_models import CATALOG, SEVERAL_INPUTS, MaskedBag, fresh, padded_tokens, two_towers
from trainwell import doctor
from trainwell.doctor import preflight as pf
from trainwell.doctor.inputs import as_inputs


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
@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_catalog_model(name):
    _assert_honest(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CATALOG if n not in FAST])
def test_catalog_model_rest(name):
    _assert_honest(name)


def test_the_catalog_is_wide():
    assert len(CATALOG) >= 25


# -- several inputs: forward(ids, mask), dict batches, two towers -----------------------------------------------
def _inputs_state(x):
    """Each input tensor (the object), a copy of its values and its requires_grad flag, by key."""
    items = x.items() if isinstance(x, dict) else enumerate(x)
    return {k: (t, t.clone(), t.requires_grad) for k, t in items}


def _check_several(name):
    case = fresh(name)
    keys, state = type(case.x), _inputs_state(case.x)
    params = {k: v.clone() for k, v in case.model.state_dict().items()}
    report = doctor.check(case.model, case.x, case.y, case.loss_fn, optimizer=case.optimizer())
    assert type(case.x) is keys and _inputs_state(case.x).keys() == state.keys()
    now = _inputs_state(case.x)
    for k, (t, value, requires) in state.items():  # the same tensors, values and flags
        assert now[k][0] is t and torch.equal(t, value) and t.requires_grad == requires, k
    assert all(torch.equal(v, params[k]) for k, v in case.model.state_dict().items())
    return report


@pytest.mark.parametrize("name", list(SEVERAL_INPUTS))
def test_models_of_several_inputs_get_every_verdict_and_stay_untouched(name):
    report = _check_several(name)
    assert not [v for v in report if "could not run" in str(v.value)]
    assert not report.failed and not report.warnings, report.failed + report.warnings
    for check in ("initial loss", "gradient check (data loss)", "gradient check (data + L2)",
                  "overfit a tiny subset", "input-independent baseline", "batch independence"):
        assert report[check].status == "pass", report[check]
    skipped = [v for v in report if v.status == "skip"]
    assert all(v.value.startswith("skipped: ") and "could not" not in v.value for v in skipped)  # with a reason


@pytest.mark.slow  # 0.37 s each on a 2-core CPU (RESULTS §51)
def test_a_tuple_and_a_dict_batch_give_the_same_verdicts():
    """The text classifier called model(ids, mask), model(batch) and model(**batch): one model, one verdict."""
    reports = [doctor.check(c.model, c.x, c.y, c.loss_fn) for c in
               (fresh("masked_bag"), fresh("dict_batch"), fresh("keyword_batch"))]
    for report in reports[1:]:
        for a, b in zip(reports[0], report, strict=True):
            assert a.status == b.status and (a.check == "batch independence" or a.value == b.value), (a, b)
    assert "ids, mask" in reports[1]["batch independence"].value  # names the fields it replaced


class IgnoresItem(nn.Sequential):
    """A two-input model that never reads its second input: the single-input MLP underneath."""

    def forward(self, user, item):
        return super().forward(user)


@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_a_model_ignoring_one_input_reads_as_its_single_input_twin():
    user, item, y = two_towers()
    torch.manual_seed(0)
    single = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
    torch.manual_seed(0)
    pair = IgnoresItem(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
    alone = doctor.check(single, user, y, nn.CrossEntropyLoss())
    both = doctor.check(pair, (user, item), y, nn.CrossEntropyLoss())
    for a, b in zip(alone, both, strict=True):
        assert a.status == b.status, (a, b)
        if a.check != "batch independence":
            assert a.value == b.value, (a, b)  # the same numbers: the checks run the same computation
    assert both["batch independence"].value.startswith("max |d out_0 / d x_j| = 0 ")


class _BatchMean(MaskedBag):
    """Pooled embeddings centred on the batch mean: every sample leaks into the others, in eval mode too."""

    def forward(self, ids, mask):
        e = (self.emb(ids) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return self.ff(e - e.mean(0))


def test_batch_independence_sees_a_leak_through_integer_ids():
    ids, mask, _ = padded_tokens()
    torch.manual_seed(0)
    leak = pf.batch_independence(_BatchMean(), as_inputs((ids, mask)))
    assert leak.status == "fail" and "when the others' x[0], x[1] change" in leak.value
    torch.manual_seed(0)
    assert pf.batch_independence(MaskedBag(), as_inputs((ids, mask))).status == "pass"


def test_gradient_check_keeps_ids_integer_and_finds_a_wrong_backward_in_one_tower():
    class Squared(nn.Module):
        def forward(self, t):
            return WrongBackward.apply(t)

    class Towers(nn.Module):
        def __init__(self, bug: bool):
            super().__init__()
            self.user, self.item = nn.Linear(6, 8), nn.Linear(4, 8)
            self.act, self.head = Squared() if bug else nn.Tanh(), nn.Linear(8, 3)

        def forward(self, user, item):
            return self.head(torch.tanh(self.user(user)) + self.act(self.item(item)))

    user, item, y = two_towers()
    torch.manual_seed(0)
    assert pf.gradient_check(Towers(bug=False), as_inputs((user, item)), y).status == "pass"
    torch.manual_seed(0)
    assert pf.gradient_check(Towers(bug=True), as_inputs((user, item)), y).status == "fail"
    ids, mask, y = padded_tokens()
    torch.manual_seed(0)
    assert pf.gradient_check(MaskedBag(), as_inputs({"ids": ids, "mask": mask}), y).status == "pass"
