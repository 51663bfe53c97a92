"""The lab, part 2 (stopping, preprocessing, initialization, normalization, optimization, debugging, CNNs): every
experiment at quick size, the pieces they add, and for every verdict a negative control, so no verdict is a
constant."""


import pytest
import torch

from trainwell.lab import base, deep_relu_init, mixture_of_experts, pretraining, probes, registry, stopping_criteria
from trainwell.lab import batchnorm as bn_exp
from trainwell.nn.layers import MixtureOfExperts, moe_loss

PART2 = ["deep-relu-init", "init-symmetry-and-scale", "init-histograms", "batchnorm", "preprocessing",
         "stopping-criteria", "optimizers", "lr-diagnosis", "cnn-vs-mlp", "filters-and-equivariance",
         "mixture-of-experts", "neocognitron", "pretraining"]
EXPERIMENTS = registry.experiments()

def test_part2_is_registered_with_the_contract():
    assert set(PART2) <= set(EXPERIMENTS)
    for name in PART2:
        mod = EXPERIMENTS[name]
        assert mod.NAME == name and mod.CLAIM and mod.PAPER and mod.__doc__
        assert set(mod.EXPECTED_S) == {"quick", "default"} and mod.Config.quick() != mod.Config()


# -- the pieces the experiments add -------------------------------------------------------------------------------
def test_layer_signals_measure_every_hidden_layer_and_vanish_with_small_init():
    x, y = torch.randn(64, 20), torch.randint(0, 10, (64,))
    small = probes.init_mlp((20,), [50] * 6, 10, "small_normal", activation="tanh")
    sig = probes.layer_signals(small, x, y, keep=10)
    assert len(sig["activations"]) == len(sig["gradients"]) == 6 and len(sig["samples"]["activations"][0]) == 10
    assert sig["activations"][-1] < 1e-3 * sig["activations"][0]
    he = probes.layer_signals(probes.init_mlp((20,), [50] * 6, 10, "he_normal"), x, y)
    assert 0.2 < he["activations"][-1] / he["activations"][0] < 5


def test_first_below_uses_a_running_mean():
    assert deep_relu_init.first_below([3.0] * 5 + [1.0] * 20, 2.0, window=4) == 8
    assert deep_relu_init.first_below([3.0] * 10, 2.0) is None


def test_stopping_replays_criteria_on_a_history():
    from trainwell.train.stopping import EarlyStopping, LossChange

    losses = [1.0, 0.5, 0.4, 0.39, 0.389, 0.3889]
    assert stopping_criteria.first_stop(LossChange(0.05, 2), losses) == 4
    assert stopping_criteria.first_stop(EarlyStopping("min", 2), [1.0, 0.9, 0.95, 0.97, 0.5]) == 3
    assert stopping_criteria.first_stop(LossChange(0.05, 2), [1.0, 0.5, 0.2]) is None


def test_mixture_scores_are_minus_jacobs_error():
    torch.manual_seed(0)
    moe = MixtureOfExperts(5, 3, experts=2)
    model = mixture_of_experts.MixtureScores(moe, 3)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    outputs, gates = moe(x)
    expected = moe_loss(outputs, gates, torch.eye(3)[y])
    assert torch.allclose(mixture_of_experts.mixture_error(model(x), y), expected, atol=1e-6)


def test_two_regime_data_gives_each_regime_its_own_classes():
    x, y, regime = mixture_of_experts.two_regimes(400, 6, 4, seed=0)
    assert set(y[regime == 0].tolist()) <= {0, 1} and set(y[regime == 1].tolist()) <= {2, 3}
    assert torch.equal(regime, (x[:, 0] > 0).long())


def test_train_random_subset_moves_only_the_chosen_entries():
    from trainwell.nn.norm import norm_parameters

    cb = bn_exp.TrainRandomSubset(7, seed=0)
    t = base.train(["data.name=xor", "model.kind=mlp", "model.hidden=[6]", "model.norm=batch", "train.epochs=20",
                    "train.batch_size=4", "optim.name=adam", "optim.lr=0.1"], None, "subset", callbacks=[cb])
    moved = sum(int((p.detach() != p0).sum()) for p, p0, _ in cb.params)
    assert 0 < moved <= 7
    assert all(torch.equal(p.detach(), p0) for p, p0 in cb.norm) and len(norm_parameters(t.model)) == 2


def test_masking_noise_zeroes_the_asked_fraction():
    out = pretraining.masking_noise(0.3)(torch.ones(200, 50), torch.Generator().manual_seed(0))
    assert abs(float((out == 0).float().mean()) - 0.3) < 0.02 and set(out.unique().tolist()) == {0.0, 1.0}


@pytest.mark.slow  # seconds each
def test_mnist1d_permute_seed_is_one_fixed_permutation_of_positions():
    from trainwell.data import load

    a, b = load("mnist1d"), load("mnist1d", permute_seed=3)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    for (xa, ya), (xb, yb) in ((a.train, b.train), (a.test, b.test)):
        assert torch.equal(xb[:, 0], xa[:, 0, order]) and torch.equal(ya, yb)
    assert not torch.equal(order, torch.arange(40))


# -- negative controls: each verdict passes on a made-up result that shows the claim and fails when it is altered ----
def _status(name, result):
    return EXPERIMENTS[name].verdict(result)["status"]


def _symmetry(zero_spread=0.0, small_last=1e-9, zero_moved=2e-6):
    return {"training": {"zeros": {"spread": [zero_spread, 0.0], "train_acc": 0.1,
                                   "weight_abs_max": [zero_moved, zero_moved]},
                         "he_normal": {"spread": [1.1, 1.0], "train_acc": 0.5, "weight_abs_max": [0.9, 0.9]}},
            "scale": {"small_normal": [0.15, 0.02, small_last], "standard": [0.6, 0.1, 0.01],
                      "xavier_normal": [0.6, 0.4, 0.3], "he_normal": [0.9, 0.8, 0.7]}}


def test_init_symmetry_verdict_can_fail():
    assert _status("init-symmetry-and-scale", _symmetry()) == "pass"
    assert _status("init-symmetry-and-scale", _symmetry(zero_spread=0.3)) == "fail"  # zero-init units differ
    assert _status("init-symmetry-and-scale", _symmetry(small_last=0.1)) == "fail"  # no collapse
    # zero weights and zero biases: nothing moved, so "identical" says nothing
    assert _status("init-symmetry-and-scale", _symmetry(zero_moved=0.0)) == "fail"


# init-histograms, batchnorm, preprocessing, lr-diagnosis, cnn-vs-mlp and filters-and-equivariance: their
# verdicts (pass, fail, inconclusive) are tested in tests/lab/test_controls_part3.py
def _stops(restored_acc=0.58, gain=0.04, n=1000):
    stops = {"fixed": {"stop_epoch": 39, "model_epoch": 39, "test_acc": 0.54},
             "loss change": {"stop_epoch": None, "model_epoch": 59, "test_acc": 0.54},
             "weight change": {"stop_epoch": 52, "model_epoch": 52, "test_acc": 0.54},
             "early stopping": {"stop_epoch": 19, "model_epoch": 9, "test_acc": 0.54 + gain}}
    k = round(abs(gain) * n)
    diffs = [1 if gain > 0 else -1] * k + [0] * (n - k)
    return {"stops": stops, "best_test_acc": 0.6, "best_test_epoch": 26,
            "paired": {name: diffs for name in ("fixed", "loss change", "weight change")},
            "pipeline_early_stopping": {"test_acc": restored_acc, "restored_epoch": 9, "epochs": 20}}


def test_stopping_criteria_verdict_can_fail():
    assert _status("stopping-criteria", _stops()) == "pass"
    assert _status("stopping-criteria", _stops(restored_acc=0.50)) == "fail"  # not the best epoch's model
    assert _status("stopping-criteria", _stops(gain=-0.04, restored_acc=0.5)) == "fail"  # early stopping worst
    assert _status("stopping-criteria", _stops(gain=0.0, restored_acc=0.54)) == "fail"  # = fixed's model


def _optim(sgd=(0.50, 0.51, 0.49), adaptive=(0.6, 0.61, 0.6), tune_seeds=3, adam_val=0.7):
    accs = {"sgd": (0.50, 0.51, 0.49), "momentum": (0.55, 0.56, 0.55), "rmsprop": (0.58, 0.59, 0.58),
            "rmsprop+momentum": (0.57, 0.57, 0.58), "adam": (0.6, 0.61, 0.6)}
    chosen = "adam" if adam_val > 0.6 else "rmsprop"  # run() picks the adaptive method best on validation
    return {"seeds": tune_seeds, "compare_seeds": len(sgd), "optimizers": {
        n: {"test_acc": list(a[:tune_seeds]), "val_acc": [adam_val if n == "adam" else 0.6] * tune_seeds,
            "best_lr": 0.1, "seeds": list(range(tune_seeds)), "mode": "population"} for n, a in accs.items()},
        "compare": {"adaptive": chosen, "seeds": list(range(50, 50 + len(sgd))), "heldout_n": 11000,
                    "sgd": list(sgd), chosen: list(adaptive)}}


def test_optimizers_verdict_can_fail():
    assert _status("optimizers", _optim()) == "pass"  # +10 points, spread ~0.8
    assert _status("optimizers", _optim(sgd=(0.62, 0.63, 0.61))) == "fail"  # tuned SGD best
    # better by 0.3 points each seed, a spread of 1 point: a difference, but not beyond the run-to-run spread
    assert _status("optimizers", _optim(sgd=(0.60, 0.61, 0.62), adaptive=(0.603, 0.613, 0.623))) == "fail"
    assert _status("optimizers", _optim(sgd=(0.45, 0.6, 0.55))) == "inconclusive"  # within the run-to-run spread
    # SGD as the adaptive arm (the control): every difference 0, below any spread
    assert _status("optimizers", _optim(sgd=(0.6, 0.61, 0.6))) == "fail"
    assert _status("optimizers", _optim(sgd=(0.5,), adaptive=(0.6,))) == "inconclusive"  # one seed: no interval
    # the adaptive arm compared is the one run() chose on validation, whatever the tuning seeds' test accuracies
    assert _status("optimizers", _optim(adam_val=0.5)) == "pass"


def _moe(split=1.0, gain=0.03, confident=0.95, n=2000):
    k = round(abs(gain) * n)
    mix = {"test_acc": 0.95, "confident": confident, "confident_cases": round(confident * n),
           "regime_split": split, "regime_cases": None if split is None else round(split * n)}
    return {"test": n, "paired": [1 if gain > 0 else -1] * k + [0] * (n - k),
            "models": {"mixture": mix, "equal-size MLP": {"test_acc": 0.95 - gain, "params": 82}}}


def test_mixture_of_experts_verdict_can_fail():
    assert _status("mixture-of-experts", _moe()) == "pass"
    assert _status("mixture-of-experts", _moe(split=0.52)) == "fail"  # the gate ignores the regimes
    assert _status("mixture-of-experts", _moe(split=None)) == "fail"  # one expert: nothing to split
    assert _status("mixture-of-experts", _moe(confident=0.5)) == "fail"  # responsibilities not confident
    assert _status("mixture-of-experts", _moe(gain=-0.03)) == "fail"  # the equal-size MLP is better
    assert _status("mixture-of-experts", _moe(gain=0.0)) == "fail"


def _neo(planes=(7, 26, 104), gain=0.05, n=359):
    k = round(abs(gain) * n)
    paired = [1 if gain > 0 else -1] * k + [0] * (n - k)
    return {"rows": [{"learn_threshold": t, "planes": p, "test_acc": 0.9 + gain}
                     for t, p in zip((0.5, 0.7, 0.85), planes, strict=True)],
            "raw_pixels_acc": 0.9, "chance": 0.1, "main_threshold": 0.85, "paired": paired}


def test_neocognitron_verdict_can_fail():
    assert _status("neocognitron", _neo()) == "pass"
    assert _status("neocognitron", _neo(gain=-0.05)) == "fail"  # worse than the raw pixels
    assert _status("neocognitron", _neo(gain=0.0)) == "fail"  # the identity layer: the raw pixels
    assert _status("neocognitron", _neo(planes=(26, 26, 104))) == "fail"  # planes do not grow


def _pretrain(gains=(0.05, 0.03, 0.04)):
    return {"rows": [{"draw": i, "labelled": 72, "unlabelled": 1438, "scratch": {"test_acc": 0.8},
                      "pretrained": {"test_acc": 0.8 + g}} for i, g in enumerate(gains)]}


def test_pretraining_verdict_can_fail():
    assert _status("pretraining", _pretrain()) == "pass"
    assert _status("pretraining", _pretrain(gains=(0.1, -0.08, -0.01))) == "inconclusive"  # within the noise
    assert _status("pretraining", _pretrain(gains=(-0.03, -0.02, -0.04))) == "fail"  # pretraining hurts
    assert _status("pretraining", _pretrain(gains=(0.0, 0.0, 0.0))) == "fail"  # the control: no pretraining
    assert _status("pretraining", _pretrain(gains=(0.05,))) == "inconclusive"  # one draw decides nothing


def test_pretrain_stack_gives_one_encoder_per_hidden_layer_and_none_for_the_control():
    x = torch.rand(60, 16)
    cfg = pretraining.Config(hidden=[8, 4], dae_epochs=1)
    encoders, curves = pretraining.pretrain_stack(x, cfg, seed=0)
    assert [(e.in_features, e.out_features) for e in encoders] == [(16, 8), (8, 4)] and len(curves) == 2
    again, _ = pretraining.pretrain_stack(x, cfg, seed=0)
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(encoders, again, strict=True))  # seeded
    assert pretraining.pretrain_stack(x, pretraining.Config(hidden=[8, 4], control=True), seed=0) == ([], [])


def test_every_part2_experiment_has_a_negative_control():
    controlled = {"deep-relu-init", "init-symmetry-and-scale", "init-histograms", "batchnorm", "preprocessing",
                  "stopping-criteria", "optimizers", "lr-diagnosis", "cnn-vs-mlp", "filters-and-equivariance",
                  "mixture-of-experts", "neocognitron", "pretraining"}
    assert set(PART2) == controlled
