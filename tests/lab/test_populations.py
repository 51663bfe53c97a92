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


def test_init_schemes_share_a_population_and_depths_do_not():
    he, xavier = "init.scheme=he_normal", "init.scheme=xavier_normal"
    cfgs = [_cfg("model.hidden=[3, 3]", he), _cfg("model.hidden=[3, 3]", xavier), _cfg("model.hidden=[3]", he),
            _cfg("model.hidden=[6]", xavier)]
    assert groups(cfgs) == [[0, 1], [2, 3]]


def test_train_many_returns_every_step_loss_on_both_paths(tmp_path):
    runs = [([*spirals_overrides(20, 0.5, 0, 2, 0.03), "model.hidden=[4]", f"init.scheme={s}"], s)
            for s in ("he_normal", "xavier_normal")]
    pop = populations.train_many(runs, tmp_path / "pop", step_losses=True)
    with populations.sequential_training():
        seq = populations.train_many(runs, tmp_path / "seq", step_losses=True)
    for a, b in zip(pop, seq, strict=True):
        assert len(a.step_losses) == a.summary["steps"] == b.summary["steps"]
        assert a.step_losses == pytest.approx(b.step_losses, abs=1e-5)
    assert pop[0].step_losses[0] != pytest.approx(pop[1].step_losses[0], abs=1e-4)  # two inits, two curves


def test_train_many_refuses_duplicate_names():
    with pytest.raises(ValueError, match="unique"):
        populations.train_many([(["model.hidden=[3]"], "a"), (["model.hidden=[6]"], "a")], None)


@pytest.mark.slow
# capacity and its kin: tests/lab/test_train_members.py
@pytest.mark.parametrize("name", ["adam-l2-vs-adamw", "deep-relu-init"])
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
