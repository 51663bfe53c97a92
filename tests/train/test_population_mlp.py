"""Members that see the same batches share the input: the first layer of all members is one wide GEMM. Its results
must equal the per-member path's (and, through the sweep, separate fits)."""

import copy
import warnings

import pytest
import torch
from torch import nn

from tests.helpers import sweep_members_equal_fits
from trainwell.config import load_config
from trainwell.sweep import parse_grid
from trainwell.train.population import PopulationLearner
from trainwell.train.population_mlp import mlp_plan

BASE = ["data.name=spirals", "data.options={n_per_class = 60}", "model.kind=mlp", "model.hidden=[16,16]",
        "train.epochs=3", "train.batch_size=32", "report.enabled=false", "doctor.preflight=false",
        "doctor.monitor_every=0"]


def _mlp(act=nn.ReLU):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), act(), nn.Linear(8, 5), act(), nn.Linear(5, 3))


def _learner(model, m=4, **kw):
    states = []
    for s in range(m):
        torch.manual_seed(s)
        net = copy.deepcopy(model)
        for p in net.parameters():
            nn.init.normal_(p, std=0.5)
        states.append(net.state_dict())
    return PopulationLearner(model, states, optimizer="adam", lrs=[0.01, 0.02, 0.03, 0.04][:m],
                             weight_decays=[0.0, 0.1, 0.0, 0.01][:m], **kw)


def test_mlp_plan_accepts_plain_mlps_only():
    assert [p[:4] for p in mlp_plan(_mlp())] == [("1.weight", "1.bias", 6, 8), ("3.weight", "3.bias", 8, 5),
                                                  ("5.weight", "5.bias", 5, 3)]
    assert mlp_plan(_mlp(nn.Tanh)) is not None
    assert mlp_plan(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Linear(2, 2))) is None
    assert mlp_plan(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.ReLU(), nn.Linear(2, 2))) is None
    assert mlp_plan(nn.Sequential(nn.Linear(2, 2, bias=False))) is None
    assert mlp_plan(nn.Sequential(nn.Conv1d(1, 1, 3), nn.Flatten(), nn.Linear(2, 2))) is None
    assert mlp_plan(nn.Sequential(nn.Linear(2, 2), nn.ReLU())) is None  # must end in a Linear


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh])
def test_shared_forward_equals_per_member_and_vmap(act):
    model = _mlp(act)
    gemm, vm = _learner(model), _learner(model, layout="vmap")
    x = torch.randn(7, 6)
    shared = gemm.forward(x, shared=True)
    per_member = gemm.forward(x.expand(4, 7, 6).contiguous())
    ref = vm.forward(x, shared=True)
    assert shared.shape == (4, 7, 3)
    torch.testing.assert_close(shared, per_member, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(shared, ref, rtol=1e-5, atol=1e-6)
    for m in range(4):  # member m is its own nn.Module
        net = copy.deepcopy(model)
        net.load_state_dict(gemm.member_state(m))
        torch.testing.assert_close(shared[m], net(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shared", [True, False])
def test_the_backward_rebuilds_no_activation(shared):
    """The ReLU runs in place on each GEMM's own output, never on a view of it: autograd then records no
    CopySlices / AsStridedBackward node, whose backward zeroes and copies the whole layer output every step."""
    learner = _learner(_mlp())
    x = torch.randn(7, 6) if shared else torch.randn(4, 7, 6)
    seen, stack = set(), [learner.forward(x, shared=shared).grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(nxt for nxt, _ in node.next_functions)
    names = {type(n).__name__ for n in seen}
    assert not names & {"CopySlices", "AsStridedBackward0"}, names
    assert "AddmmBackward0" in names if shared else "BaddbmmBackward0" in names


def test_shared_steps_equal_per_member_steps():
    """Training steps where every member draws the same rows: the shared-input path (detected from the rows)
    ends where the per-member path (shared_input=False) and the vmapped one end, in float32."""
    model = _mlp()
    learners = {"shared": _learner(model), "per-member": _learner(model, shared_input=False),
                "vmap": _learner(model, layout="vmap", shared_input=False)}
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (4, 64), generator=g)  # per-member labels
    seen = []
    for _ in range(6):
        rows = torch.randperm(64, generator=g)[:16]
        idx = rows.expand(4, 16)
        out = {k: lr.train_step(x, y, idx) for k, lr in learners.items()}
        seen.append(learners["shared"]._shared_rows(idx))
        torch.testing.assert_close(out["shared"][0], out["per-member"][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out["shared"][0], out["vmap"][0], rtol=1e-5, atol=1e-6)
    assert all(seen)
    for k in ("per-member", "vmap"):
        for key, v in learners["shared"].params.items():
            torch.testing.assert_close(v, learners[k].params[key], rtol=1e-5, atol=1e-6)


def test_different_rows_are_not_shared_and_a_broken_promise_is_refused():
    learner = _learner(_mlp())
    idx = torch.stack([torch.arange(8) + m for m in range(4)])
    assert not learner._shared_rows(idx)
    assert learner._shared_rows(torch.arange(8).expand(4, 8))
    promised = _learner(_mlp(), shared_input=True)
    with pytest.raises(ValueError, match="shared_input=True"):
        promised.train_step(torch.randn(20, 6), torch.zeros(20, dtype=torch.long), idx)
    with pytest.raises(ValueError, match="layout"):
        _learner(_mlp(), layout="wide")


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_one_seed_sweep_shares_the_input_and_matches_separate_fits(workdir):
    """A sweep over rates and widths with one seed: every member draws the same batches (the shared-input path)
    and each still equals its own fit."""
    cfg = load_config(None, BASE + ["optim.schedule=onecycle"])
    grid = parse_grid(["optim.lr=0.01,0.003", "model.hidden=[4,4],[16,16]"])
    sweep_members_equal_fits(workdir, cfg, grid, epochs=3)


def test_gpu_branch_trusts_the_promise_after_the_first_step_and_the_pipeline_promises_only_one_seed():
    """The GPU logic, run on a CPU: with ``shared_input=True`` on a non-CPU device the rows are compared on the
    first step only (a comparison would wait for the device); ``fit_population`` promises it only for one seed on
    a GPU, lets a CPU learner find out, and refuses it for several seeds."""
    from trainwell.pipeline.population import _one_data_order

    learner = _learner(_mlp(), shared_input=True)
    learner.device = torch.device("cuda")  # only the branch is exercised; no tensor goes to a GPU
    same, other = torch.arange(8).expand(4, 8), torch.stack([torch.arange(8) + m for m in range(4)])
    assert learner._shared_rows(same)
    assert learner._shared_rows(other)  # not compared again
    unchecked = _learner(_mlp())
    unchecked.device = torch.device("cuda")
    assert not unchecked._shared_rows(same)  # no promise: a GPU learner does not compare, nor share
    one = [load_config(None, BASE + [f"optim.lr={lr}"]) for lr in (0.1, 0.01)]
    two = [load_config(None, BASE + [f"train.seed={s}"]) for s in (0, 1)]
    assert _one_data_order(one, torch.device("cuda")) is True
    assert _one_data_order(one, torch.device("cpu")) is None
    assert _one_data_order(two, torch.device("cuda")) is False


@pytest.mark.parametrize("layout", ["batch-major", "feature-major", "strided"])
@pytest.mark.parametrize("shared_labels", [False, True])
def test_member_losses_equal_each_members_own_cross_entropy(layout, shared_labels):
    import torch.nn.functional as F
    from torch import nn

    from trainwell.train.population import PopulationLearner

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(5, 3))
    learner = PopulationLearner(net, [net.state_dict()] * 4, optimizer="sgd", lrs=[0.1] * 4, weight_decays=[0.0] * 4)
    base = torch.randn(4, 7, 3) if layout == "batch-major" else torch.randn(4, 3, 7).transpose(1, 2)
    out = base if layout != "strided" else torch.randn(4, 14, 3)[:, ::2]  # neither layout: the vmapped path
    y = torch.randint(0, 3, (7,) if shared_labels else (4, 7))
    got = learner.member_losses(out, y)
    want = torch.stack([F.cross_entropy(out[m], y if shared_labels else y[m]) for m in range(4)])
    torch.testing.assert_close(got, want)
    hinge = PopulationLearner(net, [net.state_dict()] * 4, optimizer="sgd", lrs=[0.1] * 4, weight_decays=[0.0] * 4,
                              loss_fn="hinge")
    want = torch.stack([F.multi_margin_loss(out[m], y if shared_labels else y[m]) for m in range(4)])
    with warnings.catch_warnings():  # torch's vmap has no batching rule for multi_margin_loss: a warning, not an error
        warnings.simplefilter("ignore", UserWarning)
        torch.testing.assert_close(hinge.member_losses(out, y), want)


def _autograd_grads(plan, params, x, y, shared):
    """The oracle: autograd through the same forward and torch's cross-entropy."""
    import torch.nn.functional as F

    from trainwell.train.population_mlp import mlp_forward

    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    out = mlp_forward(plan, leaves, x, shared)
    yy = y.expand(out.shape[0], -1) if y.dim() == 1 else y
    losses = F.cross_entropy(out.transpose(1, 2), yy, reduction="none").mean(1)
    losses.sum().backward()
    return losses.detach(), out.detach(), {k: v.grad for k, v in leaves.items()}


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity])
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("batch", [32, 37, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_written_backward_equals_autograd_bit_for_bit(act, shared, batch, dtype):
    from trainwell.train.population_mlp import mlp_cross_entropy_step, written_backward

    model = _mlp(act).to(dtype)
    learner = _learner(model)
    plan = learner.plan
    assert written_backward(plan)
    g = torch.Generator().manual_seed(batch)
    m = learner.size
    x = torch.randn((batch, 6) if shared else (m, batch, 2, 3), generator=g, dtype=dtype)
    y = torch.randint(0, 3, (batch,) if shared else (m, batch), generator=g)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in learner.leaves.items()}
    want_loss, want_out, want = _autograd_grads(plan, params, x, y, shared)
    losses, out = mlp_cross_entropy_step(plan, params, x, y, shared)
    assert torch.equal(losses, want_loss) and torch.equal(out, want_out)
    for k, v in params.items():
        assert v.grad.shape == v.shape and torch.equal(v.grad, want[k]), k


def test_written_backward_only_for_activations_it_writes_out():
    from trainwell.train.population_mlp import written_backward

    assert not written_backward(mlp_plan(_mlp(nn.GELU)))  # GELU's gradient needs its input: autograd
    assert not written_backward(None)
    assert not _learner(_mlp(nn.GELU))._written_backward
    assert not _learner(_mlp(), loss_fn="hinge")._written_backward


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_population_steps_with_written_backward_equal_autograd_steps(optimizer):
    """Steps of a whole population (own and shared batches, a member frozen halfway) give bit for bit the
    parameters the autograd path gives."""
    model = _mlp()
    learners = []
    for written in (True, False):
        lrn = _learner(model)
        lrn.optimizer.name = optimizer
        lrn._written_backward = written
        learners.append(lrn)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 6, generator=g), torch.randint(0, 3, (50,), generator=g)
    for step in range(7):
        idx = torch.randint(0, 50, (4, 1 if step == 6 else 10), generator=g)  # a last batch of one row too
        if step % 2:
            idx = idx[:1].expand(4, 10)
        if step == 3:
            for lrn in learners:
                lrn.freeze(2)
        results = [lrn.train_step(x, y, idx) for lrn in learners]
        assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))
    for k, v in learners[0].params.items():
        assert torch.equal(v, learners[1].params[k]), k


def test_written_backward_step_never_waits_for_the_device():
    """A captured CUDA graph cannot hold a host synchronization: the written-out step reads no tensor's value on
    the host (no ``.item()``, ``.tolist()``, comparisons turned into Python booleans)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from trainwell.train.population_mlp import mlp_cross_entropy_step

    syncs = []

    class Reads(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default,
                        torch.ops.aten.equal.default):
                syncs.append(str(func))
            return func(*args, **(kwargs or {}))

    learner = _learner(_mlp())
    x, y = torch.randn(4, 9, 6), torch.randint(0, 3, (4, 9))
    with Reads():
        mlp_cross_entropy_step(learner.plan, learner.leaves, x, y, shared=False)
        mlp_cross_entropy_step(learner.plan, learner.leaves, x[0], y[0], shared=True)
    assert syncs == []
    assert all(p.grad is not None for p in learner.leaves.values())
