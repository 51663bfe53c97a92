"""A user's config file with a key written above its table header, or a block key misspelt."""

import pytest

from trainwell.config import ModelConfig, load_config
from trainwell.errors import ConfigError
from trainwell.nn.models import build_model


def test_a_key_above_the_first_header_is_sent_to_its_table(tmp_path):
    path = tmp_path / "user.toml"
    path.write_text('epochs = 3\n[data]\nname = "spirals"\n[model]\nkind = "mlp"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "unknown config key 'epochs'" in message and "write train.epochs" in message
    assert "did you mean" not in message  # the nearest top-level name (preprocess) was a wrong guess


def test_a_key_of_two_tables_names_both(tmp_path):
    path = tmp_path / "user.toml"
    path.write_text('seed = 1\n[data]\nname = "spirals"\n')
    with pytest.raises(ConfigError, match="write data.seed or train.seed"):
        load_config(path)


def test_a_set_override_without_its_table_is_sent_to_it():
    with pytest.raises(ConfigError, match="write optim.lr "):
        load_config(None, ["lr=0.1"])


def test_an_unknown_top_level_name_keeps_the_nearest_match():
    with pytest.raises(ConfigError, match="did you mean 'model'"):
        load_config(None, ["modle.kind=mlp"])


def test_a_misspelt_block_key_gets_the_nearest_key():
    blocks = [{"type": "conv", "chanels": 8, "kernel": 3}]
    with pytest.raises(ConfigError, match=r"'chanels': did you mean 'channels'\? allowed keys are type, channels"):
        build_model(ModelConfig(kind="cnn", blocks=blocks), (1, 8, 8), 10)
