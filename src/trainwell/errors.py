"""Exceptions that carry a one-line message meant for the user.

The CLI turns any :class:`TrainwellError` into that one line and exit code 2.
"""


class TrainwellError(ValueError):
    """A problem with what the user asked for: bad config, bad data, impossible geometry."""


class ConfigError(TrainwellError):
    """A config key, type or value that is not allowed."""


class DataError(TrainwellError):
    """A dataset that is unknown, missing, truncated or corrupt."""


class DistributedError(RuntimeError):
    """Under torchrun: another process of the group failed or stopped answering (crashed, killed, timed out).

    The CLI turns it into one line and exit code 1 (a failed run, not a usage error).
    """
