import json

import pytest
import torch
from torch import nn

from trainwell import prune
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.lottery import Snapshot, lottery, rewind_step
from trainwell.pipeline import fit


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 30), nn.ReLU(), nn.Linear(30, 10))


def test_magnitude_masks_prune_the_smallest_and_output_at_half_rate():
    model = mlp()
    masks = prune.magnitude_masks(model, 0.2)
    assert [float(m.mean()) for m in masks.values()] == pytest.approx([0.8, 0.8, 0.9])
    w = model[0].weight.detach().abs()
    assert float(w[masks["0"] == 0].max()) <= float(w[masks["0"] == 1].min())


def test_density_after_k_rounds_is_0_8_to_the_k():
    model = mlp()
    masks = prune.current_masks(model)
    for _ in range(7):
        masks = prune.magnitude_masks(model, 0.2, masks=masks)
        prune.apply_masks(model, masks)
    assert float(masks["0"].mean()) == pytest.approx(0.8**7, abs=0.002)  # 20.97%
    assert float(masks["4"].mean()) == pytest.approx(0.9**7, abs=0.004)


def test_masks_keep_pruned_weights_at_zero_through_training_and_are_reversible():
    model = mlp()
    masks = prune.magnitude_masks(model, 0.5)
    prune.apply_masks(model, masks)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(8, 20)).pow(2).sum().backward()
        opt.step()
    assert torch.all(model[0].weight[masks["0"] == 0] == 0)
    assert set(prune.current_masks(model)) == set(masks)
    prune.remove(model)
    assert not hasattr(model[0], "weight_mask") and torch.all(model[0].weight[masks["0"] == 0] == 0)


def test_global_and_random_masks_and_report():
    model = mlp()
    glob = prune.magnitude_masks(model, 0.5, scope="global")
    report = prune.sparsity_report(glob)
    assert report["density"] == pytest.approx(0.5, abs=0.001) and set(report["layers"]) == {"0", "2", "4"}
    rand = prune.random_masks(model, glob, seed=0)
    for name in glob:
        assert int(rand[name].sum()) == int(glob[name].sum()) and not torch.equal(rand[name], glob[name])
    with pytest.raises(ValueError, match="unknown layer"):
        prune.apply_masks(model, {"9": torch.ones(1)})
    with pytest.raises(ValueError, match="rate=1.5"):
        prune.magnitude_masks(model, 1.5)
    with pytest.raises(ValueError, match="scope='all'"):
        prune.magnitude_masks(model, 0.5, scope="all")


def test_global_scope_spares_the_layer_with_large_weights_layer_scope_does_not():
    model = mlp()
    with torch.no_grad():
        model[0].weight.mul_(1000.0)  # every weight of layer 0 outranks every other weight
    glob = prune.magnitude_masks(model, 0.3, scope="global")
    per_layer = prune.magnitude_masks(model, 0.3, output_rate=0.3, scope="layer")
    assert bool(glob["0"].all()) and float(glob["2"].mean()) < 0.7
    for mask in per_layer.values():
        assert float(mask.mean()) == pytest.approx(0.7, abs=0.01)


def test_snapshot_and_rewind_step(workdir):
    assert rewind_step(0, 100) == 0 and rewind_step(0.05, 1000) == 50 and rewind_step(7, 1000) == 7
    snap = Snapshot(0)
    cfg = load_config(None, ["data.name=spirals", "model.kind=mlp", "model.hidden=[8]", "train.epochs=2",
                             "report.enabled=false", "doctor.preflight=false"])
    res = fit(cfg, out="r", quiet=True, callbacks=[snap])
    from trainwell.pipeline import prepare

    theta0 = prepare(cfg).model.state_dict()
    assert all(torch.equal(theta0[k], snap.state[k]) for k in theta0)
    assert not all(torch.equal(res.model.state_dict()[k], snap.state[k]) for k in theta0)


@pytest.mark.slow
def test_lottery_rounds_reset_to_theta0_and_write_results(workdir):
    cfg = load_config(None, ["data.name=digits", "model.kind=mlp", "model.hidden=[64, 64]", "train.epochs=3",
                             "report.enabled=false", "doctor.monitor_every=0"])
    rows = lottery(cfg, 2, rate=0.5, control="random", out=workdir / "lt")
    tickets = [r for r in rows if r.kind == "ticket"]
    assert [r.round for r in tickets] == [0, 1, 2]
    assert tickets[1].density < 0.55 and tickets[2].density < tickets[1].density
    randoms = [r for r in rows if r.kind == "random"]
    assert [round(r.density, 4) for r in randoms] == [round(t.density, 4) for t in tickets[1:]]
    for name in ("results.json", "results.csv", "accuracy_vs_density.png"):
        assert (workdir / "lt" / name).exists()
    saved = torch.load(workdir / "lt" / "round-1" / "masks.pt", weights_only=True)
    sparsity = json.loads((workdir / "lt" / "round-1" / "sparsity.json").read_text())
    assert sparsity["density"] == pytest.approx(tickets[1].density)
    # the survivors restart from theta_0: round 1's first-epoch weights came from the dense run's init
    assert set(saved) == {"1", "3", "5"}


@pytest.mark.slow  # 0.46 s each on a 2-core CPU (RESULTS §51)
def test_prune_command(workdir, capsys):
    code = main(["prune", "--set", "data.name=spirals", "--set", "model.kind=mlp", "--set", "model.hidden=[16]",
                 "--set", "train.epochs=2", "--set", "report.enabled=false", "--rounds", "1", "--control",
                 "reinit", "--scope", "global", "--out", "lt"])
    assert code == 0
    out = capsys.readouterr().out
    assert "lottery tickets" in out and "reinit" in out
    assert main(["prune", "--rounds", "0", "--out", "x"]) == 2


class HeadFirst(nn.Module):
    """The output layer ``head`` is registered before the hidden layer it reads."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(40, 10)
        self.body = nn.Sequential(nn.Linear(20, 40), nn.ReLU())

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.parametrize("declared", ["head", "module"])
def test_the_declared_output_layer_is_pruned_at_half_the_rate_whatever_the_registration_order(declared):
    model = HeadFirst()
    masks = prune.magnitude_masks(model, 0.2, output_layer=model.head if declared == "module" else "head")
    density = {name: float(m.mean()) for name, m in masks.items()}
    assert density == pytest.approx({"head": 1 - 0.2 / 2, "body.0": 1 - 0.2})


def test_a_non_sequential_model_without_a_declared_output_layer_is_an_error_not_a_guess():
    model = HeadFirst()
    with pytest.raises(ValueError, match=r"pass output_layer= one of head, body\.0"):
        prune.magnitude_masks(model, 0.2)
    with pytest.raises(ValueError, match="output_layer='tail' is not a submodule"):
        prune.magnitude_masks(model, 0.2, output_layer="tail")
    # every layer at one rate, or one global threshold: no output layer is needed
    alike = prune.magnitude_masks(model, 0.2, output_rate=0.2)
    assert all(float(m.mean()) == pytest.approx(0.8) for m in alike.values())
    assert prune.sparsity_report(prune.magnitude_masks(model, 0.2, scope="global"))["density"] == pytest.approx(0.8)


class TokenClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.out = nn.Linear(16, 2)

    def forward(self, ids):
        return self.out(self.lstm(self.emb(ids))[0][:, -1])


def test_pruning_names_the_layers_it_leaves_dense():
    from trainwell.regularize import SkippedLayersWarning

    with pytest.warns(SkippedLayersWarning, match=r"emb \(Embedding\), lstm \(LSTM\)"):
        masks = prune.magnitude_masks(TokenClassifier(), 0.2, output_layer="out")
    assert set(masks) == {"out"} and float(masks["out"].mean()) == pytest.approx(0.9, abs=0.01)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_a_model_without_prunable_layers_gets_no_masks_and_the_same_warning_in_either_scope(scope):
    from trainwell.regularize import SkippedLayersWarning

    model = nn.ModuleDict({"emb": nn.Embedding(10, 8), "rnn": nn.GRU(8, 8)})
    with pytest.warns(SkippedLayersWarning, match=r"magnitude_masks acts on Linear/Conv layers only .* emb "
                                                  r"\(Embedding\), rnn \(GRU\); they are not pruned"):
        assert prune.magnitude_masks(model, 0.2, scope=scope) == {}


@pytest.mark.parametrize("kwargs, fragment", [
    ({"rate": "0.2"}, r"^rate='0.2' is not allowed: use a number in \[0, 1\) \(a fraction, e.g. 0.2\), got str$"),
    ({"rate": None}, r"^rate=None is not allowed: use a number in \[0, 1\)"),
    ({"rate": True}, r"^rate=True is not allowed: use a number in \[0, 1\)"),
    ({"rate": 0.2, "output_rate": "0.1"}, r"^output_rate='0.1' is not allowed: use a number in \[0, 1\)"),
])
def test_a_rate_that_is_not_a_number_is_refused_by_name(kwargs, fragment):
    from trainwell.errors import ParameterError

    with pytest.raises(ParameterError, match=fragment) as err:
        prune.magnitude_masks(mlp(), **kwargs)
    assert len(str(err.value).splitlines()) == 1
    import numpy as np

    model = mlp()  # NumPy scalars and 0-dim tensors are numbers, as before
    expected = prune.magnitude_masks(model, 0.25)
    for rate in (np.float32(0.25), torch.tensor(0.25)):
        got = prune.magnitude_masks(model, rate)
        assert all(torch.equal(got[k], v) for k, v in expected.items())
