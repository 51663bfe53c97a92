"""A population (``Trainer(PopulationLearner(...))``) with a user's own models, callbacks and schedules. Oracle:
each member trained alone by the library's Trainer on a plain module, from the same weights and seed."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell.optim import Schedule
from trainwell.train import Trainer
from trainwell.train.callbacks import Checkpoint
from trainwell.train.population import PopulationLearner


def _data(n=200, d=10, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, x[:, :c].argmax(1)


class Backboned(nn.Module):
    """A pretrained body the user froze, a head that trains, and a (logits, features) output."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head = nn.Linear(10, 16), nn.Linear(16, 3)
        self.body.requires_grad_(False)

    def forward(self, x):
        h = F.relu(self.body(x))
        return self.head(h), h


def _alone(net, lr, seed, epochs=2, schedule=None, batch_size=32):
    one = copy.deepcopy(net)
    opt = torch.optim.SGD([p for p in one.parameters() if p.requires_grad], lr=lr)
    Trainer(one, opt, epochs=epochs, batch_size=batch_size, seed=seed,
            schedule=schedule(opt) if schedule else None).fit(_data())
    return one


def test_frozen_layers_stay_frozen_and_a_tuple_output_trains_as_alone():
    net = Backboned()
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1, 0.05],
                                weight_decays=[0.0, 0.0])
    Trainer(learner, epochs=2, batch_size=32, seed=[0, 1]).fit(_data())
    for m, lr in enumerate((0.1, 0.05)):
        alone = _alone(net, lr, m)
        assert torch.equal(learner.params["body.weight"][m], net.body.weight)  # frozen: not moved at all
        for k, v in alone.state_dict().items():
            torch.testing.assert_close(learner.params[k][m], v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("as_torch", [False, True])
def test_a_step_schedule_follows_the_trainers_epochs_and_batches(as_torch):
    """The learner's own epochs/steps_per_epoch left at their defaults: the loop sizes the schedule's tables
    (one-cycle used to stay at its first rate for the whole run); a builder may return a torch scheduler."""
    steps = 3 * math.ceil(200 / 32)

    def onecycle(opt):
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=steps)
        return sched if as_torch else Schedule(sched, "step")

    net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    learner = PopulationLearner(net, [net.state_dict()], optimizer="sgd", lrs=[0.1], weight_decays=[0.0],
                                schedule=onecycle)
    done = Trainer(learner, epochs=3, batch_size=32, seed=[0]).fit(_data())
    alone = copy.deepcopy(net)
    opt = torch.optim.SGD(alone.parameters(), lr=0.1)
    ref = Trainer(alone, opt, epochs=3, batch_size=32, seed=0, schedule=onecycle(opt)).fit(_data())
    assert [h["lr"] for h in done.trainer.members[0].history] == pytest.approx([h["lr"] for h in ref.history])
    for k, v in alone.state_dict().items():
        torch.testing.assert_close(learner.params[k][0], v, rtol=1e-5, atol=1e-6)


def test_checkpoint_keeps_the_populations_and_each_members_best_weights(tmp_path):
    net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1, 0.01],
                                weight_decays=[0.0, 0.0])
    x, y = _data()
    Trainer(learner, epochs=2, batch_size=32, seed=[0, 1], callbacks=[Checkpoint(tmp_path / "run")],
            member_callbacks=[[Checkpoint(tmp_path / f"m{m}")] for m in range(2)]).fit((x, y), (x, y))
    run = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=False)
    assert run["model"]["0.weight"].shape == (2, 16, 10)  # every member's weights, stacked
    for m in range(2):
        best = torch.load(tmp_path / f"m{m}" / "checkpoints" / "best.pt", weights_only=False)["model"]
        assert best.keys() == net.state_dict().keys()
        alone = copy.deepcopy(net)
        alone.load_state_dict(best)  # the member's own weights: loadable into the user's model
        torch.testing.assert_close(best["0.weight"], learner.params["0.weight"][m])  # 2 epochs, still improving
        assert not (tmp_path / f"m{m}" / "checkpoints" / "last.pt").exists()  # the population's own resumes it


@pytest.mark.parametrize("given", [{"loss_fn": "hinge"}, {"penalty": lambda m: 0.0}, {"augment": lambda b, g: b},
                                   {"precision": "bf16"}, {"schedule": object()}, {"device": "meta"}])
def test_module_arguments_with_a_learner_are_refused_not_ignored(given):
    net = nn.Sequential(nn.Linear(10, 3))
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    with pytest.raises(ValueError, match=rf"Trainer\(PopulationLearner\(...\), {next(iter(given))}.*would be ignored"):
        Trainer(learner, epochs=1, batch_size=8, seed=[0, 1], **given)
    Trainer(learner, epochs=1, batch_size=8, seed=[0, 1], loss_fn="cross_entropy", device="cpu")  # the defaults


def test_a_dataloader_without_batch_size_is_told_the_population_draws_its_own_batches():
    net = nn.Sequential(nn.Linear(10, 3))
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    loader = DataLoader(TensorDataset(*_data()), batch_size=10)
    with pytest.raises(ValueError, match="reads the DataLoader's data into memory and draws its own batches"):
        Trainer(learner, epochs=1, seed=[0, 1]).fit(loader)
    with pytest.warns(UserWarning, match=r"read the DataLoader's 200 examples into memory once and draws its own "
                                         r"batches of 50: the loader's batch size, shuffling"):
        done = Trainer(learner, epochs=1, batch_size=50, seed=[0, 1]).fit(loader)
    assert done.step == 4  # its own batches: 200 / 50, not the loader's 20


class Normed(nn.Module):
    """A 2-D LayerNorm: its scale is (4, 4), so stacked it has 3 dims like a weight, but a fit never decays it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.ln, self.fc2 = nn.Linear(10, 16), nn.LayerNorm([4, 4]), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.ln(self.fc1(x).view(-1, 4, 4))).flatten(1))


def test_weight_decay_spares_what_a_fit_spares_normalization_scales():
    from trainwell.optim import build_optimizer

    net = Normed()
    learner = PopulationLearner(net, [net.state_dict()], optimizer="sgd", lrs=[0.1], weight_decays=[0.5])
    Trainer(learner, epochs=2, batch_size=32, seed=[0]).fit(_data())
    alone = copy.deepcopy(net)
    Trainer(alone, build_optimizer(alone, "sgd", lr=0.1, weight_decay=0.5), epochs=2, batch_size=32,
            seed=0).fit(_data())
    for k, v in alone.state_dict().items():
        torch.testing.assert_close(learner.params[k][0], v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"lrs": [-0.1, 0.1]}, r"lrs: -0.1 is not allowed: each is a finite number > 0"),
    ({"lrs": [float("nan"), 0.1]}, r"lrs: nan is not allowed"),
    ({"lrs": 0.1}, r"lrs: a list with one entry per member, not a float"),
    ({"weight_decays": [-1.0, 0.0]}, r"weight_decays: -1.0 is not allowed: each is a finite number >= 0"),
    ({"decay": "bogus"}, r"decay='bogus' is not allowed: use 'coupled' or 'decoupled'"),
    ({"momentum": -0.5}, r"momentum=-0.5 is not allowed"),
    ({"betas": (1.5, 0.999)}, r"betas=\(1.5, 0.999\) is not allowed: use two numbers in \[0, 1\)"),
    ({"states": [], "lrs": [], "weight_decays": []}, r"states: an empty list: a population needs at least one"),
])
def test_population_hyperparameters_are_checked_as_build_optimizer_checks_them(kwargs, fragment):
    net = nn.Sequential(nn.Linear(10, 3))
    args = {"states": [net.state_dict()] * 2, "optimizer": "adam", "lrs": [0.1, 0.1], "weight_decays": [0.0, 0.0],
            **kwargs}
    with pytest.raises(ValueError, match=fragment):
        PopulationLearner(net, **args)


@pytest.mark.parametrize("data, error, fragment", [
    (lambda x, y: (x, torch.where(y == 2, 5, y)), ValueError, r"class labels run 0..5 but the model has 3 outputs"),
    (lambda x, y: (x, y[:, None]), ValueError, r"labels of shape \(200, 1\).*\(2, N\): one row per member"),
    (lambda x, y: (x, torch.stack([y, y, y])), ValueError, r"labels of shape \(3, 200\)"),
    (lambda x, y: (x, y[:-10]), ValueError, r"labels of shape \(190,\) for 200 inputs"),
    (lambda x, y: (x.double().numpy(), y.numpy()), TypeError, r"train inputs are float64 \(NumPy's default\)"),
    (lambda x, y: ((x * 10).clamp(0, 255).to(torch.uint8), y), TypeError, r"train inputs are uint8.*x\.float\(\)"),
    (lambda x, y: (x[:, :8], y), ValueError, r"train inputs of shape \(200, 8\) have 8 features per example; the "
                                             r"members' first layer takes 10"),
])
def test_a_population_checks_its_data_as_a_single_trainer_does(data, error, fragment):
    net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    before = {k: v.clone() for k, v in learner.params.items()}
    with pytest.raises(error, match=fragment):
        Trainer(learner, epochs=1, batch_size=32, seed=[0, 1]).fit(data(*_data()))
    assert all(torch.equal(v, learner.params[k]) for k, v in before.items())  # refused before any step


def test_the_label_check_takes_no_random_draw_from_a_dropout_population():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    results = []
    for _ in range(2):
        learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2,
                                    weight_decays=[0.0] * 2)
        torch.manual_seed(1)
        if results:  # the second time the labels were already checked: no forward before the first step
            learner._labels_checked = True
        Trainer(learner, epochs=1, batch_size=32, seed=[0, 1]).fit(_data())
        results.append(learner.params["3.weight"].clone())
    assert torch.equal(*results)


def test_a_population_checkpoint_loads_only_into_the_same_optimizer_size_and_architecture():
    from trainwell.errors import TrainwellError

    def population(optimizer="adam", members=2, width=16):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(10, width), nn.ReLU(), nn.Linear(width, 3))
        learner = PopulationLearner(net, [net.state_dict()] * members, optimizer=optimizer, lrs=[0.01] * members,
                                    weight_decays=[0.0] * members)
        return Trainer(learner, epochs=1, batch_size=32, seed=list(range(members)))

    trained = population()
    trained.fit(_data())
    ckpt = trained.checkpoint_state(copy=True)
    for kwargs, fragment in (({"optimizer": "sgd"}, "trained with adam: this one uses sgd"),
                             ({"optimizer": "momentum"}, "trained with adam: this one uses momentum"),
                             ({"members": 3}, "a population of 2 members: this one has 3"),
                             ({"width": 32}, r"0.weight is \(16, 10\) per member there, \(32, 10\) here")):
        with pytest.raises(TrainwellError, match=fragment):
            population(**kwargs).load_checkpoint_state(ckpt)
    older = copy.deepcopy(ckpt)
    del older["optimizer"]["name"]  # written before the name was saved: read from the state it holds
    with pytest.raises(TrainwellError, match="trained with adam: this one uses rmsprop"):
        population("rmsprop").load_checkpoint_state(older)
    same = population()
    same.load_checkpoint_state(ckpt)
    assert all(torch.equal(v, trained.learner.params[k]) for k, v in same.learner.params.items())


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(10, 10), nn.Linear(10, 10), nn.Linear(10, 3)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.out(F.relu(self.b(F.relu(self.a(x)))))


def test_tied_parameters_are_refused_by_name():
    net = Tied()
    with pytest.raises(ValueError, match=r"cannot stack tied parameters \(b.weight is a.weight"):
        PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)


def test_a_populations_evaluation_hint_is_code_that_runs():
    net = nn.Sequential(nn.Linear(10, 3))
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    trainer = Trainer(learner, epochs=1, batch_size=32, seed=[0, 1])
    trainer.fit(_data())
    x, y = _data(seed=1)
    with pytest.raises(TypeError, match=r"learner\.evaluate\(x, y\).*learner\.forward\(x, shared=True\)"):
        trainer.test((x, y))
    losses, accs = learner.evaluate(x, y)  # what the message says
    assert len(losses) == len(accs) == 2 and learner.forward(x, shared=True).shape == (2, 200, 3)


def test_a_members_learning_rate_reads_as_a_separate_fits_float():
    net = nn.Sequential(nn.Linear(10, 3))
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.05, 0.004],
                                weight_decays=[0.0] * 2)
    done = Trainer(learner, epochs=1, batch_size=32, seed=[0, 1]).fit(_data())
    assert [s.history[0]["lr"] for s in done.trainer.members] == [0.05, 0.004]  # not 0.05000000074505806


def test_a_run_level_restore_says_which_epochs_weights_each_member_holds():
    from trainwell.train.stopping import EarlyStopping

    net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.5, 0.3],
                                weight_decays=[0.0] * 2)
    x, y = _data()
    xv, yv = _data(seed=1)
    yv = yv[torch.randperm(len(yv), generator=torch.Generator().manual_seed(0))]  # unlearnable: it soon worsens
    done = Trainer(learner, epochs=12, batch_size=32, seed=[0, 1],
                   callbacks=[EarlyStopping(patience=1, restore_best_weights=True)]).fit((x, y), (xv, yv))
    best = done.weights_epoch
    assert best < done.epoch  # the restore went back: the members' last epochs no longer describe them
    losses, _ = learner.evaluate(xv, yv)
    for m, member in enumerate(done.trainer.members):
        assert member.weights_epoch == min(best, member.epoch)
        assert losses[m] == pytest.approx(member.history[member.weights_epoch]["val_loss"], rel=1e-5)


def test_a_resumed_population_built_with_default_sizes_follows_its_schedule():
    steps = 4 * math.ceil(200 / 32)

    def onecycle(opt):
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=steps)

    def population():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
        return PopulationLearner(net, [net.state_dict()], optimizer="sgd", lrs=[0.1], weight_decays=[0.0],
                                 schedule=onecycle)

    whole = Trainer(population(), epochs=4, batch_size=32, seed=[0]).fit(_data())
    first = Trainer(population(), epochs=2, batch_size=32, seed=[0])
    first.fit(_data())
    again = Trainer(population(), epochs=4, batch_size=32, seed=[0])  # rebuilt with the learner's default sizes
    again.load_checkpoint_state(first.checkpoint_state(copy=True))
    done = again.fit(_data())
    assert [h["lr"] for h in done.trainer.members[0].history] == [h["lr"] for h in whole.trainer.members[0].history]
    for k, v in whole.trainer.learner.params.items():
        assert torch.equal(v, again.learner.params[k]), k


def test_a_custom_loss_gets_the_whole_output_as_a_single_trainers_does():
    def loss(out, y):
        logits, h = out
        return F.cross_entropy(logits, y) + 0.1 * h.pow(2).mean()

    net = Backboned()
    net.body.requires_grad_(True)
    learner = PopulationLearner(net, [net.state_dict()], optimizer="sgd", lrs=[0.1], weight_decays=[0.0],
                                loss_fn=loss)
    Trainer(learner, epochs=1, batch_size=32, seed=[0]).fit(_data())
    alone = copy.deepcopy(net)
    Trainer(alone, torch.optim.SGD(alone.parameters(), lr=0.1), loss, epochs=1, batch_size=32, seed=0).fit(_data())
    for k, v in alone.state_dict().items():
        torch.testing.assert_close(learner.params[k][0], v, rtol=1e-5, atol=1e-6)


def test_integer_inputs_to_a_vmapped_population_are_named():
    net = Backboned()
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    x, y = _data()
    with pytest.raises(TypeError, match=r"train inputs are uint8, and the model met them in a floating-point layer"):
        Trainer(learner, epochs=1, batch_size=32, seed=[0, 1]).fit(((x * 10).clamp(0, 255).to(torch.uint8), y))


def test_integer_validation_inputs_are_named_as_validation_inputs():
    net = Backboned()
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    x, y = _data()
    with pytest.raises(TypeError, match=r"^val inputs are uint8, and the model met them in a floating-point layer"):
        Trainer(learner, epochs=1, batch_size=32, seed=[0, 1]).fit((x, y), val=((x * 10).clamp(0, 255).byte(), y))


def test_a_dataclass_output_is_refused_in_one_line_naming_what_vmap_can_return():
    import dataclasses

    @dataclasses.dataclass
    class Prediction:
        logits: torch.Tensor

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(10, 3)

        def forward(self, x):
            return Prediction(self.fc(x))

    net = Net()
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    with pytest.raises(ValueError, match=r"^population training needs the model to return a tensor, or a tuple or "
                                         r"dict of them \(vmap cannot return Prediction\)"):
        Trainer(learner, epochs=1, batch_size=32, seed=[0, 1]).fit(_data())


def test_torchs_batching_rule_note_is_not_shown_for_a_users_layer(recwarn):
    class Cell(nn.Module):  # GRUCell has no batching rule: vmap loops over members and says so
        def __init__(self):
            super().__init__()
            self.cell, self.fc = nn.GRUCell(10, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(self.cell(x))

    net = Cell()
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    Trainer(learner, epochs=1, batch_size=32, seed=[0, 1]).fit(_data(), val=_data(50, seed=1))
    assert not [w for w in recwarn if "batching rule" in str(w.message)]
    assert all(torch.isfinite(v).all() for v in learner.params.values())


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_a_float64_population_steps_at_its_fits_float64_rates(optimizer):
    x, y = _data()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    learner = PopulationLearner(net, [net.state_dict()], optimizer=optimizer, lrs=[0.05], weight_decays=[0.0])
    Trainer(learner, epochs=2, batch_size=32, seed=[3]).fit((x.double(), y))
    alone = copy.deepcopy(net)
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=0.05), "adam": lambda p: torch.optim.Adam(p, lr=0.05),
           "momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)}[optimizer](alone.parameters())
    Trainer(alone, opt, epochs=2, batch_size=32, seed=3).fit((x.double(), y))
    for k, v in alone.state_dict().items():  # float32 rates (0.05000000074505806) left differences of ~1e-9
        torch.testing.assert_close(learner.params[k][0], v, rtol=0, atol=1e-13)


@pytest.mark.parametrize("act, refused", [(nn.Sigmoid, True), (nn.Softplus, True), (nn.ReLU, False),
                                          (nn.Tanh, False), (nn.GELU, False)])
def test_a_narrower_member_behind_an_activation_that_would_train_its_padding_is_refused(act, refused):
    from trainwell.train.population import embed_state

    def mlp(width):
        return nn.Sequential(nn.Linear(10, width), act(), nn.Linear(width, 3))

    wide, narrow = mlp(8), mlp(5)
    states = [wide.state_dict(), embed_state(narrow.state_dict(), wide.state_dict())]
    if refused:
        with pytest.raises(ValueError, match=rf"member 1's unit 5 of layer '0' is all zeros.*{act.__name__}\(0\)"):
            PopulationLearner(wide, states, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
        return
    learner = PopulationLearner(wide, states, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    Trainer(learner, epochs=2, batch_size=32, seed=[0, 1]).fit(_data())
    assert torch.equal(learner.params["2.weight"][1][:, 5:], torch.zeros(3, 3))  # the padding stayed zero


def test_validation_labels_of_the_wrong_shape_are_refused_before_training():
    net = nn.Sequential(nn.Linear(10, 3))
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    before = learner.params["0.weight"].clone()
    x, y = _data()
    with pytest.raises(ValueError, match=r"val labels of shape \(200, 1\)"):
        Trainer(learner, epochs=1, batch_size=32, seed=[0, 1]).fit((x, y), (x, y[:, None]))
    assert torch.equal(before, learner.params["0.weight"])


def test_a_plateau_checkpoint_resumes_only_a_plateau_population():
    from trainwell.errors import TrainwellError

    def plateau(opt):
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)

    def trainer(schedule):
        net = nn.Sequential(nn.Linear(10, 3))
        learner = PopulationLearner(net, [net.state_dict()], optimizer="sgd", lrs=[0.1], weight_decays=[0.0],
                                    schedule=schedule)
        return Trainer(learner, epochs=1, batch_size=32, seed=[0])

    with_plateau, without = trainer(plateau), trainer(None)
    for t in (with_plateau, without):
        t.fit(_data(), _data(seed=1))
    with pytest.raises(TrainwellError, match="with a plateau schedule: this one has another"):
        trainer(None).load_checkpoint_state(with_plateau.checkpoint_state(copy=True))
    with pytest.raises(TrainwellError, match="without a plateau schedule: this one has one"):
        trainer(plateau).load_checkpoint_state(without.checkpoint_state(copy=True))


def test_nesterov_without_momentum_and_text_rates_are_refused():
    net = nn.Sequential(nn.Linear(10, 3))
    with pytest.raises(ValueError, match=r"nesterov=True needs a momentum > 0"):
        PopulationLearner(net, [net.state_dict()], optimizer="momentum", lrs=[0.1], weight_decays=[0.0],
                          momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match=r"lrs: '0.1' is not allowed"):
        PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=["0.1", 0.1], weight_decays=[0.0] * 2)
    import numpy as np

    PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=np.array([0.1, 0.2]),
                      weight_decays=torch.zeros(2))  # NumPy and torch rates: one per member


def test_best_weights_restored_both_for_the_run_and_its_members_is_refused():
    from trainwell.train.stopping import EarlyStopping

    net = nn.Sequential(nn.Linear(10, 3))
    learner = PopulationLearner(net, [net.state_dict()] * 2, optimizer="sgd", lrs=[0.1] * 2, weight_decays=[0.0] * 2)
    with pytest.raises(ValueError, match="restore_best_weights is set for the run .* and for members"):
        Trainer(learner, epochs=2, batch_size=32, seed=[0, 1],
                callbacks=[EarlyStopping(patience=1, restore_best_weights=True)],
                member_callbacks=[[EarlyStopping(patience=1, restore_best_weights=True)] for _ in range(2)])
    Trainer(learner, epochs=2, batch_size=32, seed=[0, 1], callbacks=[EarlyStopping(patience=1)],
            member_callbacks=[[EarlyStopping(patience=1, restore_best_weights=True)] for _ in range(2)])  # one side


def test_a_population_without_seeds_draws_every_members_batches_as_a_default_fit_does():
    class Net(nn.Module):  # the user's own model
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(10, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(torch.tanh(self.fc1(x)))

    torch.manual_seed(0)
    nets = [Net(), Net()]
    learner = PopulationLearner(nets[0], [n.state_dict() for n in nets], optimizer="sgd", lrs=[0.1, 0.05],
                                weight_decays=[0.0, 0.0])
    Trainer(learner, epochs=2, batch_size=32).fit(_data())  # no seed= given
    for m, lr in enumerate((0.1, 0.05)):
        alone = copy.deepcopy(nets[m])
        Trainer(alone, torch.optim.SGD(alone.parameters(), lr=lr), epochs=2, batch_size=32).fit(_data())
        for k, v in alone.state_dict().items():
            torch.testing.assert_close(learner.params[k][m], v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="seed: 1 seeds for 2 members"):
        Trainer(learner, epochs=1, batch_size=32, seed=3)



def test_momentum_given_to_a_population_of_plain_sgd_is_refused_and_momentum_trains_as_torch_sgd():
    net = Backboned()
    for given, match in (({"momentum": 0.9}, "momentum=0.9 is not allowed with optimizer='sgd'"),
                         ({"nesterov": True}, "nesterov=True is not allowed with optimizer='sgd'")):
        with pytest.raises(ValueError, match=match):
            PopulationLearner(net, [net.state_dict()], optimizer="sgd", lrs=[0.1], weight_decays=[0.0], **given)
    learner = PopulationLearner(net, [net.state_dict()], optimizer="momentum", lrs=[0.1], weight_decays=[0.0],
                                momentum=0.9)
    Trainer(learner, epochs=2, batch_size=32).fit(_data())
    alone = copy.deepcopy(net)  # the oracle: torch's SGD with momentum 0.9, fitted alone
    opt = torch.optim.SGD([p for p in alone.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    Trainer(alone, opt, epochs=2, batch_size=32).fit(_data())
    for k, v in alone.state_dict().items():
        torch.testing.assert_close(learner.params[k][0], v, rtol=1e-5, atol=1e-6)
