"""Config keys the user set that the chosen optimizer, schedule or preprocessing does not read are noted."""

import subprocess
import sys

import pytest

from trainwell.config import load_config
from trainwell.config_reads import unread_notes


def _notes(path=None, overrides=()):
    return unread_notes(load_config(path, list(overrides)), path, list(overrides))


def test_a_key_the_optimizer_or_preprocessing_does_not_read_is_noted_and_a_read_one_is_not(tmp_path):
    assert _notes(overrides=["optim.momentum=0.5"]) == [
        "optim.momentum is not read by optim.name = 'adam' (only by 'momentum'): it changes nothing in this run"]
    assert _notes(overrides=["optim.name=momentum", "optim.momentum=0.5"]) == []
    path = tmp_path / "c.toml"
    path.write_text('[preprocess]\nkind = "standardize"\nwhiten = true\n[optim]\nschedule = "cosine"\ngamma = 0.5\n')
    assert [n.split(" is ")[0] for n in _notes(path)] == ["optim.gamma", "preprocess.whiten"]
    assert _notes(path, ["preprocess.kind=pca", "optim.schedule=step"]) == []


def test_a_runs_whole_config_sets_nothing_on_purpose(tmp_path):
    cfg = load_config(None, ["optim.name=sgd"])
    path = tmp_path / "config.toml"
    from trainwell.config_io import to_toml

    path.write_text(to_toml(cfg))
    assert _notes(path) == []


def test_fit_prints_the_note_before_training(tmp_path):
    out = subprocess.run([sys.executable, "-m", "trainwell", "fit", "--set", "optim.betas=[0.8, 0.99]",
                          "--set", "optim.name=sgd", "--set", "data.name=no-such-data"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "no-such-data" in out.stderr.splitlines()[-1]
    assert "note: optim.betas is not read by optim.name = 'sgd' (only by 'adam')" in out.stderr


@pytest.mark.slow
def test_sweep_notes_a_key_no_member_reads_but_not_one_the_grid_decides(tmp_path):
    def notes(*args):
        out = subprocess.run([sys.executable, "-m", "trainwell", "sweep", "--set", "optim.momentum=0.5", *args,
                              "--set", "data.name=no-such-data"], capture_output=True, text=True, cwd=tmp_path)
        return [line for line in out.stderr.splitlines() if "note:" in line]

    assert len(notes("--grid", "optim.lr=0.1,0.01")) == 1
    assert notes("--grid", "optim.name=momentum,adam") == []


def test_weight_penalties_are_noted_when_only_normalization_layers_train():
    """train.trainable = "norm" trains BatchNorm's scales and shifts, which no weight penalty or decay touches
    (trainwell.regularize.penalized_parameters): the penalty's strength changes nothing."""
    keys = ["model.norm=batch", "train.trainable=norm", "regularize.l2=0.01", "optim.weight_decay=1e-4"]
    assert _notes(overrides=keys) == [
        "optim.weight_decay is not read by train.trainable = 'norm' (only by 'all'): it changes nothing in this run",
        "regularize.l2 is not read by train.trainable = 'norm' (only by 'all'): it changes nothing in this run"]
    assert _notes(overrides=["regularize.l2=0.01", "regularize.max_norm=3.0"]) == []


def test_pcas_eps_is_noted_only_without_whitening():
    """PCA divides by sqrt(variance + eps) only when it whitens; ZCA always does."""
    assert _notes(overrides=["preprocess.kind=pca", "preprocess.eps=0.1"]) == [
        "preprocess.eps is not read by preprocess.kind = 'pca' without preprocess.whiten = true: it changes nothing "
        "in this run"]
    assert _notes(overrides=["preprocess.kind=pca", "preprocess.whiten=true", "preprocess.eps=0.1"]) == []
    assert _notes(overrides=["preprocess.kind=zca", "preprocess.eps=0.1"]) == []
