"""The one fit loop (a :class:`Trainer` driving a learner of one model or a population), its callbacks and its
progress display."""

from trainwell.train.callbacks import Callback, State
from trainwell.train.learners import ModuleLearner
from trainwell.train.trainer import Trainer, evaluate, loss_function

__all__ = ["Callback", "ModuleLearner", "State", "Trainer", "evaluate", "loss_function"]
