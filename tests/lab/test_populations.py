"""The lab's trainings as populations (populations.train_many): grouping rules (fast), and every converted experiment's
verdict identical to the one-at-a-time run at the quick size (slow)."""

import pytest

from trainwell.config import load_config
from trainwell.lab import base, populations
from trainwell.lab.populations import groups
from trainwell.lab.spirals_common import spirals_overrides


def _cfg(*extra):
    return load_config(None, [*base.LAB_SETTINGS, *spirals_overrides(20, 0.5, 0, 2, 0.03), *extra])


def test_groups_follow_what_a_population_member_may_differ_in():
    cfgs = [_cfg("model.hidden=[3]"), _cfg("model.hidden=[6]"), _cfg("model.hidden=[6]", "data.seed=1"),
            _cfg("model.hidden=[3]", "data.seed=1"), _cfg("model.hidden=[3]", "optim.name=adagrad"),
            _cfg("model.hidden=[3]", "model.dropout_keep=0.5"), _cfg("model.hidden=[3]", "model.dropout_keep=0.5",
                                                                     "train.seed=4")]
    # widths of one data draw train together; another draw is another population; Adagrad has no population
    # version and dropout is refused (noise would not match one-at-a-time runs): those train alone
    assert groups(cfgs) == [[0, 1], [2, 3], [4], [5], [6]]


def test_train_many_refuses_duplicate_names():
    with pytest.raises(ValueError, match="unique"):
        populations.train_many([(["model.hidden=[3]"], "a"), (["model.hidden=[6]"], "a")], None)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adam-l2-vs-adamw"])  # capacity and its kin: tests/lab/test_train_members.py
def test_population_verdicts_equal_sequential_verdicts(name):
    from trainwell.lab.registry import experiments

    exp = experiments()[name]
    cfg = exp.Config.quick()
    pop = exp.verdict(exp.run(cfg))
    with populations.sequential_training():
        seq = exp.verdict(exp.run(cfg))
    assert pop["status"] == seq["status"]
    assert [c["status"] for c in pop["evidence"]["criteria"]] == [c["status"] for c in seq["evidence"]["criteria"]]
    for a, b in zip(pop["evidence"]["criteria"], seq["evidence"]["criteria"], strict=True):
        if isinstance(a["effect"], float):
            assert a["effect"] == pytest.approx(b["effect"], abs=0.02)
