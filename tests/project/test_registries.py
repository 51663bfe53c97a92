"""The config's choices are the registries' names: a name lives in one registry, and the config's ``Literal``
lists (kept for the one-line errors and the documentation) must list exactly the registered names, in order."""

import typing

import pytest

from trainwell import config, optim
from trainwell.data.registry import DATASETS
from trainwell.doctor import preflight
from trainwell.doctor.loss_kinds import loss_kind
from trainwell.train import learners, stopping


def choices(cls, name: str) -> list:
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) is list:
        (tp,) = typing.get_args(tp)
    return [a for a in typing.get_args(tp) if isinstance(a, str)]


@pytest.mark.parametrize("cls, key, registry", [
    (config.OptimConfig, "name", optim.OPTIMIZERS),
    (config.OptimConfig, "schedule", optim.SCHEDULES),
    (config.TrainConfig, "loss", learners.LOSSES),
    (config.TrainConfig, "precision", learners.PRECISIONS),
    (config.StopConfig, "criteria", stopping.CRITERIA),
])
def test_the_configs_choices_are_the_registrys_names(cls, key, registry):
    assert choices(cls, key) == list(registry)


def test_data_name_is_checked_against_the_dataset_registry():
    assert typing.get_type_hints(config.DataConfig)["name"] is str  # any name; the registry answers
    assert config.DataConfig().name in DATASETS
    from trainwell.data.registry import spec_of
    from trainwell.errors import DataError

    with pytest.raises(DataError) as err:
        spec_of("mnist1")
    assert str(err.value).endswith("allowed are " + ", ".join(DATASETS))  # the whole list, never cut


def test_the_doctor_knows_what_every_training_loss_is():
    assert all(loss_kind(fn) != "unknown" for fn in learners.LOSSES.values())


def test_population_optimizers_are_registered_optimizers_and_every_check_has_a_name():
    assert set(optim.population_optimizers()) <= set(optim.OPTIMIZERS)
    assert len(set(preflight.CHECKS)) == len(preflight.CHECKS) and all(preflight.CHECKS)
