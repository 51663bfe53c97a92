"""The members' starting states of a population checked against its architecture, before any is loaded: one
line that names the member and what is wrong, where torch's ``load_state_dict`` lists every key over many lines.
"""

from __future__ import annotations

from torch import nn


def check_member_states(model: nn.Module, states: list) -> None:
    """Refuse a member's state that is not a state dict of ``model`` in one line (torch's ``load_state_dict``
    lists every key over several lines; a module given for its state dict fails deep in ``copy``)."""
    expected = set(model.state_dict())
    for m, state in enumerate(states):
        if isinstance(state, nn.Module):
            raise TypeError(f"states[{m}] is a {type(state).__name__} module: give its state_dict() (one state dict "
                            f"per member, e.g. [make_model(seed).state_dict() for seed in seeds])")
        if not isinstance(state, dict):
            raise TypeError(f"states[{m}] is a {type(state).__name__}: give one state dict of "
                            f"{type(model).__name__} per member")
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            seen = f"missing {', '.join(missing[:3])}" if missing else ""
            seen += ("; " if missing and unexpected else "") + (
                f"unexpected {', '.join(unexpected[:3])}" if unexpected else "")
            raise ValueError(f"states[{m}] is not a state dict of {type(model).__name__} ({seen}): give each "
                             f"member the state_dict() of a {type(model).__name__}")
