"""The one fit loop (a :class:`Trainer` driving a learner of one model or a population), its callbacks and its
progress display."""

from trainwell.train.callbacks import Callback, Checkpoint, State
from trainwell.train.learners import ModuleLearner
from trainwell.train.loggers import CSVLogger, TensorBoardLogger
from trainwell.train.stopping import EarlyStopping, GeneralizationLoss
from trainwell.train.trainer import Trainer, evaluate, loss_function

__all__ = ["CSVLogger", "Callback", "Checkpoint", "EarlyStopping", "GeneralizationLoss", "ModuleLearner", "State",
           "TensorBoardLogger", "Trainer", "evaluate", "loss_function"]
