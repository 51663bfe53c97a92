import json

import pytest
import torch
from torch import nn

from trainwell.config import load_config
from trainwell.pipeline import config_of_run, fit
from trainwell.rundir import load_checkpoint, read_jsonl
from trainwell.train import Callback, Trainer, evaluate
from trainwell.train.callbacks import Checkpoint, best_epoch
from trainwell.train.loggers import CSVLogger
from trainwell.train.trainer import loss_function

SMALL = ["data.name=spirals", "data.options={n_per_class = 60}", "model.kind=mlp", "model.hidden=[16]",
         "train.epochs=6", "train.batch_size=32", "optim.lr=0.01", "report.enabled=false"]


def strip_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def test_trainer_learns_xor():
    torch.manual_seed(0)
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    t = Trainer(model, torch.optim.Adam(model.parameters(), 0.05), epochs=300, batch_size=4, device="cpu")
    state = t.fit((x, y))
    assert evaluate(model, x, y)["acc"] == 1.0
    assert state.history[-1]["train_loss"] < 0.05 < state.history[0]["train_loss"]


def test_epoch_metrics_equal_what_the_batches_saw():
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the model is fixed, so train metrics = evaluate
    state = Trainer(model, opt, epochs=1, batch_size=3, device="cpu").fit((x, y), (x, y))
    m = evaluate(model, x, y)
    assert state.history[0]["train_loss"] == pytest.approx(m["loss"], rel=1e-5)
    assert state.history[0]["train_acc"] == pytest.approx(m["acc"])
    assert state.history[0]["val_loss"] == pytest.approx(m["loss"], rel=1e-5)
    assert state.step == 4  # ceil(10 / 3) batches, the last one partial


class _Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, s):
        self.calls.append("fit_start")

    def on_epoch_start(self, s):
        self.calls.append(f"epoch_start {s.epoch}")

    def on_batch_end(self, s):
        self.calls.append("batch")

    def on_epoch_end(self, s):
        self.calls.append(f"epoch_end {s.epoch}")
        if s.epoch == 1:
            s.stop = "asked to stop"

    def on_fit_end(self, s):
        self.calls.append("fit_end")


def test_callbacks_are_called_in_order_and_can_stop_training():
    rec = _Recorder()
    model = nn.Linear(2, 2)
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=5, batch_size=2, callbacks=[rec],
                device="cpu")
    state = t.fit((torch.randn(4, 2), torch.tensor([0, 1, 0, 1])))
    assert rec.calls == ["fit_start", "epoch_start 0", "batch", "batch", "epoch_end 0", "epoch_start 1", "batch",
                         "batch", "epoch_end 1", "fit_end"]
    assert state.stop == "asked to stop" and len(state.history) == 2


def test_non_finite_loss_stops_with_a_reason():
    model = nn.Linear(2, 2)
    t = Trainer(model, torch.optim.SGD(model.parameters(), 1e30), epochs=20, batch_size=4, device="cpu")
    x = torch.randn(8, 2) * 1e6
    state = t.fit((x, torch.tensor([0, 1] * 4)))
    assert state.stop.startswith("non-finite training loss") and len(state.history) < 20


def test_losses():
    out, y = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    assert loss_function("hinge")(out, y).item() == pytest.approx((0 + max(0, 1 - 2 + -1)) / 3)
    assert loss_function("mse")(out, y).item() == pytest.approx(((2 - 1) ** 2 + 0 + 1) / 3)
    with pytest.raises(ValueError, match="unknown loss"):
        loss_function("l7")


@pytest.mark.slow  # 0.3-1.2 s each
def test_same_config_and_seed_give_identical_metrics(workdir):
    cfg = load_config(None, SMALL)
    a = fit(cfg, out="a", quiet=True)
    b = fit(cfg, out="b", quiet=True)
    assert strip_time(read_jsonl(a.run_dir / "metrics.jsonl")) == strip_time(read_jsonl(b.run_dir / "metrics.jsonl"))
    c = fit(load_config(None, SMALL + ["train.seed=1"]), out="c", quiet=True)
    assert strip_time(read_jsonl(c.run_dir / "metrics.jsonl")) != strip_time(read_jsonl(a.run_dir / "metrics.jsonl"))


class _Crash(Callback):
    def on_epoch_end(self, state):
        if state.epoch == 2:
            raise KeyboardInterrupt  # after the checkpoint callback saved epoch 2


@pytest.mark.parametrize("extra", [[], pytest.param(["optim.name=momentum", "optim.schedule=step", "optim.step_size=2"],
                                                     marks=pytest.mark.slow)])
@pytest.mark.slow  # 0.3-1.2 s each
def test_resume_continues_exactly_like_an_uninterrupted_run(workdir, extra):
    cfg = load_config(None, SMALL + extra + ["train.checkpoint_every=1", "doctor.monitor_every=4"])
    full = fit(cfg, out="full", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, out="crashed", quiet=True, callbacks=[_Crash()])
    assert len(read_jsonl(workdir / "crashed" / "metrics.jsonl")) == 3
    resumed = fit(config_of_run("crashed"), resume="crashed", quiet=True)
    assert strip_time(read_jsonl(resumed.run_dir / "metrics.jsonl")) == strip_time(
        read_jsonl(full.run_dir / "metrics.jsonl"))
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed.summary["final"] == full.summary["final"]
    monitors = [read_jsonl(r.run_dir / "monitors.jsonl") for r in (full, resumed)]
    assert monitors[0] and monitors[0] == monitors[1]  # the doctor's monitor saw the same steps
    assert [d["value"] for d in full.summary["doctor"]] == [d["value"] for d in resumed.summary["doctor"]]


@pytest.mark.slow  # 0.3-1.2 s each
def test_resume_drops_metric_lines_newer_than_the_checkpoint(workdir):
    cfg = load_config(None, SMALL + ["train.checkpoint_every=2"])
    full = fit(cfg, out="full", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, out="r", quiet=True, callbacks=[_Crash()])
    assert load_checkpoint(workdir / "r" / "checkpoints" / "last.pt")["epoch"] == 1
    assert len(read_jsonl(workdir / "r" / "metrics.jsonl")) == 3  # epoch 2 was logged but not checkpointed
    fit(config_of_run("r"), resume="r", quiet=True)
    assert strip_time(read_jsonl(workdir / "r" / "metrics.jsonl")) == strip_time(
        read_jsonl(full.run_dir / "metrics.jsonl"))


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_checkpoints_hold_config_and_load_with_weights_only(workdir):
    from trainwell.train.callbacks import Callback

    class Snapshots(Callback):  # each epoch's weights, as best.pt must hold them at the best epoch
        def __init__(self):
            self.weights = []

        def on_epoch_end(self, state):
            self.weights.append({k: v.detach().clone() for k, v in state.model.state_dict().items()})

    cfg = load_config(None, SMALL)
    snaps = Snapshots()
    res = fit(cfg, out="run", quiet=True, callbacks=[snaps])
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(res.run_dir / "checkpoints" / name, weights_only=True)
        assert ckpt["config"] == cfg.to_dict()
        assert set(ckpt["model"]) == set(res.model.state_dict())
    summary = json.loads((res.run_dir / "summary.json").read_text())
    best = load_checkpoint(res.run_dir / "checkpoints" / "best.pt")
    assert best["epoch"] == summary["best_epoch"]
    history = read_jsonl(res.run_dir / "metrics.jsonl")
    assert summary["best_epoch"] == min(history, key=lambda r: r["val_loss"])["epoch"]
    assert best["step"] == history[best["epoch"]]["step"]
    for k, v in snaps.weights[best["epoch"]].items():
        assert torch.equal(best["model"][k], v), k


def test_stopping_criteria_are_accepted_as_callbacks():
    from trainwell.train.stopping import EarlyStopping

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 2, generator=g), torch.randint(0, 2, (64,), generator=g)
    model = torch.nn.Linear(2, 2)
    criterion = EarlyStopping(patience=2, min_delta=10.0)  # nothing improves by 10: stops after 2 more epochs
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=30, batch_size=16,
                callbacks=[criterion])
    state = t.fit((x, y), (x, y))
    assert len(state.history) == 3 and state.stop.startswith("early stopping")
    stop, _ = criterion.evaluate([r["val_loss"] for r in state.history])  # the pure criterion agrees
    assert stop and not criterion.evaluate([r["val_loss"] for r in state.history[:2]])[0]
    with pytest.raises(TypeError, match="neither a Callback nor a stopping criterion"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_size=16, callbacks=[object()])


def _two_stoppers():
    from trainwell.train.stopping import EarlyStopping

    return [EarlyStopping(patience=50), EarlyStopping(monitor="val_acc", mode="max", patience=50)]


def test_two_callbacks_of_one_class_keep_their_own_states_through_a_checkpoint():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    model = nn.Linear(4, 2)
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2, batch_size=16, callbacks=_two_stoppers())
    t.fit((x, y), (x[:16], y[:16]))
    by_loss, by_acc = t.callbacks
    by_loss.best_epoch, by_acc.best_epoch = 0, 1  # distinct states, as two monitors reach in a real run
    ckpt = {**t.checkpoint_state(copy=True), **t.callback_states()}
    assert sorted(ckpt["callbacks"]) == ["Stopper", "Stopper#1"]
    fresh = nn.Linear(4, 2)
    again = Trainer(fresh, torch.optim.SGD(fresh.parameters(), 0.1), epochs=2, batch_size=16,
                    callbacks=_two_stoppers())
    again.load_checkpoint_state(ckpt)
    assert [cb.best_epoch for cb in again.callbacks] == [0, 1]


def test_a_checkpoint_with_states_keyed_by_class_name_still_loads():
    model = nn.Linear(4, 2)
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2, batch_size=16, callbacks=_two_stoppers())
    ckpt = t.checkpoint_state(copy=True)
    old = dict(t.callbacks[0].state_dict(), best_epoch=3)
    t.load_checkpoint_state({**ckpt, "callbacks": {"Stopper": old}})  # one state per class, as saved before
    assert [cb.best_epoch for cb in t.callbacks] == [3, 3]


def test_a_checkpoint_of_a_run_a_criterion_ended_stays_ended_when_loaded(tmp_path):
    """Checkpoint's last.pt holds the stop reason; a loaded run trains no further, as ``fit --resume`` keeps it."""
    from trainwell.train.stopping import EarlyStopping

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] > 0).long()

    def trainer(folder):
        torch.manual_seed(0)
        model = nn.Linear(5, 2)
        return Trainer(model, torch.optim.SGD(model.parameters(), lr=2.0), epochs=40, batch_size=50,
                       callbacks=[EarlyStopping(patience=1, min_delta=10.0), Checkpoint(tmp_path / folder)])

    first = trainer("run").fit((x, y), (x, y))
    assert first.stop.startswith("early stopping") and len(first.history) == 2
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    again = trainer("again")
    again.load_checkpoint_state(ckpt)
    weights = {k: v.clone() for k, v in again.model.state_dict().items()}
    state = again.fit((x, y), (x, y))
    assert len(state.history) == 2 and state.stop == first.stop and state.step == first.step
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in weights.items())  # no step taken
    assert len(again.fit((x, y), (x, y)).history) > 2  # a further call trains on, as after any stopped fit
    for stop in (None, "interrupted by SIGTERM"):  # a run not ended by a criterion goes on
        go_on = trainer(f"go_on_{stop is None}")
        go_on.load_checkpoint_state({**ckpt, "stop": stop})
        assert len(go_on.fit((x, y), (x, y)).history) > 2


def test_a_population_checkpoint_restores_the_run_and_member_stops(tmp_path):
    from trainwell.train.population import PopulationLearner
    from trainwell.train.stopping import EarlyStopping

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] > 0).long()

    def trainer(folder):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 2))
        learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1, 0.1],
                                    weight_decays=[0.0, 0.0])
        return Trainer(learner, epochs=20, batch_size=32, seed=[0, 1],
                       callbacks=[EarlyStopping(patience=2, min_delta=10.0), Checkpoint(tmp_path / folder)],
                       member_callbacks=[[EarlyStopping(patience=1, min_delta=10.0)], []])

    first = trainer("pop").fit((x, y), (x, y))
    members = [s.stop for s in first.trainer.members]
    assert first.stop.startswith("early stopping") and len(first.history) == 3
    assert members[0].startswith("early stopping") and members[1] is None  # member 1 trains on, the run stopped
    again = trainer("again")
    again.load_checkpoint_state(torch.load(tmp_path / "pop" / "checkpoints" / "last.pt", weights_only=False))
    assert [s.stop for s in again.members] == members
    state = again.fit((x, y), (x, y))
    assert state.stop == first.stop and len(state.history) == 3 and [len(s.history) for s in again.members] == [2, 3]


def _host_reads(run) -> int:
    """How many times ``run()`` reads a tensor's value on the host (``item``, ``float``, ``tolist``...: on CUDA each
    waits for the device), not counting torch's optimizers' step counters (CPU tensors, no wait)."""
    import traceback

    from torch.utils._python_dispatch import TorchDispatchMode

    class Reads(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._local_scalar_dense.default and not any(
                    "torch/optim/" in f.filename.replace("\\", "/") for f in traceback.extract_stack(limit=12)):
                Reads.n += 1
            return func(*args, **(kwargs or {}))

    with Reads():
        run()
    return Reads.n


@pytest.mark.parametrize("user_loop", [True, False])
def test_metrics_stay_on_the_device_and_are_read_once_per_epoch_not_per_step(tmp_path, user_loop):
    """The loop's host reads do not grow with the steps per epoch (4x more batches, the same reads): on a GPU the
    loop never waits for the device inside an epoch. A user's model, optimizer and DataLoader, and the CLI's own
    fit with its callbacks (progress, step losses, logs, checkpoints; the monitors off: they read on the steps
    they observe)."""
    from torch.utils.data import DataLoader, TensorDataset

    from tests.helpers import tiny_config
    from trainwell.pipeline import fit

    def user(rows: int):
        torch.manual_seed(0)
        x, y = torch.randn(rows, 8), torch.randint(0, 3, (rows,))
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        trainer = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3), epochs=2, device="cpu")
        return lambda: trainer.fit(DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True), (x[:20], y[:20]))

    def cli(per_class: int):
        cfg = tiny_config("doctor.monitor_every=0", "train.batch_size=10", n_per_class=per_class)
        return lambda: fit(cfg, out=tmp_path / f"r{per_class}")

    make = user if user_loop else cli
    small, large = _host_reads(make(40 if user_loop else 20)), _host_reads(make(160 if user_loop else 80))
    assert small == large


@pytest.mark.parametrize("weights", [None, "live state dict"])
def test_best_weights_are_those_of_the_best_epoch_when_several_improvements_come_between_saves(tmp_path, weights):
    """Checkpoint copies the best weights into tensors it keeps between improvements: with no save between the
    improvements (epochs 0, 1, 2) and worse epochs after them, best.pt holds epoch 2's weights, not a later epoch's
    (the kept copy must not follow the model); a second fit of another model through the same callback writes
    that model's weights (other shapes: fresh copies). The same with a ``weights`` callable that returns the
    model's own tensors (as a population member's views do): what it returns is copied, not kept."""
    from trainwell.rundir import RunDir
    from trainwell.train.callbacks import Callback, Checkpoint

    class Score(Callback):  # a user's metric, scripted: the best is epoch 2, epochs 3 and 4 are worse
        def __init__(self, scores):
            self.scores, self.weights = scores, []

        def on_epoch_end(self, state):
            state.metrics["score"] = self.scores[state.epoch]
            self.weights.append({k: v.detach().clone() for k, v in state.model.state_dict().items()})

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    run = RunDir(tmp_path / "run").create()
    live = (lambda state: state.model.state_dict(keep_vars=True)) if weights else None
    checkpoint = Checkpoint(run, every=1000, minutes=1e9, monitor="score", weights=live)
    for width, scores in ((8, [3.0, 2.0, 1.0, 5.0, 4.0]), (5, [2.0, 1.0, 0.5, 0.7, 0.9])):
        model = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 3))
        score = Score(scores)
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5), epochs=5, batch_size=16,
                callbacks=[score, checkpoint]).fit((x, y))
        best = torch.load(run.best, weights_only=True)
        assert best["epoch"] == 2
        for k, v in score.weights[2].items():
            assert torch.equal(best["model"][k], v), k
        assert not torch.equal(best["model"]["0.weight"], score.weights[4]["0.weight"])


@pytest.mark.parametrize("where", ["train", "val"])
@pytest.mark.parametrize("targets", [150, 50])
def test_inputs_and_targets_of_different_lengths_are_refused_before_training(where, targets):
    torch.manual_seed(0)
    x, y = torch.randn(100, 3), torch.randint(0, 2, (150,))
    model = nn.Linear(3, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=10)
    pair = (x, y[:targets])
    with pytest.raises(ValueError) as err:
        trainer.fit(pair, (x, y[:100])) if where == "train" else trainer.fit((x, y[:100]), pair)
    assert str(err.value) == f"{where}: got 100 inputs but {targets} targets: give one target per input"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # no step was taken
    assert trainer.state.history == []


def test_a_loader_batch_of_unequal_inputs_and_targets_is_named():
    from torch.utils.data import DataLoader

    model = nn.Linear(3, 2)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1)
    batches = DataLoader([(torch.randn(4, 3), torch.randint(0, 2, (3,)))], batch_size=None)
    with pytest.raises(ValueError, match=r"^train: got 4 inputs but 3 targets in a batch: give one target per input$"):
        trainer.fit(batches)


def test_a_second_fit_continues_the_run_as_one_longer_fit(tmp_path):
    """Two fits of 2 epochs train the model as one fit of 4 epochs does (the same weights, the same losses and
    record), so history[weights_epoch] describes the model; a Checkpoint keeps the run's best and a CSV log all
    its epochs; a one-cycle schedule sized for the first call is refused before any step."""
    from trainwell.optim import Schedule

    torch.manual_seed(0)
    x, y = torch.randn(200, 5), torch.randint(0, 2, (200,))
    xv, yv = torch.randn(50, 5), torch.randint(0, 2, (50,))

    def trainer(epochs, folder):
        torch.manual_seed(1)
        model = nn.Linear(5, 2)
        return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), epochs=epochs,
                       batch_size=32, device="cpu", callbacks=[Checkpoint(tmp_path / folder),
                                                               CSVLogger(tmp_path / folder / "metrics.csv")])

    once = trainer(4, "once")
    long = once.fit((x, y), (xv, yv)).history
    twice = trainer(2, "twice")
    twice.fit((x, y), (xv, yv))
    state = twice.fit((x, y), (xv, yv))
    for k, v in once.model.state_dict().items():
        assert torch.equal(v, twice.model.state_dict()[k]), k
    assert [r["epoch"] for r in state.history] == [0, 1, 2, 3] and [r["step"] for r in state.history] == [7, 14, 21, 28]
    assert [r["train_loss"] for r in state.history] == [r["train_loss"] for r in long]
    assert state.weights_epoch == 3
    assert state.history[state.weights_epoch]["val_loss"] == pytest.approx(twice.validate(xv, yv)["val_loss"])
    for name in ("best.pt", "last.pt"):
        a = torch.load(tmp_path / "once" / "checkpoints" / name, weights_only=False)
        b = torch.load(tmp_path / "twice" / "checkpoints" / name, weights_only=False)
        assert a["epoch"] == b["epoch"], name
    def rows(folder):  # the CSV log without its wall-clock column
        lines = [line.split(",") for line in (tmp_path / folder / "metrics.csv").read_text().splitlines()]
        keep = [i for i, name in enumerate(lines[0]) if name != "time"]
        return [[line[i] for i in keep] for line in lines]

    assert rows("once") == rows("twice") and len(rows("twice")) == 5
    model = nn.Linear(5, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cycle = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=14)
    sized = Trainer(model, opt, epochs=2, batch_size=32, device="cpu", schedule=Schedule(cycle, "step"))
    sized.fit((x, y))
    before = model.weight.detach().clone()
    with pytest.raises(ValueError, match=r"sized for 14 steps and 14 have run; 2 more epochs take 14"):
        sized.fit((x, y))
    assert torch.equal(model.weight, before)


def test_a_device_this_machine_lacks_is_one_line_naming_device():
    missing = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError) as err:
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, device=missing)
    assert str(err.value).startswith(f"device='{missing}' is not available on this machine: use one of cpu")
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(ValueError, match=r"^device='gpu' is not allowed: use one of cpu"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, device="gpu")


def test_without_validation_a_population_members_best_epoch_follows_the_checkpoints_rule():
    """Without a validation split, val_acc is read from train_acc (higher is better), as Checkpoint reads it:
    never from train_loss compared as an accuracy."""
    history = [{"epoch": 0, "train_loss": 1.0, "train_acc": 0.5}, {"epoch": 1, "train_loss": 0.4, "train_acc": 0.9},
               {"epoch": 2, "train_loss": 0.5, "train_acc": 0.8}]
    assert best_epoch(history, "val_acc") == 1 and best_epoch(history, "val_loss") == 1
    assert best_epoch([{**r, "val_acc": a} for r, a in zip(history, (0.1, 0.2, 0.7), strict=True)], "val_acc") == 2
