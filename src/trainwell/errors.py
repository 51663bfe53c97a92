"""Exceptions that carry a one-line message meant for the user.

Library code raises :class:`TrainwellError` (a subclass of ``ValueError``, so ``except ValueError`` still catches
it) for what the user asked for wrongly; its messages name the Python parameters (``rounds``, ``grid``). The CLI
turns any :class:`TrainwellError` into that one line and exit code 2, rewording a :class:`ParameterError` with its
own flag (``--rounds``); any other exception is a bug and keeps its traceback.
"""


class TrainwellError(ValueError):
    """A problem with what the user asked for: bad config, bad data, impossible geometry."""


class ConfigError(TrainwellError):
    """A config key, type or value that is not allowed."""


class ParameterError(ConfigError):
    """A value a function's parameter does not allow, e.g. ``lottery(cfg, rounds=0)``.

    The message reads ``rounds=0 is not allowed: use an integer >= 1``; a front end names the parameter its own
    way with :meth:`worded` (the CLI: ``--rounds 0 is not allowed: use an integer >= 1``).

    Example:
        >>> err = ParameterError("rounds", 0, "is not allowed: use an integer >= 1")
        >>> str(err)
        'rounds=0 is not allowed: use an integer >= 1'
        >>> err.worded("--rounds")
        '--rounds 0 is not allowed: use an integer >= 1'
    """

    def __init__(self, param: str, value, rule: str):
        self.param, self.value, self.rule = param, value, rule
        super().__init__(f"{param}={value!r} {rule}")

    def worded(self, name: str) -> str:
        """The message with the parameter called ``name`` (the value shown as typed)."""
        return f"{name} {self.value} {self.rule}"


class DataError(TrainwellError):
    """A dataset that is unknown, missing, truncated or corrupt."""


class DistributedError(RuntimeError):
    """Under torchrun: another process of the group failed or stopped answering (crashed, killed, timed out).

    The CLI turns it into one line and exit code 1 (a failed run, not a usage error).
    """
