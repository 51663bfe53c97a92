"""trainwell: the practice of training neural networks well, runnable on PyTorch."""

__version__ = "0.1.0"

from trainwell.errors import ConfigError, DataError, TrainwellError  # noqa: E402

__all__ = ["ConfigError", "DataError", "TrainwellError", "__version__"]
