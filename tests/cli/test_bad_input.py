"""Every kind of bad input is one line on stderr, exit code 2, never a traceback."""

import pickle

import numpy as np
import pytest

from tests.helpers import cli, tiny
from trainwell.cli import main

SPIRALS = cli([*tiny(n_per_class=20, hidden=(4,), epochs=1, name=None, quiet=False), "report.enabled=false"])
# the MLP's widths left out: a CNN does not read them
SPIRALS_CNN = cli([*(a for a in tiny(n_per_class=20, epochs=1, name=None, quiet=False) if "hidden" not in a),
                   "report.enabled=false", "model.kind=cnn"])


def s(*items):
    out = []
    for item in items:
        out += ["--set", item]
    return out


def write_mnist(root, truncate=False):
    from tests.data.test_files import write_mnist as write

    write(root)
    if truncate:
        path = root / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:50])


class Hostile:
    def __reduce__(self):
        import os

        return (os.system, ("echo hacked",))


def write_hostile_cifar(root):
    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(pickle.dumps({b"data": Hostile(), b"labels": [0]}, protocol=2))
    (root / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}))


def other_architecture_run(tmp):
    assert main(["fit", "--quiet", "--out", str(tmp / "arch"), *SPIRALS]) == 0
    config = tmp / "arch" / "config.toml"
    config.write_text(config.read_text().replace("hidden = [4]", "hidden = [7]"))


LAB = "xor-direct-connections"
GRID_OF_100_000 = [a for k in ("train.seed", "optim.lr", "train.epochs", "train.batch_size", "optim.weight_decay")
                   for a in ("--grid", f"{k}=1,2,3,4,5,6,7,8,9,10")]


def write_files(folder, files):
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)


CASES = [
    # config keys, types and values
    (s("nope=1"), "unknown config key 'nope'"),
    (s("optim.foo=1"), "unknown config key 'optim.foo'"),
    (s("optim.lr=fast"), "optim.lr = 'fast' is not allowed: use a number"),
    (s("optim.lr=-0.1"), "optim.lr = -0.1 is not allowed"),
    (s("optim.lr=0"), "optim.lr = 0.0 is not allowed"),
    (s("optim.lr=nan"), "optim.lr = nan is not allowed"),
    (s("optim.momentum=1.5"), "optim.momentum = 1.5"),
    (s("optim.betas=[0.9]"), "optim.betas"),
    (s("optim.weight_decay=-1"), "optim.weight_decay"),
    (s("optim.name=lbfgs"), "optim.name = 'lbfgs'"),
    (s("optim.decay=both"), "optim.decay = 'both'"),
    (s("optim.schedule=warm"), "optim.schedule = 'warm'"),
    (s("train.epochs=0"), "train.epochs = 0"),
    (s("train.epochs=1.5"), "train.epochs = 1.5"),
    (s("train.batch_size=-1"), "train.batch_size = -1"),
    (s("train.loss=l1"), "train.loss = 'l1'"),
    (s("train.device=tpu"), "train.device = 'tpu'"),
    (s("model.kind=rnn"), "model.kind = 'rnn'"),
    (s("model.activation=swish"), "model.activation = 'swish'"),
    (s("model.hidden=[0]"), "model.hidden[0] = 0"),
    (s("model.hidden=wide"), "model.hidden = 'wide'"),
    (s("model.dropout_keep=0"), "model.dropout_keep = 0.0"),
    (s("model.dropout_keep=1.5"), "model.dropout_keep = 1.5"),
    (s("model.norm=weight"), "model.norm = 'weight'"),
    pytest.param(s("model.norm=group", "model.norm_groups=7"), "norm_groups = 7 does not divide 64",
                 marks=pytest.mark.slow),  # ~1.4 s: the model is built before the error
    (s("model.blocks=[{type='conv', channels=6, kernel=3}, {type='norm', kind='group', groups=4}]"),
     "model.blocks[1].groups = 4 does not divide 6 channels"),
    (s("init.scheme=glorot"), "init.scheme = 'glorot'"),
    (s("preprocess.kind=fft"), "preprocess.kind = 'fft'"),
    (s("preprocess.kind=pca", "preprocess.n_components=100"), "n_components=100"),
    (s("stop.criteria=['patience']"), "stop.criteria[0] = 'patience'"),
    (s("stop.patience=-1"), "stop.patience = -1"),  # 0 is allowed: stop at the first non-improvement
    (s("data.val_fraction=1.0"), "data.val_fraction = 1.0"),
    (s("data.label_noise=2"), "data.label_noise = 2"),
    (["--set", "train.epochs"], "use key=value"),
    (s("optim=3"), "optim = 3 is not allowed: use a table"),
    # geometry
    (s("model.blocks=[{type='conv', channels=4, kernel=5, stride=2}]", "model.geometry=strict"),
     "= 18.5 is not an integer"),
    (s("model.blocks=[{type='conv', channels=4, kernel=50}]"), "larger than the padded input"),
    (s("model.blocks=[{type='lstm'}]"), "model.blocks[0].type = 'lstm'"),
    (s("model.blocks=[{type='conv'}]"), "needs 'channels'"),
    (s("model.blocks=[{type='conv', channels=4, kernal=3}]"), "unknown key model.blocks[0].'kernal'"),
    (s("model.blocks=[{type='pool', kind='median'}]"), "kind = 'median'"),
    (SPIRALS_CNN, "needs (C, L) or (C, H, W) inputs"),
    (SPIRALS + s("model.norm=instance"), "'instance' needs spatial positions"),
    (SPIRALS + s("train.trainable=norm"), "needs normalization layers"),
    # data
    (s("data.name=imagenet"), "unknown dataset 'imagenet'"),
    (s("data.name=spirals", "data.options={armz = 3}"), "unknown option 'armz' for dataset 'spirals'"),
    (s("data.name=spirals", "data.options={arms = 1}"), "spirals arms = 1"),
    (s("data.name=mnist"), "data.root is empty"),
    (s("data.name=mnist", "data.root=/no/such/folder"), "data.root is not a folder"),
    (s("data.name=modular", "data.options={encoding = 'tokens'}", "model.kind=mlp", "preprocess.kind=center"),
     "needs real-valued inputs"),
    # values that used to raise or to be accepted silently
    (s("name=" + "[" * 3000 + "]" * 3000), "more than 32 levels deep"),
    (s("model.kind=mlp", "model.hidden=[1000000000000]"), "parameters, about"),
    (s("train.seed=18446744073709551616"), "train.seed = 18446744073709551616 is not allowed"),
    (s("data.seed=-1"), "data.seed = -1 is not allowed"),
    (s("init.std=-1"), "init.std = -1.0 is not allowed"),
    (s("init.std=nan"), "init.std = nan is not allowed"),
    (s("init.bias=inf"), "init.bias = inf is not allowed"),
    (s('name="a\u0000b"'), "x00b\"' is not allowed: use 1-100 letters"),
    (s('name="../../escaped"'), "name = '../../escaped' is not allowed"),
    (s('name="' + "a" * 300 + '"'), "letters, digits"),
    (s("optim.min_lr=-1"), "optim.min_lr = -1.0 is not allowed"),
    (s("optim.patience=-3"), "optim.patience = -3 is not allowed"),
    (s("stop.stopping_threshold=nan"), "stop.stopping_threshold = nan is not allowed"),
    (s("stop.divergence_threshold=inf"), "stop.divergence_threshold = inf is not allowed"),
    pytest.param(s('optim.name="' + "x" * 5_000_000 + '"'), "characters in all)",  # a huge value is cut, not echoed
                 marks=pytest.mark.slow),  # ~1 s: 5 MB parsed
]


@pytest.mark.parametrize("args, fragment", CASES)
def test_bad_config_values(workdir, capsys, args, fragment):
    assert main(["fit", "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


FILE_CASES = [
    (lambda t: None, ["fit", "missing.toml"], "does not exist"),
    (lambda t: (t / "bad.toml").write_text("[optim\nlr = 1"), ["fit", "bad.toml"], "is not valid TOML"),
    (lambda t: (t / "bin.toml").write_bytes(b"\xff\xfe\x00"), ["fit", "bin.toml"], "cannot be read"),
    (lambda t: (t / "m").mkdir() or write_mnist(t / "m", truncate=True),
     ["fit", *s("data.name=mnist", "data.root=m")], "IDX data truncated"),
    (lambda t: (t / "c").mkdir() or write_hostile_cifar(t / "c"),
     ["fit", *s("data.name=cifar10", "data.root=c")], "refused to load"),
    (lambda t: None, ["fit", "--resume", "nowhere"], "--resume needs a trainwell run directory"),
    (lambda t: (t / "iris.csv").write_text("a,b,y\n1,2,0\n"), ["fit", "iris.csv"],
     "'iris.csv' is a data file, not a config (TOML): train on it with --set data.name=csv --set data.root=iris.csv "
     "--set model.kind=mlp (the label column"),
    (lambda t: (t / "my data.csv").write_text("a,b,y\n1,2,0\n"), ["fit", "my data.csv"],
     "--set 'data.root=my data.csv'"),
    (lambda t: None, ["fit", "nosuch.csv"], "config file 'nosuch.csv' does not exist"),
    (lambda t: (t / "x.npz").write_bytes(b"PK\x03\x04"), ["sweep", "x.npz", "--grid", "optim.lr=0.1"],
     "'x.npz' is a data file, not a config (TOML): train on it with --set data.name=npz --set data.root=x.npz"),
    (lambda t: (t / "out").mkdir() or (t / "out" / "f").write_text("x"), ["fit", "--out", "out", *SPIRALS],
     "already exists and is not empty"),
    (other_architecture_run, ["fit", "--resume", "arch"], "does not match this run's model"),
    (lambda t: None, ["report", "nowhere"], "nowhere: does not exist"),
    (lambda t: None, ["summary", "--input-shape", "3,x"], "--input-shape '3,x' is not allowed"),
    (lambda t: None, ["fit", "x.toml", "--resume", "r"], "drop the CONFIG argument"),
    (lambda t: None, ["summary", "--input-shape", "100000,100000,100000"], "per example as float32"),
    (lambda t: None, ["summary", *s("model.kind=mlp", "model.hidden=[1000000000000]"), "--input-shape", "1,40"],
     "parameters, about"),
    (lambda t: None, ["filters", "--out", "x.bogusext"], "the extension must name an image format"),
    (lambda t: (t / "r").mkdir() or (t / "r" / "summary.json").write_text("[1, 2]"), ["report", "r"],
     "not a trainwell summary (a JSON object), got a list"),
    (lambda t: None, ["sweep", *SPIRALS, "--grid", "optim.lr=0.1", "--grid", "optim.lr=0.2"], "is given twice"),
    # hostile and careless input (tests/scenarios/test_hostile_users.py has each attack in full)
    (lambda t: None, ["sweep", *SPIRALS, *GRID_OF_100_000], "100,000 members"),
    (lambda t: (t / "results").write_text("x"), ["lab", "run", LAB, "--quick", "--out", "results"],
     "results is a file, not a folder"),
    (lambda t: (t / "site").mkdir() or (t / "site" / "index.html").write_text("mine"),
     ["lab", "run", LAB, "--quick", "--out", "site"], "not a trainwell lab folder"),
    (lambda t: None, ["filters", "--out", "no/such/dir/x.png"], "'no/such/dir' does not exist"),
    (lambda t: write_files(t / "r", {"metrics.jsonl": '{"epoch": "1", "step": 1}\n', "config.toml": ""}),
     ["report", "r"], "field 'epoch' is '1'"),
    (lambda t: write_files(t / "r", {".trainwell-run": '{"kind": "fit"}', "notes.md": "mine"}),
     ["fit", "--out", "r", "--force", *SPIRALS], "no record of the files trainwell wrote"),
]

USAGE_CASES = [
    (["summary", "--classes", "-5"], "--classes: '-5' is not allowed"),
    (["summary", "--classes", "0"], "--classes: '0' is not allowed"),
    (["prune", *SPIRALS, "--rate", "1.5"], "--rate: '1.5' is not allowed"),
    (["prune", *SPIRALS, "--rounds", "0"], "--rounds: '0' is not allowed"),
    (["lab", "run", "neocognitron", "--quick", "--jobs", "0"], "--jobs 0 is not allowed: use an integer >= 1"),
    (["lab", "run", "capacity", "--quick", "--seed", "-1"], "--seed: '-1' is not allowed: use an integer >= 0"),
    (["lab", "run", "neocognitron", "--quick", "--jobs", "2", "--backend", "ray"], "--jobs 2 runs worker processes"),
]


@pytest.mark.parametrize("args, fragment", USAGE_CASES)
def test_bad_arguments_are_usage_errors_before_any_work(workdir, capsys, args, fragment):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not (workdir / "runs").exists()


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
@pytest.mark.parametrize("setup, args, fragment", FILE_CASES)
def test_bad_files_and_runs(workdir, capsys, setup, args, fragment):
    setup(workdir)
    capsys.readouterr()
    assert main([*args, "--quiet"] if args[0] == "fit" else args) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow  # 0.30 s each on a 2-core CPU (RESULTS §51)
def test_report_skips_metric_lines_that_are_not_objects(workdir, capsys):
    assert main(["fit", *SPIRALS, "--quiet", "--out", "r"]) == 0
    with open(workdir / "r" / "metrics.jsonl", "a") as f:
        f.write("[1, 2]\n42\n\"text\"\n")
    assert main(["report", "r"]) == 0


def test_first_layer_figure_of_an_mlp_on_colour_images(tmp_path):
    import torch

    from trainwell.viz.plots import first_layer_weights

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 5), torch.nn.ReLU(),
                                torch.nn.Linear(5, 10))
    assert first_layer_weights(model, (3, 32, 32), tmp_path / "w.png").stat().st_size > 0
