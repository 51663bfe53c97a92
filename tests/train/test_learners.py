"""Every learner honours the one contract the fit loop relies on (:class:`trainwell.train.learners.Learner`): the
same assertions run over a plain module, a vmapped population and the distributed learner (a world of one process,
built in-process with gloo). Oracles: torch's own loss on a plain copy of each member's weights, permutations of
``range(n)``, and a saved state that restores the same evaluation."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.train import Trainer
from trainwell.train.learners import Learner, ModuleLearner
from trainwell.train.population import PopulationLearner, narrow_state

N, D, C = 48, 5, 3


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, C))


def _module():
    model = _net(0)
    learner = ModuleLearner(model, torch.optim.SGD(model.parameters(), lr=0.1))
    return learner, (lambda m: model), contextlib.nullcontext()


def _population():
    nets = [_net(s) for s in (0, 1, 2)]
    learner = PopulationLearner(nets[0], [n.state_dict() for n in nets], optimizer="sgd", lrs=[0.1, 0.05, 0.2],
                                weight_decays=[0.0] * 3)

    def reference(m: int) -> nn.Module:
        net = _net(0)
        net.load_state_dict(narrow_state(learner.member_state(m), net.state_dict()))
        return net

    return learner, reference, contextlib.nullcontext()


@contextlib.contextmanager
def _group(tmp_path):
    import datetime

    import torch.distributed as dist

    # a bounded wait: a collective that cannot complete fails the test instead of hanging the whole run
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/group", rank=0, world_size=1,
                            timeout=datetime.timedelta(seconds=120))
    try:
        yield
    finally:
        # every collective finished and its tensors released before the group goes (as trainwell's own finish()
        # does): the learner's DDP still holds the group, and destroying it from Python while gloo's worker thread
        # waits for the GIL to free a finished allreduce's tensors deadlocked a test run once
        dist.barrier()
        dist.destroy_process_group()


def _distributed(tmp_path):
    from trainwell.train.distributed import Context, DistributedLearner

    group = _group(tmp_path)
    group.__enter__()
    model = _net(0)
    ctx = Context(rank=0, world_size=1, local_rank=0, backend="gloo", device=torch.device("cpu"))
    learner = DistributedLearner(model, torch.optim.SGD(model.parameters(), lr=0.1), ctx=ctx)
    return learner, (lambda m: model), group


@pytest.fixture(params=["module", "population",
                        pytest.param("distributed", marks=pytest.mark.slow)])  # a process group: seconds to start
def learner(request, tmp_path):
    built = {"module": _module, "population": _population}.get(request.param)
    learner, reference, group = built() if built else _distributed(tmp_path)
    yield learner, reference
    group.__exit__(None, None, None)


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, D, generator=g), torch.randint(0, C, (N,), generator=g)


def test_the_learner_has_every_method_the_loop_calls(learner):
    learner, _ = learner
    assert isinstance(learner, Learner)
    assert learner.size >= 1 and isinstance(learner.vmapped, bool) and isinstance(learner.device, torch.device)
    assert len(learner.lrs()) == learner.size and len(learner.epoch_metrics(N)) == learner.size


def test_permutations_are_one_per_member_and_repeat_with_the_seeds(learner):
    learner, _ = learner
    gens = lambda: [torch.Generator().manual_seed(s) for s in range(learner.size)]  # noqa: E731
    perm = learner.permutation(N, gens())
    rows = perm.reshape(-1, N)
    assert len(rows) == learner.size and perm.shape == ((N,) if learner.size == 1 else (learner.size, N))
    assert all(sorted(r.tolist()) == list(range(N)) for r in rows)
    assert torch.equal(perm, learner.permutation(N, gens()))
    # member m draws what a separate fit seeded like it draws: torch.randperm from its own generator
    assert all(torch.equal(r, torch.randperm(N, generator=g)) for r, g in zip(rows, gens(), strict=True))


def test_evaluate_matches_torch_on_each_members_weights(learner):
    learner, reference = learner
    x, y = _data()
    loss, acc = learner.evaluate(x, y)
    for m in range(learner.size):
        with torch.no_grad():
            out = reference(m)(x)
        assert loss[m] == pytest.approx(F.cross_entropy(out, y).item(), rel=1e-5)
        assert acc[m] == pytest.approx((out.argmax(1) == y).float().mean().item())


def test_a_step_trains_every_member_and_a_saved_state_restores_it(learner):
    learner, reference = learner
    x, y = _data()
    learner.start_epoch()
    before = learner.evaluate(x, y)
    saved = {k: v for k, v in _copy(learner.state_dict()).items()}
    idx = learner.permutation(N, [torch.Generator().manual_seed(s) for s in range(learner.size)])[..., :16]
    loss, right = learner.train_step(x, y, idx)
    assert loss.shape == (() if learner.size == 1 else (learner.size,)) and torch.all(loss > 0)
    if right is None:  # the learner counted them itself (a ModuleLearner on a CPU)
        right = learner.held_right()
    assert int(torch.as_tensor(right).sum()) <= 16 * learner.size
    after = learner.evaluate(x, y)
    assert all(a != b for a, b in zip(after[0], before[0], strict=True))  # every member's weights moved
    learner.load_state_dict(saved)
    assert learner.evaluate(x, y) == before


def test_scale_lr_changes_one_members_rate_and_run_row_is_the_runs_own(learner):
    learner, _ = learner
    lrs = learner.lrs()
    learner.scale_lr(0.5, learner.size - 1)
    assert learner.lrs()[-1] == pytest.approx(lrs[-1] * 0.5) and learner.lrs()[:-1] == pytest.approx(lrs[:-1])
    rows = {m: {"train_loss": 1.0 + m, "train_acc": 0.5, "time": 0.1} for m in range(learner.size)}
    row = learner.run_row(0, 3, rows)
    if learner.size == 1:
        assert row is None  # one model: the run's row is the model's
    else:
        assert row["train_loss"] == pytest.approx(sum(1.0 + m for m in range(learner.size)) / learner.size)
        assert row["members_training"] == learner.size


def test_the_trainer_runs_every_learner_through_the_same_loop(learner):
    learner, _ = learner
    x, y = _data()
    trainer = Trainer(learner, epochs=2, batch_size=16, seed=list(range(learner.size)))
    state = trainer.fit((x, y), (x[:16], y[:16]))
    assert len(state.history) == 2 and all(len(s.history) == 2 for s in trainer.members)
    assert all({"train_loss", "val_loss", "lr"} <= set(s.history[-1]) for s in trainer.members)


def _copy(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy(v) for v in obj]
    return obj


@pytest.mark.parametrize("dim", [1, 2])
def test_predicted_classes_are_argmax_with_its_ties_and_nans(dim):
    """The learners' predictions equal ``argmax``: the first of tied maxima, a NaN counted as the maximum, on
    contiguous outputs and on the transposed (feature-major) view the batched forward returns."""
    from trainwell.train.learners import predicted_classes

    g = torch.Generator().manual_seed(dim)
    for trial in range(60):
        c = int(torch.randint(2, 120, (1,), generator=g))
        out = torch.randint(0, 3, (5, 33, c), generator=g).float()  # values 0-2: ties in most rows
        out[torch.rand(out.shape, generator=g) < (0.04 if trial % 3 == 0 else 0.0)] = float("nan")
        out[torch.rand(out.shape, generator=g) < (0.04 if trial % 4 == 0 else 0.0)] = float("inf")
        if dim == 1:
            out = out[0]
        strided = out.transpose(-1, -2).contiguous().transpose(-1, -2)
        for o in (out, strided):
            assert torch.equal(predicted_classes(o, dim), o.argmax(dim=dim))
