import math

import pytest
import torch
from torch import nn

from trainwell.config import OptimConfig
from trainwell.errors import ConfigError
from trainwell.optim import build_optimizer, build_schedule, decoupled, from_config


def one_step(name, decay, w0=10.0, lr=1e-3, wd=1e-2, steps=1, **kw):
    w = nn.Parameter(torch.tensor([w0]))
    opt = build_optimizer([w], name, lr=lr, weight_decay=wd, decay=decay, **kw)
    for _ in range(steps):
        w.grad = torch.zeros(1)  # zero data gradient: only the decay acts
        opt.step()
    return w.item()


def test_lecture_check_decoupled_vs_coupled_adam():
    assert one_step("adam", "decoupled") == pytest.approx(9.9999, abs=1e-6)
    # Adam divides the L2 gradient by its own magnitude: the first step is ~ lr * sign(g)
    assert one_step("adam", "coupled") == pytest.approx(9.999, abs=1e-6)


def test_decoupled_adam_is_torch_adamw_and_coupled_is_torch_adam():
    torch.manual_seed(0)
    data = torch.randn(20, 3)
    for decay, ref_cls in (("decoupled", torch.optim.AdamW), ("coupled", torch.optim.Adam)):
        a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
        ours = build_optimizer([a], "adam", lr=0.1, weight_decay=0.1, decay=decay)
        ref = ref_cls([b], lr=0.1, weight_decay=0.1)
        for row in data:
            for p, opt in ((a, ours), (b, ref)):
                opt.zero_grad()
                ((p * row).sum() ** 2).backward()
                opt.step()
        assert torch.allclose(a, b)


@pytest.mark.parametrize("name", ["sgd", "momentum", "rmsprop"])
def test_decoupled_decay_for_sgd_family_shrinks_by_lr_times_lambda(name):
    # zero gradient: momentum/RMSprop buffers stay zero, so only w <- w (1 - lr * lambda) acts
    assert one_step(name, "decoupled", lr=0.1, wd=0.5, steps=3) == pytest.approx(10 * 0.95**3, rel=1e-6)


def test_coupled_sgd_adds_lambda_w_to_the_gradient():
    assert one_step("sgd", "coupled", lr=0.1, wd=0.5) == pytest.approx(10 - 0.1 * 0.5 * 10)
    # with momentum, the L2 term is averaged into the velocity like any gradient
    w = one_step("momentum", "coupled", lr=0.1, wd=0.5, steps=2, momentum=0.9)
    v1 = 0.5 * 10
    w1 = 10 - 0.1 * v1
    v2 = 0.9 * v1 + 0.5 * w1
    assert w == pytest.approx(w1 - 0.1 * v2)


def test_modules_decay_weights_but_not_biases():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(1.0)
    opt = build_optimizer(model, "sgd", lr=0.1, weight_decay=0.5, decay="decoupled")
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.allclose(model.weight, torch.full((2, 3), 0.95)) and torch.allclose(model.bias, torch.ones(2))


def test_optimizer_kinds_and_options():
    p = [nn.Parameter(torch.zeros(2, 2))]
    assert isinstance(build_optimizer(p, "momentum", 0.1, nesterov=True), torch.optim.SGD)
    assert build_optimizer(p, "momentum", 0.1, nesterov=True).param_groups[0]["nesterov"]
    assert build_optimizer(p, "rmsprop", 0.1, rmsprop_momentum=0.5).param_groups[0]["momentum"] == 0.5
    assert isinstance(build_optimizer(p, "rmsprop", 0.1, decay="decoupled", weight_decay=0.1), torch.optim.RMSprop)
    assert decoupled(torch.optim.SGD).__name__ == "DecoupledSGD"
    for bad, fragment in ((dict(name="lbfgs"), "name='lbfgs' is not allowed"), (dict(decay="both"), "decay='both'"),
                          (dict(lr=-1), "lr=-1 is not allowed"), (dict(weight_decay=-1.0), "weight_decay=-1.0")):
        with pytest.raises(ValueError, match=fragment) as err:
            build_optimizer(p, **{"name": "sgd", "lr": 0.1, **bad})
        assert not isinstance(err.value, ConfigError)  # a library call names arguments, not config keys
    cfg = OptimConfig(lr=-1.0)  # the config route names the key
    with pytest.raises(ConfigError, match=r"optim.lr = -1.0 is not allowed"):
        from_config(nn.Linear(2, 2), cfg)


def lrs(name, epochs=4, steps_per_epoch=5, **kw):
    p = [nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(p, lr=1.0)
    sched = build_schedule(opt, name, epochs=epochs, steps_per_epoch=steps_per_epoch, **kw)
    seen = []
    for _epoch in range(epochs):
        for _ in range(steps_per_epoch):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            if sched.interval == "step":
                sched.scheduler.step()
        if sched.interval == "epoch":
            sched.scheduler.step()
        elif sched.interval == "metric":
            sched.scheduler.step(1.0)  # a flat validation loss
    return seen


def test_schedules_follow_their_definitions():
    assert lrs("none") == [1.0] * 20
    step = lrs("step", step_size=2, gamma=0.5)
    assert step[:10] == [1.0] * 10 and step[10:] == [0.5] * 10
    cosine = lrs("cosine", min_lr=0.0)
    assert cosine[0] == 1.0 and cosine[10] == pytest.approx(0.5) and cosine[-1] < 0.01
    onecycle = lrs("onecycle", warmup_fraction=0.25)
    peak = max(range(20), key=lambda i: onecycle[i])
    assert onecycle[0] < 0.1 and onecycle[peak] == pytest.approx(1.0) and 3 <= peak <= 6 and onecycle[-1] < 1e-3
    plateau = lrs("plateau", patience=1, factor=0.1)
    assert plateau[0] == 1.0 and plateau[-1] < 1.0  # a loss that never improves lowers the LR
    with pytest.raises(ValueError, match="name=.warm-restarts. is not allowed"):
        lrs("warm-restarts")


@pytest.mark.parametrize("name, options", [("sgd", {}), ("rmsprop", {}), ("adagrad", {}),
                                           ("momentum", {}), ("rmsprop", {"rmsprop_momentum": 0.9}), ("adam", {})])
def test_onecycle_cycles_the_momentum_an_optimizer_uses_and_adds_none(name, options):
    def run(schedule_of):
        model = torch.nn.Linear(3, 2)
        opt = build_optimizer(model, name, lr=0.1, **options)
        sched = schedule_of(opt)
        seen = []
        for _ in range(12):
            g = opt.param_groups[0]
            seen.append((g["lr"], g["betas"][0] if "betas" in g else g.get("momentum")))
            opt.step()
            sched.step()
        return seen

    ours = run(lambda opt: build_schedule(opt, "onecycle", epochs=3, steps_per_epoch=4).scheduler)
    uses_momentum = name in ("momentum", "adam") or options
    # the oracle: torch's OneCycleLR with momentum cycling on where the optimizer has momentum, off where it has none
    ref = run(lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=12, pct_start=0.25, cycle_momentum=bool(uses_momentum)))
    assert ours == ref
    momenta = {m for _, m in ours}
    assert (len(momenta) > 1) == bool(uses_momentum)  # cycled, or left exactly as configured
    if not uses_momentum:
        assert momenta <= {0, None}  # plain SGD / RMSprop / Adagrad stay without momentum
    assert max(lr for lr, _ in ours) == pytest.approx(0.1)


@pytest.mark.parametrize("total", [4, 10])
def test_onecycle_with_a_one_step_warmup_runs_every_step(total):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = build_schedule(opt, "onecycle", epochs=total, steps_per_epoch=1, warmup_fraction=1 / total)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])  # the rate this step uses
        opt.step()
        sched.scheduler.step()
    assert all(math.isfinite(v) for v in lrs) and lrs == sorted(lrs, reverse=True)  # anneals from the peak


def test_adagrad_follows_its_formula_and_decays_weights_both_ways():
    """Adagrad (Duchi et al. 2011): w <- w - lr * g / (sqrt(sum of g^2) + eps), per coordinate; coupled decay adds
    wd * w to g first, decoupled decay shrinks w by lr * wd beside the step."""
    lr, eps, wd = 0.1, 1e-8, 0.01
    grads = [torch.tensor([0.5, -2.0]), torch.tensor([1.5, 0.25]), torch.tensor([-1.0, 1.0])]
    for decay in ("coupled", "decoupled"):
        w = nn.Parameter(torch.tensor([1.0, -3.0]))
        opt = build_optimizer([w], "adagrad", lr=lr, eps=eps, weight_decay=wd, decay=decay)
        ref, acc = torch.tensor([1.0, -3.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
        for g in grads:
            w.grad = g.clone()
            opt.step()
            g64 = g.double() + (wd * ref if decay == "coupled" else 0)
            ref = ref * (1 - lr * wd) if decay == "decoupled" else ref
            acc += g64**2
            ref = ref - lr * g64 / (acc.sqrt() + eps)
        assert torch.allclose(w.detach().double(), ref, atol=1e-6), decay


def test_the_population_trains_exactly_the_optimizers_flagged_for_it():
    from trainwell.optim import OPTIMIZERS, population_optimizers
    from trainwell.train.member_optim import PopulationOptimizer

    assert set(population_optimizers()) == {n for n, spec in OPTIMIZERS.items() if spec.population}
    params = {"w": torch.zeros(2, 3, 4)}
    for name in OPTIMIZERS:
        make = lambda name=name: PopulationOptimizer(params, name, torch.full((2,), 0.1), torch.zeros(2))  # noqa: E731
        if name in population_optimizers():
            make()
        else:
            with pytest.raises(ValueError, match=f"population optimizer {name!r}"):
                make()


@pytest.mark.parametrize("name, decay, cls", [
    ("adam", "coupled", torch.optim.Adam), ("adam", "decoupled", torch.optim.AdamW),
    ("sgd", "coupled", torch.optim.SGD), ("momentum", "decoupled", None),
    ("adagrad", "coupled", torch.optim.Adagrad), ("rmsprop", "coupled", None)])
def test_the_fused_implementation_is_used_where_torch_has_one_and_trains_as_the_loop_one(name, decay, cls):
    """Adam, AdamW, SGD (also with decoupled decay) and Adagrad run fused; RMSprop (no fused form) does not. The
    fused optimizer follows torch's for-loop implementation of the same settings step by step."""
    torch.manual_seed(0)
    make = lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))  # noqa: E731
    model = make()
    ref = make()
    ref.load_state_dict(model.state_dict())
    opt = build_optimizer(model, name, lr=0.05, weight_decay=0.01, decay=decay)
    assert opt.defaults.get("fused") is (name != "rmsprop" or None)
    plain = build_optimizer(ref, name, lr=0.05, weight_decay=0.01, decay=decay)
    for group in plain.param_groups:
        group["fused"], group["foreach"] = None, False
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    for _ in range(5):
        for m, o in ((model, opt), (ref, plain)):
            o.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            o.step()
    for (k, a), b in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k
    if cls is not None:
        assert isinstance(opt, cls)


def test_no_fused_form_for_integer_or_sparse_parameters():
    from trainwell.optim import _fusable

    assert not _fusable(torch.optim.Adam, [{"params": [torch.zeros(3, dtype=torch.int64)]}])
    assert not _fusable(torch.optim.Adam, [{"params": [torch.zeros(3).to_sparse()]}])
    assert _fusable(torch.optim.Adam, [{"params": [torch.zeros(3, dtype=torch.bfloat16)]}])
    assert not _fusable(torch.optim.RMSprop, [{"params": [torch.zeros(3)]}])


def test_momentum_given_to_plain_sgd_is_refused_with_the_name_that_has_it():
    model = torch.nn.Linear(3, 2)
    for given, words in (({"momentum": 0.9}, "momentum=0.9 is not allowed with name='sgd'"),
                         ({"nesterov": True}, "nesterov=True is not allowed with name='sgd'")):
        with pytest.raises(ValueError, match=words + r".*use name='momentum'"):
            build_optimizer(model, "sgd", lr=0.1, **given)
    assert build_optimizer(model, "sgd", lr=0.1, momentum=0).defaults["momentum"] == 0
    heavy = build_optimizer(model, "momentum", lr=0.1)  # the oracle: torch's SGD with momentum 0.9
    assert type(heavy).__name__ == "SGD" and heavy.defaults["momentum"] == 0.9 and not heavy.defaults["nesterov"]
    assert build_optimizer(model, "momentum", lr=0.1, momentum=0.5, nesterov=True).defaults["nesterov"]
