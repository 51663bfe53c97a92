import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory, monkeypatch):
    """Keep the MNIST-1D cache in one temp folder per session and run each test in a fresh working dir."""
    monkeypatch.setenv("TRAINWELL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.manual_seed(0)
    yield


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


os.environ.setdefault("MPLBACKEND", "Agg")
