import dataclasses
import math

import pytest

from trainwell.config import (
    Config,
    StopConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    parse_override,
    to_toml,
)
from trainwell.errors import ConfigError
from trainwell.optim import OPTIMIZERS, SCHEDULES
from trainwell.train.stopping import CRITERIA


def test_defaults_are_valid_and_required_keys_exist():
    cfg = load_config(None)
    for dotted in ("data.name", "model.kind", "optim.name", "optim.lr", "optim.weight_decay", "train.epochs",
                   "train.batch_size", "train.seed"):
        section, key = dotted.split(".")
        assert hasattr(getattr(cfg, section), key)


def test_overrides_parse_toml_values():
    cfg = load_config(None, ["optim.lr=0.003", "model.kind=mlp", "model.hidden=[32, 16]", "train.epochs=7",
                             "optim.nesterov=true", "optim.name=momentum", "data.options={arms = 5}"])
    assert cfg.optim.lr == 0.003 and cfg.model.kind == "mlp" and cfg.model.hidden == [32, 16]
    assert cfg.train.epochs == 7 and cfg.optim.nesterov is True and cfg.data.options == {"arms": 5}


def test_int_accepted_for_float_but_not_bool_for_int():
    assert load_config(None, ["optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(None, ["train.epochs=true"])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("foo.bar=1", "unknown config key 'foo'"),
        ("optim.lrr=1", "unknown config key 'optim.lrr'"),
        ("optim.lr=fast", "optim.lr = 'fast' is not allowed: use a number"),
        ("optim.lr=-0.1", "optim.lr = -0.1 is not allowed"),
        ("optim.name=lbfgs", "one of 'sgd', 'momentum', 'rmsprop', 'adam', 'adagrad'"),
        ("train.batch_size=0", "train.batch_size = 0"),
        ("model.hidden=[0]", "model.hidden[0] = 0"),
        ("model.hidden=[1.5]", "model.hidden[0] = 1.5"),
        ("data.val_fraction=1.0", "data.val_fraction = 1.0"),
        ("optim.betas=[0.9]", "optim.betas"),
        ("optim.nesterov=true", "optim.nesterov = true is not allowed with optim.name = 'adam'"),
        ("train.epochs", "use key=value"),
        ("optim.lr=nan", "optim.lr = nan"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    msg = str(err.value)
    assert fragment in msg
    assert "\n" not in msg


def test_toml_round_trip_gives_equal_config(tmp_path):
    cfg = load_config(None, ["preprocess.kind=pca", "preprocess.n_components=5", "optim.lr=1e-4",
                             "data.options={arms = 4, noise = 0.5}", "name=round-trip"])
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    again = load_config(path)
    assert again == cfg
    assert again.hash() == cfg.hash()


def test_hash_changes_with_any_field_and_is_stable():
    a, b = Config(), Config()
    assert a.hash() == b.hash()
    b.optim.lr = 0.5
    assert a.hash() != b.hash()


def test_missing_and_invalid_files_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim\nlr = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_blocks_list_replaces_default_rather_than_merging():
    cfg = config_from_dict({"model": {"blocks": [{"type": "conv", "channels": 4}]}})
    assert cfg.model.blocks == [{"type": "conv", "channels": 4}]


def test_parse_override_keeps_bare_words_as_strings():
    assert parse_override("data.name=fashion-mnist") == (["data", "name"], "fashion-mnist")
    path, value = parse_override("optim.lr=inf")
    assert math.isinf(value)


def test_apply_overrides_does_not_mutate_input():
    raw = {"optim": {"lr": 1.0}}
    out = apply_overrides(raw, ["optim.lr=2"])
    assert raw["optim"]["lr"] == 1.0 and out["optim"]["lr"] == 2


@pytest.mark.parametrize("override, message", [
    # an unknown key: the nearest key first, then every allowed key of the section, the near one included
    ("stop.patiense=3", "unknown config key 'stop.patiense': did you mean 'stop.patience'? allowed keys in stop are "
                        + ", ".join(f.name for f in dataclasses.fields(StopConfig))),
    # a known alias from another library: what trainwell calls it, then the whole list of choices
    ("optim.name=adamw", "optim.name = 'adamw' is not allowed: AdamW is optim.name = 'adam' with optim.decay = "
                         "'decoupled'; use one of " + ", ".join(repr(n) for n in OPTIMIZERS)),
    ("optim.name=nesterov", "Nesterov is optim.name = 'momentum' with optim.nesterov = true; use one of 'sgd'"),
    # a misspelt choice: the nearest one, then the whole list
    ("train.loss=hinje", "train.loss = 'hinje' is not allowed: did you mean 'hinge'? Use one of 'cross_entropy', "
                         "'hinge', 'mse'"),
    ("stop.criteria=['early_stoping']", "stop.criteria[0] = 'early_stoping' is not allowed: did you mean "
                                        "'early_stopping'? Use one of " + ", ".join(repr(n) for n in CRITERIA)),
    # nothing close: no guess, the whole list
    ("optim.schedule=zzz", "optim.schedule = 'zzz' is not allowed: use one of "
                           + ", ".join(repr(n) for n in SCHEDULES)),
])
def test_errors_suggest_the_nearest_name_and_never_cut_the_list(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_to_dict_equals_dataclasses_asdict_and_shares_nothing_mutable():
    """``Config.to_dict`` is ``dataclasses.asdict`` (the oracle) without its deep copy of immutable values: equal
    nested dicts, and lists that are copies (changing them leaves the config as it was)."""
    cfg = load_config(None, ["model.kind=mlp", "model.hidden=[30,20]", "stop.criteria=['early_stopping','loss_change']",
                             "optim.betas=[0.8,0.99]", "data.name=circles"])
    for c in (Config(), cfg):
        plain = c.to_dict()
        assert plain == dataclasses.asdict(c)
        assert type(plain["model"]["hidden"]) is type(c.model.hidden)
        assert type(plain["optim"]["betas"]) is type(c.optim.betas)
    plain = cfg.to_dict()
    plain["model"]["hidden"].append(5)
    plain["stop"]["criteria"].clear()
    assert cfg.model.hidden == [30, 20] and list(cfg.stop.criteria) == ["early_stopping", "loss_change"]


def test_a_model_key_the_models_kind_does_not_read_is_refused_when_set():
    with pytest.raises(ConfigError, match=r"--set model.hidden is not read by model.kind = 'cnn'.*model.kind=mlp"):
        load_config(None, ["model.hidden=[64]"])
    with pytest.raises(ConfigError, match=r"--set model.blocks is not read by model.kind = 'mlp'"):
        load_config(None, ["model.kind=mlp", "model.blocks=[]"])
    assert load_config(None, ["model.kind=mlp", "model.hidden=[64]"]).model.hidden == [64]
    assert load_config(None, ["model.dense=[16]"]).model.dense == [16]


def test_a_config_files_model_key_its_own_kind_does_not_read_is_refused(tmp_path):
    path = tmp_path / "mlp.toml"
    path.write_text('[model]\nkind = "mlp"\ndense = [32]\n')
    with pytest.raises(ConfigError, match=r"mlp.toml: \[model\] sets dense, which model.kind = 'mlp' does not read"):
        load_config(path)
    assert load_config(path, ["model.kind=cnn"]).model.dense == [32]  # the kind changed on purpose: read
    with pytest.raises(ConfigError, match="sets dense"):  # set to the file's own kind: nothing changed
        load_config(path, ["model.kind=mlp"])
    (tmp_path / "cnn.toml").write_text('[model]\nhidden = [64]\n')  # the default kind is the CNN
    with pytest.raises(ConfigError, match=r"sets hidden, which model.kind = 'cnn' does not read"):
        load_config(tmp_path / "cnn.toml")
    (tmp_path / "ok.toml").write_text('[model]\nkind = "mlp"\nhidden = [64]\n')
    assert load_config(tmp_path / "ok.toml").model.hidden == [64]


def test_n_components_takes_a_share_of_the_variance_and_errors_show_values_as_toml_writes_them():
    assert load_config(None, ["preprocess.kind=pca", "preprocess.n_components=0.95"]).preprocess.n_components == 0.95
    assert load_config(None, ["preprocess.kind=pca", "preprocess.n_components=5"]).preprocess.n_components == 5
    with pytest.raises(ConfigError, match=r"n_components = 1.5 is not allowed: use an integer >= 1 .* or a float"):
        load_config(None, ["preprocess.n_components=1.5"])
    with pytest.raises(ConfigError, match=r"^regularize.l2 = true is not allowed: use a number$"):
        load_config(None, ["regularize.l2=true"])
    with pytest.raises(ConfigError, match=r"^train.epochs = 1e\+09 is not allowed"):
        load_config(None, ["train.epochs=1e9"])


def test_an_older_runs_config_missing_a_field_or_a_table_is_still_read(tmp_path):
    from trainwell.config_io import to_toml
    from trainwell.config_reads import unread_notes

    text = to_toml(load_config(None, ["model.kind=mlp"]))  # a whole config: the CNN's blocks recorded beside kind
    old = "\n".join(line for line in text.splitlines() if not line.startswith(("geometry", "warmup_fraction")))
    path = tmp_path / "config.toml"
    path.write_text(old)
    cfg = load_config(path)
    assert cfg.model.kind == "mlp" and unread_notes(cfg, path, []) == []


def test_a_files_keys_of_both_kinds_are_read_by_a_grid_over_the_kind(tmp_path):
    path = tmp_path / "both.toml"
    path.write_text('[model]\nkind = "mlp"\nhidden = [16]\ndense = [8]\n')
    with pytest.raises(ConfigError, match="sets dense"):
        load_config(path)
    assert load_config(path, kind_varies=True).model.dense == [8]


def test_a_relative_data_root_is_recorded_from_the_current_folder(tmp_path, monkeypatch):
    """A run's config.toml must find the files again from any folder (a resume, a worker): the relative root
    the user typed is made absolute against the folder the command runs in; '~' is expanded."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["data.name=mnist", "data.root=my_data"])
    assert cfg.data.root == str(tmp_path / "my_data")
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "mnist"\nroot = "../elsewhere"\n')
    assert Path(load_config(path).data.root) == tmp_path / ".." / "elsewhere"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_config(None, ["data.root=~/d"]).data.root == str(tmp_path / "d")
    assert load_config(None, []).data.root == ""
