"""Property-based tests: random TOML, random config tables and random bytes give a valid result or the clean
error, never another exception."""

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainwell.config import Config, config_from_dict, load_config
from trainwell.data.files import parse_idx, read_cifar_batch, safe_unpickle
from trainwell.errors import ConfigError, DataError

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["adam", "mlp", "cnn", "relu", "batch", "none", "mnist1d", "spirals"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
SECTIONS = {name: list(getattr(Config(), name).__dataclass_fields__) for name in
            ("data", "preprocess", "model", "init", "optim", "train", "stop", "report")}
known_key_tables = st.sampled_from(sorted(SECTIONS)).flatmap(
    lambda sec: st.dictionaries(st.sampled_from(SECTIONS[sec]), values, max_size=4).map(lambda d: {sec: d}))


@SETTINGS
@given(st.one_of(known_key_tables, st.dictionaries(st.text(max_size=10), values, max_size=4)))
@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_config_tables_parse_or_fail_cleanly(raw):
    try:
        cfg = config_from_dict(raw)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(cfg, Config)


@SETTINGS
@given(st.text(max_size=200))
def test_random_toml_text_parses_or_fails_cleanly(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("toml") / "c.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError:
        pass


@SETTINGS
@given(st.lists(st.sampled_from(["optim.lr", "train.epochs", "model.hidden", "data.name", "stop.criteria",
                                 "model.blocks", "x.y", "optim"]), max_size=3),
       st.lists(st.text(max_size=15), max_size=3))
def test_random_overrides_parse_or_fail_cleanly(keys, raw_values):
    overrides = [f"{k}={v}" for k, v in zip(keys, raw_values, strict=False)]
    try:
        load_config(None, overrides)
    except ConfigError:
        pass


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_are_an_idx_array_or_a_clean_error(raw):
    try:
        arr = parse_idx(raw)
    except DataError:
        return
    assert isinstance(arr, np.ndarray)


@SETTINGS
@given(st.binary(min_size=0, max_size=64).map(lambda b: b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03" + b))
def test_idx_headers_with_random_payloads(raw):
    try:
        arr = parse_idx(raw)
    except DataError:
        return
    assert arr.shape == (2, 3) and len(raw) == 12 + 6


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_are_refused_or_a_clean_error_by_the_unpickler(raw):
    try:
        safe_unpickle(raw)
    except DataError:
        pass


@SETTINGS
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=60))
def test_corrupted_cifar_batches_load_or_fail_cleanly(tmp_path_factory, noise, cut):
    good = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2)
    raw = good[:cut] + noise + good[cut + len(noise):]
    path = tmp_path_factory.mktemp("cifar") / "b"
    path.write_bytes(raw)
    try:
        x, y = read_cifar_batch(path)
    except DataError:
        return
    assert x.shape[1:] == (3, 32, 32) and len(x) == len(y)
