"""Whose words the init advice uses. :func:`trainwell.doctor.check` on a user's own model names torch's calls
(``nn.init.kaiming_normal_(layer.weight, nonlinearity='relu')``) and :func:`trainwell.init.apply`; the
``trainwell`` pipeline's pre-flight, which builds the model from a config, names the config keys
(``init.scheme = he_normal``). The pipeline runs its checks inside :func:`config_voice`."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_CONFIG = contextvars.ContextVar("trainwell_doctor_config_voice", default=False)

#: torch's own call per scheme the checks advise
TORCH_CALL = {"he_normal": "nn.init.kaiming_normal_(layer.weight, nonlinearity='relu')",
              "xavier_uniform": "nn.init.xavier_uniform_(layer.weight)"}


@contextlib.contextmanager
def config_voice() -> Iterator[None]:
    """Within this block the checks' init advice names the config keys (the pipeline's pre-flight)."""
    token = _CONFIG.set(True)
    try:
        yield
    finally:
        _CONFIG.reset(token)


def speaks_config() -> bool:
    return _CONFIG.get()


def init_fix(scheme: str, detail: str = "") -> str:
    """How to initialize with ``scheme`` ('he_normal', 'xavier_uniform'), in the caller's words; ``detail`` (the
    scheme's formula) follows the config key."""
    if speaks_config():
        return f"init.scheme = {scheme}" + (f" ({detail})" if detail else "")
    if scheme == "he_normal":  # He's factor 2 is for a layer a ReLU follows: the output layer's scores would be
        # ~2x the size of uniform ones, and the initial loss far above ln C
        return (f"{TORCH_CALL[scheme]} on each hidden layer, small weights on the output layer "
                f"(nn.init.normal_(weight, std=0.01)) (or trainwell.init.apply(model, \"{scheme}\"))")
    return f"{TORCH_CALL[scheme]} on each layer (or trainwell.init.apply(model, \"{scheme}\"))"


def bias_fix() -> str:
    """Where the biases' initial value is set, in the caller's words."""
    return "init.bias" if speaks_config() else "the layers' bias init"
