"""spirals_common.train_members (every member of many small MLPs trained at once, each on its own data draw)
against the oracle: each member trained alone by ``fit`` gives the same weights."""

import pytest

from trainwell.config import load_config
from trainwell.lab import base
from trainwell.lab.spirals_common import spirals_overrides, train_members


def _over(seed, width, *extra, epochs=12):
    return [*spirals_overrides(20, 0.5, seed, epochs, 0.03), f"model.hidden=[{width}]", *extra]


def _cfg(over):
    return load_config(None, [*base.LAB_SETTINGS, *over])


def _max_diff(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max((sa[k] - sb[k]).abs().max().item() for k in sa)


@pytest.mark.parametrize("batch", ["train.batch_size=100000", "train.batch_size=16"])
@pytest.mark.slow  # 0.30 s each on a 2-core CPU (RESULTS §51)
def test_every_member_gets_the_weights_fit_gives_it(batch):
    # different data draws, widths, learning rates, weight decays and label-noise draws in one population
    overs = [_over(0, 3, batch), _over(1, 20, batch, "optim.lr=0.01"), _over(2, 6, batch, "optim.weight_decay=0.01"),
             _over(3, 20, batch, "data.label_noise=0.25", "data.corrupt_seed=4")]
    got = train_members([_cfg(o) for o in overs])
    for o, (model, _) in zip(overs, got, strict=True):
        ref = base.train(o, None, "ref")
        assert _max_diff(model, ref.model) < 1e-5


def test_labels_are_each_members_own_noisy_draw():
    from trainwell.pipeline import load_data

    o = _over(5, 6, "data.label_noise=0.5", "data.corrupt_seed=9")
    (_, splits), = train_members([_cfg(o)])
    assert splits.train[1].tolist() == load_data(_cfg(o))[0].train[1].tolist()


def test_coupled_weight_decay_is_the_l2_penalty():
    # regularize.l2 adds 1/2 lambda sum w^2 (weights only) to the loss; coupled decay adds lambda w to their gradient
    o = _over(0, 20, "data.label_noise=0.25", "data.corrupt_seed=1", epochs=30)
    (model, _), = train_members([_cfg([*o, "optim.weight_decay=0.01"])])
    assert _max_diff(model, base.train([*o, "regularize.l2=0.01"], None, "l2").model) < 1e-5


def test_refuses_members_that_differ_in_anything_else():
    with pytest.raises(ValueError, match="optim.name"):
        train_members([_cfg(_over(0, 3)), _cfg(_over(0, 3, "optim.name=sgd"))])
    with pytest.raises(ValueError, match="no configs"):
        train_members([])
