"""The fit loop, its callbacks and its progress display."""

from trainwell.train.callbacks import Callback, State
from trainwell.train.trainer import Trainer, evaluate, loss_function

__all__ = ["Callback", "State", "Trainer", "evaluate", "loss_function"]
