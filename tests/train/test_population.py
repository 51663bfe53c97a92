import json

import pytest
import torch
from torch import nn

from tests.helpers import sweep_members_equal_fits
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.pipeline import fit
from trainwell.rundir import read_jsonl
from trainwell.sweep import combinations, parse_grid, population_blocker, split_values, sweep
from trainwell.train.member_optim import PopulationOptimizer
from trainwell.train.population import PopulationLearner, embed_state

BASE = ["data.name=spirals", "data.options={n_per_class = 60}", "model.kind=mlp", "model.hidden=[16,16]",
        "train.epochs=3", "train.batch_size=32", "report.enabled=false", "doctor.preflight=false",
        "doctor.monitor_every=0"]


@pytest.mark.parametrize("extra", [
    ["optim.schedule=onecycle"],
    pytest.param(["optim.name=momentum", "optim.nesterov=true", "optim.schedule=step", "optim.step_size=1"],
                 marks=pytest.mark.slow),
    pytest.param(["optim.name=sgd", "optim.lr=0.1", "optim.schedule=cosine"], marks=pytest.mark.slow),
    ["optim.name=rmsprop", "optim.rmsprop_momentum=0.9", "optim.weight_decay=0.01"],
    pytest.param(["optim.name=rmsprop", "optim.schedule=onecycle", "optim.weight_decay=0.01",
                  "optim.decay=decoupled"], marks=pytest.mark.slow),
    pytest.param(["optim.weight_decay=0.01", "optim.decay=decoupled"], marks=pytest.mark.slow),
    pytest.param(["optim.weight_decay=0.01", "optim.decay=coupled", "model.activation=tanh"], marks=pytest.mark.slow),
])
@pytest.mark.slow  # 0.3-1.2 s each
def test_population_matches_separate_fits_across_seeds_lrs_and_widths(workdir, extra):
    cfg = load_config(None, BASE + extra)
    grid = parse_grid(["optim.lr=0.01,0.003", "model.hidden=[4,4],[16,16]"])
    res = sweep(cfg, grid, seeds=2, out="sw")
    assert res.mode == "population" and len(res.rows) == 8
    lines = read_jsonl(workdir / "sw" / "metrics.jsonl")
    member = workdir / "sw" / "member-0"  # every member gets a run directory like fit's
    summary = json.loads((member / "summary.json").read_text())
    assert summary["final"]["test_acc"] == pytest.approx(res.rows[0]["test_acc"])
    from trainwell.pipeline import prepare

    narrow = prepare(combinations(cfg, grid, 2)[0][1]).model
    narrow.load_state_dict(torch.load(member / "checkpoints" / "last.pt", weights_only=True)["model"])
    for m, (_, member_cfg) in enumerate(combinations(cfg, grid, 2)):
        ref = read_jsonl(fit(member_cfg, out=f"ref{m}", quiet=True).run_dir / "metrics.jsonl")
        mine = [r for r in lines if r["member"] == m]
        assert len(mine) == len(ref) == 3
        for a, b in zip(ref, mine, strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
            assert a["lr"] == pytest.approx(b["lr"], rel=1e-6)


def test_population_optimizer_matches_torch_per_member():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 5)
    grads = [torch.randn(3, 4, 5) for _ in range(4)]
    for name, cls, kw, own in (("adam", torch.optim.Adam, {}, {}),
                               ("momentum", torch.optim.SGD, {"momentum": 0.9}, {}),
                               ("sgd", torch.optim.SGD, {}, {}),
                               ("rmsprop", torch.optim.RMSprop, {"alpha": 0.9}, {"alpha": 0.9}),
                               ("rmsprop", torch.optim.RMSprop, {"momentum": 0.8},
                                {"rmsprop_momentum": 0.8})):
        lrs = torch.tensor([0.1, 0.01, 0.001])
        p = w.clone().requires_grad_(True)
        opt = PopulationOptimizer({"w": p}, name, lrs, torch.full((3,), 0.05), **own)
        refs = [w[m].clone().requires_grad_(True) for m in range(3)]
        ref_opts = [cls([refs[m]], lr=float(lrs[m]), weight_decay=0.05, **kw) for m in range(3)]
        for g in grads:
            p.grad = g.clone()
            opt.step()
            for m in range(3):
                refs[m].grad = g[m].clone()
                ref_opts[m].step()
        for m in range(3):
            assert torch.allclose(p[m], refs[m], atol=1e-6), (name, kw)


@pytest.mark.parametrize("name, own", [("sgd", {}), ("momentum", {}), ("momentum", {"nesterov": True}),
                                       ("rmsprop", {}), ("rmsprop", {"rmsprop_momentum": 0.8}),
                                       ("sgd", {"decay": "decoupled"}), ("rmsprop", {"decay": "decoupled"}),
                                       ("adam", {}), ("adam", {"decay": "decoupled"})])
def test_the_in_place_update_is_bit_for_bit_the_frozen_member_path(name, own):
    """A member's trajectory does not depend on another one stopping: with every member training the update runs
    in place (RMSprop) or through one fused call; once a member has stopped, the others take the masked path or
    a fused call on their run. Both compute the same float operations: the training members end at identical
    bits."""
    torch.manual_seed(2)
    w = torch.randn(3, 4, 5)
    grads = [torch.randn(3, 4, 5) for _ in range(4)]
    lrs, wds = torch.tensor([0.1, 0.01, 0.001]), torch.tensor([0.05, 0.0, 0.01])
    fast, masked = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    opts = [PopulationOptimizer({"w": t}, name, lrs, wds, **own) for t in (fast, masked)]
    opts[1].freeze(2)
    for g in grads:
        for t, opt in zip((fast, masked), opts, strict=True):
            t.grad = g.clone()
            opt.step()
    assert torch.equal(fast[:2], masked[:2]) and torch.equal(masked[2], w[2])
    for k, v in opts[0].state["w"].items():
        assert torch.equal(v[:2], opts[1].state["w"][k][:2]), k


@pytest.mark.parametrize("name, cls, kw, own", [
    ("adam", torch.optim.AdamW, {"weight_decay": 0.05}, {"decay": "decoupled"}),
    ("momentum", torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.05}, {"nesterov": True}),
    ("rmsprop", torch.optim.RMSprop, {"momentum": 0.8, "weight_decay": 0.05}, {"rmsprop_momentum": 0.8}),
    ("sgd", torch.optim.SGD, {"weight_decay": 0.05}, {}),
])
def test_in_place_and_frozen_updates_match_torch_and_a_frozen_member_keeps_its_state(name, cls, kw, own):
    """Every member trains for two steps (the in-place update), then member 1 stops (the masked update): the
    others keep following torch, member 1's parameters and optimizer state stay as they were."""
    torch.manual_seed(1)
    w = torch.randn(3, 4, 5)
    grads = [torch.randn(3, 4, 5) for _ in range(5)]
    lrs = torch.tensor([0.1, 0.01, 0.001])
    p = w.clone().requires_grad_(True)
    opt = PopulationOptimizer({"w": p}, name, lrs, torch.full((3,), 0.05), **own)
    refs = [w[m].clone().requires_grad_(True) for m in range(3)]
    ref_opts = [cls([refs[m]], lr=float(lrs[m]), **kw) for m in range(3)]
    for i, g in enumerate(grads):
        if i == 2:
            opt.freeze(1)
            held = p[1].detach().clone(), {k: v[1].clone() for k, v in opt.state["w"].items()}
        p.grad = g.clone()
        opt.step()
        for m in range(3):
            if m == 1 and i >= 2:
                continue
            refs[m].grad = g[m].clone()
            ref_opts[m].step()
    for m in (0, 2):
        assert torch.allclose(p[m], refs[m], atol=1e-6), m
    assert torch.equal(p[1], held[0]) and torch.allclose(p[1], refs[1], atol=1e-6)
    assert all(torch.equal(opt.state["w"][k][1], v) for k, v in held[1].items())


@pytest.mark.parametrize("name, decay, cls, kw", [
    ("adam", "coupled", torch.optim.Adam, {}),
    ("adam", "decoupled", torch.optim.AdamW, {}),
    ("momentum", "coupled", torch.optim.SGD, {"momentum": 0.9}),
    ("sgd", "coupled", torch.optim.SGD, {}),
])
def test_fused_runs_follow_torch_per_member_and_skip_frozen_members(name, decay, cls, kw, monkeypatch):
    """Training members update through torch's fused Adam or SGD, once per run of them (at their one rate, or at
    rate 1 and then each member's own): every member follows its own torch optimizer (per-member weight decay on
    weights, not biases), and a member that stopped keeps its parameters and state while the runs around it go
    on."""
    calls = []
    kernel = "_fused_adam_" if name == "adam" else "_fused_sgd_"
    fused = getattr(torch, kernel)
    monkeypatch.setattr(torch, kernel, lambda *a, **k: calls.append(k["lr"]) or fused(*a, **k))
    torch.manual_seed(3)
    m_count = 8
    w, b = torch.randn(m_count, 4, 5), torch.randn(m_count, 4)
    steps = [(torch.randn(m_count, 4, 5), torch.randn(m_count, 4)) for _ in range(5)]
    lrs = torch.tensor([0.01] * 4 + [0.003] * 4)
    wds = torch.tensor([0.0, 0.05, 0.1, 0.0, 0.02, 0.0, 0.05, 0.1])
    pw, pb = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    opt = PopulationOptimizer({"w": pw, "b": pb}, name, lrs, wds, decay=decay)
    refs = [(w[m].clone().requires_grad_(True), b[m].clone().requires_grad_(True)) for m in range(m_count)]
    ref_opts = [cls([{"params": [refs[m][0]], "weight_decay": float(wds[m])},
                     {"params": [refs[m][1]], "weight_decay": 0.0}], lr=float(lrs[m]), foreach=False, **kw)
                for m in range(m_count)]
    for i, (gw, gb) in enumerate(steps):
        if i == 2:
            opt.freeze(1)
            held = [t[1].detach().clone() for t in (pw, pb)] + [v[1].clone() for st in opt.state.values()
                                                                  for v in st.values()]
        pw.grad, pb.grad = gw.clone(), gb.clone()
        opt.step()
        for m in range(m_count):
            if m == 1 and i >= 2:
                continue
            refs[m][0].grad, refs[m][1].grad = gw[m].clone(), gb[m].clone()
            ref_opts[m].step()
    # one run of all 8 at their own rates (the kernel at rate 1), then [0] at one rate and [2, 8) at their own
    assert calls == pytest.approx([1.0, 1.0] + [0.01, 1.0] * 3)
    for m in range(m_count):
        assert torch.allclose(pw[m], refs[m][0], atol=1e-6) and torch.allclose(pb[m], refs[m][1], atol=1e-6), m
    now = [t[1].detach() for t in (pw, pb)] + [v[1] for st in opt.state.values() for v in st.values()]
    assert all(torch.equal(a, c) for a, c in zip(held, now, strict=True))


@pytest.mark.parametrize("name, cls, kw, own", [
    ("adam", torch.optim.Adam, {}, {}),
    ("momentum", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}, {"nesterov": True}),
    ("sgd", torch.optim.SGD, {}, {}),
])
def test_more_runs_than_half_the_members_take_the_per_member_path(name, cls, kw, own, monkeypatch):
    """A run per member would cost more kernel calls than the passes they save: when stopped members split the
    others into runs of one, the per-member tensors are used, and still follow torch."""
    for kernel in ("_fused_adam_", "_fused_sgd_"):
        monkeypatch.setattr(torch, kernel, lambda *a, **k: pytest.fail("a fused kernel was called"))
    torch.manual_seed(4)
    w = torch.randn(5, 3, 2)
    p = w.clone().requires_grad_(True)
    lrs = torch.tensor([0.1, 0.05, 0.02, 0.01, 0.005])
    opt = PopulationOptimizer({"w": p}, name, lrs, torch.full((5,), 0.01), **own)
    opt.freeze(1)
    opt.freeze(3)  # runs [0], [2], [4]
    refs = {m: w[m].clone().requires_grad_(True) for m in (0, 2, 4)}
    ref_opts = {m: cls([r], lr=float(lrs[m]), weight_decay=0.01, foreach=False, **kw) for m, r in refs.items()}
    for _ in range(3):
        g = torch.randn(5, 3, 2)
        p.grad = g.clone()
        opt.step()
        for m, r in refs.items():
            r.grad = g[m].clone()
            ref_opts[m].step()
    for m, r in refs.items():
        assert torch.allclose(p[m], r, atol=1e-6), m
    assert torch.equal(p[1], w[1]) and torch.equal(p[3], w[3])


def test_embed_state_and_zero_units_stay_zero():
    narrow = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).state_dict()
    wide = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 2)).state_dict()
    e = embed_state(narrow, wide)
    assert torch.equal(e["0.weight"][:3], narrow["0.weight"]) and torch.all(e["0.weight"][3:] == 0)
    assert torch.all(e["2.weight"][:, 3:] == 0)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_per_member_early_stopping_and_label_noise(workdir):
    cfg = load_config(None, BASE + ["train.epochs=40", "optim.lr=0.05", "stop.criteria=['early_stopping']",
                                    "stop.patience=2", "optim.schedule=none"])
    res = sweep(cfg, parse_grid(["data.label_noise=0.0,0.5"]), seeds=2, out="es")
    assert res.mode == "population"
    stops = [r["stop_epoch"] for r in res.rows]
    assert all(s is not None for s in stops) and len(set(stops)) > 1  # members stop on their own
    clean, noisy = res.rows[0]["train_acc"], res.rows[2]["train_acc"]
    assert noisy < clean  # half the training labels resampled


def test_blockers_fall_back_to_sequential(workdir):
    assert population_blocker(load_config(None, BASE + ["model.norm=batch"]), {}) is not None
    assert population_blocker(load_config(None, BASE), {"train.batch_size": [8]}) is not None
    assert population_blocker(load_config(None, BASE), {"optim.lr": [0.1]}) is None
    cfg = load_config(None, BASE + ["model.dropout_keep=0.9"])
    res = sweep(cfg, parse_grid(["optim.lr=0.01,0.02"]), out="seq")
    assert res.mode.startswith("sequential") and len(res.rows) == 2
    assert (workdir / "seq" / "member-0" / "summary.json").exists()


def test_grid_parsing():
    assert split_values("[1,2],[3]") == ["[1,2]", "[3]"]
    assert parse_grid(["optim.lr=0.1,0.01", "model.hidden=[8],[16, 16]"]) == {
        "optim.lr": [0.1, 0.01], "model.hidden": [[8], [16, 16]]}
    from trainwell.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr': did you mean 'optim.lr'\? allowed keys "
                                          r"in optim are name, lr, "):
        combinations(load_config(None, BASE), {"optim.lrr": [1]}, 1)
    with pytest.raises(ConfigError, match="optim.lr"):
        combinations(load_config(None, BASE), {"optim.lr": [-1]}, 1)


def test_sweep_command(workdir, capsys):
    args = ["sweep", *[a for s in BASE for a in ("--set", s)], "--grid", "optim.lr=0.01,0.003", "--seeds", "2",
            "--out", "cli"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 members, population" in out
    summary = json.loads((workdir / "cli" / "summary.json").read_text())
    assert summary["members"] == 4 and len(summary["results"]) == 4
    assert main(["sweep", "--grid", "optim.lr"]) == 2


def test_population_refuses_batchnorm():
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="BatchNorm"):
        PopulationLearner(model, [model.state_dict()], optimizer="adam", lrs=[0.1], weight_decays=[0.0])


class _Recurrent(nn.Module):
    def __init__(self, cell=nn.LSTM):
        super().__init__()
        self.rnn, self.fc = cell(4, 8, batch_first=True), nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_population_refuses_recurrent_layers_by_name(cell):
    model = _Recurrent(cell)
    with pytest.raises(ValueError, match=f"cannot vmap {cell.__name__} .*one after another"):
        PopulationLearner(model, [model.state_dict()] * 2, optimizer="adam", lrs=[0.1] * 2, weight_decays=[0.0] * 2)


def test_an_operation_vmap_cannot_batch_is_named_in_one_line():
    """Any other operation without a batching rule: the step's error says what, and what to do instead."""

    class Unbatchable(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x) + torch.nonzero(x).sum()  # data-dependent shape: no batching rule

    model = Unbatchable()
    learner = PopulationLearner(model, [model.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2,
                                weight_decays=[0.0] * 2)
    with pytest.raises(ValueError, match=r"cannot vmap this model \(.*\): train the members one after another"):
        learner.train_step(torch.randn(8, 4), torch.randint(0, 3, (8,)), torch.arange(8).view(2, 4))


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_population_sweep_resolves_lr_find_per_member_as_a_fit_does(workdir):
    args = ["sweep", *[a for s in BASE + ["train.epochs=1"] for a in ("--set", s)], "--set", "optim.lr=find",
            "--grid", "optim.weight_decay=0,1e-4", "--seeds", "2", "--out", "find", "--json"]
    assert main(args) == 0
    summary = json.loads((workdir / "find" / "summary.json").read_text())
    assert summary["mode"] == "population" and summary["members"] == 4
    member = json.loads((workdir / "find" / "member-3" / "summary.json").read_text())
    cfg = load_config(workdir / "find" / "member-3" / "config.toml", [])
    assert isinstance(cfg.optim.lr, float) and member["lr_find"]["suggestion"] == cfg.optim.lr
    from trainwell.lr_find import resolve_lr

    expected, _ = resolve_lr(load_config(None, BASE + ["train.epochs=1", "optim.lr=find", "train.seed=1",
                                                       "optim.weight_decay=1e-4"]))
    assert cfg.optim.lr == expected.optim.lr  # the range test a fit of this member's config runs


def _files(folder):
    """The run's files (a claimed folder's bookkeeping, .lock and .trainwell-*, is the sweep folder's)."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


@pytest.mark.slow
def test_a_population_members_folder_has_the_files_of_a_fit(workdir):
    from trainwell.pipeline import fit_population

    cfg = load_config(None, BASE + ["train.epochs=2", "report.enabled=true"])
    single = fit(cfg, out="fit", quiet=True).run_dir
    member = fit_population([cfg, cfg], out="pop").members[0].run_dir
    assert _files(single) - _files(member) == set()
    for name in ("metrics.csv", "model.json", "steps.jsonl", "checkpoints/best.pt"):
        assert (member / name).stat().st_size > 0, name
    steps = [json.loads(line) for line in (member / "steps.jsonl").read_text().splitlines()]
    assert [s["epoch"] for s in steps] == [0, 1] and all(isinstance(v, float) for s in steps for v in s["losses"])
    best = torch.load(member / "checkpoints" / "best.pt", weights_only=True)
    assert {k: v.shape for k, v in best["model"].items()} == \
        {k: v.shape for k, v in torch.load(single / "checkpoints" / "best.pt", weights_only=True)["model"].items()}


@pytest.mark.slow
def test_a_population_stops_gracefully_on_a_signal_and_resumes(workdir):
    import os
    import signal

    from trainwell.pipeline import fit_population
    from trainwell.rundir import load_checkpoint
    from trainwell.train.callbacks import Callback
    from trainwell.train.interrupt import Interrupted

    class SignalAtEpoch1(Callback):
        def on_epoch_start(self, state):
            if state.epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    cfg = load_config(None, BASE + ["train.epochs=3"])
    with pytest.raises(Interrupted, match="sweep --resume"):
        fit_population([cfg, cfg], out="pop", callbacks=[SignalAtEpoch1()])
    ckpt = load_checkpoint(workdir / "pop" / "checkpoints" / "last.pt")
    assert ckpt["stop"] == "interrupted by SIGINT" and ckpt["epoch"] == 1
    res = fit_population([cfg, cfg], out="pop", resume=True)
    assert [r.summary["epochs"] for r in res.members] == [3, 3]
    assert all(r.summary["stop_reason"] == "completed 3 epochs" for r in res.members)


def test_an_older_flat_population_checkpoint_is_refused_in_one_line_and_left_as_it_is():
    """A population checkpoint whose optimizer state is keyed by one flat tensor (older trainwell) names what it
    holds and what this version expects, instead of a KeyError at the first step after resuming."""
    from trainwell.errors import TrainwellError

    params = {"0.weight": torch.zeros(2, 3, 4, requires_grad=True), "0.bias": torch.zeros(2, 3, requires_grad=True)}
    opt = PopulationOptimizer(params, "adam", torch.full((2,), 0.1), torch.zeros(2))
    saved = {"state": {"flat": {"exp_avg": torch.ones(2, 15)}}, "t": torch.ones(2, dtype=torch.float64),
             "active": torch.ones(2, dtype=torch.bool)}
    before = {k: dict(v) for k, v in saved["state"].items()}
    with pytest.raises(TrainwellError, match=r"under \['flat'\], not the parameters \['0.bias', '0.weight'\]"):
        opt.load_state_dict(saved)
    assert saved["state"].keys() == before.keys() and opt.state == {"0.weight": {}, "0.bias": {}}
    opt.load_state_dict(opt.state_dict())  # its own state still loads


@pytest.mark.slow  # 0.60 s each on a 2-core CPU (RESULTS §51)
def test_a_sweep_over_init_schemes_trains_as_one_population_equal_to_separate_fits(workdir):
    cfg = load_config(None, BASE + ["optim.name=momentum", "optim.lr=0.05"])
    grid = parse_grid(["init.scheme=he_normal,xavier_normal,small_normal", "init.bias=0.0,0.01"])
    assert population_blocker(cfg, grid, 1) is None
    lines = sweep_members_equal_fits(workdir, cfg, grid)
    # the members really start apart: small_normal's first-epoch loss is not He's
    first = [r["train_loss"] for r in lines if r["epoch"] == 0]
    assert len({round(v, 4) for v in first}) > 2


@pytest.mark.parametrize("kind", ["mlp", "vmapped"])
def test_population_evaluate_equals_each_member_evaluated_alone_with_shared_or_own_labels(kind):
    """The learner's batched evaluation (a population's per-epoch validation and its members' final metrics)
    against ``trainwell.train.evaluate`` of each member's own model: shared labels (N,) and per-member labels
    (M, N), over several evaluation batches (the loss is a mean over examples, not over members)."""
    from trainwell.train import evaluate

    torch.manual_seed(0)
    make = (lambda: nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))) if kind == "mlp" else \
        (lambda: nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.ReLU(), nn.Linear(7, 3)))
    models = [make() for _ in range(4)]
    learner = PopulationLearner(models[0], [m.state_dict() for m in models], optimizer="sgd", lrs=[0.1] * 4,
                                weight_decays=[0.0] * 4)
    x = torch.randn(50, 5)
    shared = torch.randint(0, 3, (50,))
    own = torch.stack([torch.randint(0, 3, (50,)) for _ in models])
    for y in (shared, own):
        losses, accs = learner.evaluate(x, y, batch_size=16)
        for m, model in enumerate(models):
            ref = evaluate(model, x, y if y.dim() == 1 else y[m])
            assert losses[m] == pytest.approx(ref["loss"], rel=1e-5)
            assert accs[m] == pytest.approx(ref["acc"], abs=1e-12)
