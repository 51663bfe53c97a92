"""A trainer's state in a checkpoint: the learner's, the RNGs', the position and history, each member's, and the
callbacks' (keyed by :func:`callback_keys`). :class:`~trainwell.train.trainer.Trainer` saves and restores through
these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainwell.train.callbacks import Callback


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj


def callback_keys(callbacks: Sequence[Callback]) -> list[str]:
    """The keys of the callbacks' states in a checkpoint: the class name, and for the 2nd, 3rd... callback of one
    class ``Name#1``, ``Name#2``... (in list order, so the same callbacks get the same keys on resume)."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        name = type(cb).__name__
        n = seen.get(name, 0)
        keys.append(name if n == 0 else f"{name}#{n}")
        seen[name] = n + 1
    return keys


def _callback_states(callbacks: Sequence[Callback]) -> dict:
    return {key: cb.state_dict() for key, cb in zip(callback_keys(callbacks), callbacks, strict=True)}


def _load_callback_states(callbacks: Sequence[Callback], saved: dict) -> None:
    """Restore each callback's state by its key; a checkpoint from before the keys were numbered (one state per
    class name) gives that state to every callback of the class, as it was saved."""
    for key, cb in zip(callback_keys(callbacks), callbacks, strict=True):
        name = type(cb).__name__
        if key in saved:
            cb.load_state_dict(saved[key])
        elif key != name and name in saved and f"{name}#1" not in saved:
            cb.load_state_dict(saved[name])


def checkpoint_state(trainer, copy: bool = False) -> dict:
    """Everything needed to continue exactly: weights, optimizer, schedule, RNGs, position, history.

    With ``copy=True`` the tensors are cloned, so the snapshot survives further training. A population adds
    each member's history and stop reason (``members``).
    """
    state = {
        **trainer.learner.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "epoch": trainer.state.epoch,
        "step": trainer.state.step,
        "history": list(trainer.state.history),
    }
    if trainer._loader_rngs:
        state["loader_generators"] = [g.get_state() for g in trainer._loader_rngs]
    if trainer.single:
        state["generator"] = trainer.generators[0].get_state()
    else:
        state["generators"] = [g.get_state() for g in trainer.generators]
        state["members"] = [{"epoch": s.epoch, "step": s.step, "history": list(s.history), "stop": s.stop}
                            for s in trainer.members]
    return _clone(state) if copy else state

def callback_states(trainer) -> dict:
    """The stateful callbacks' states, saved beside :meth:`checkpoint_state` in a checkpoint."""
    out = {"callbacks": _callback_states(trainer.callbacks)}
    if not trainer.single:
        out["member_callbacks"] = [_callback_states(cbs) for cbs in trainer.member_callbacks]
    return out


def finished_stop(stop) -> str | None:
    """A checkpoint's stop reason if it ended the run (a criterion or guard fired), else None: a run stopped by a
    signal (``"interrupted by ..."``) or not stopped at all goes on when resumed."""
    return stop if stop and not str(stop).startswith("interrupted") else None


def load_checkpoint_state(trainer, ckpt: dict) -> None:
    """Restore :meth:`checkpoint_state` (and callbacks' states saved beside it); the next fit continues.

    A checkpoint whose run a stopping criterion or guard ended (``Checkpoint``'s ``last.pt`` holds its ``"stop"``
    reason) restores that reason into ``trainer.state.stop``, and the next fit trains no further, as ``trainwell fit
    --resume`` keeps such a run ended; a population's members keep their own saved stop reasons the same way.
    """
    trainer.learner.load_state_dict(ckpt)
    trainer._pending_loader_rng = ckpt.get("loader_generators")  # applied to the loader the next fit gets
    if trainer.single:
        trainer.generators[0].set_state(ckpt["generator"])
    else:
        for g, s in zip(trainer.generators, ckpt["generators"], strict=True):
            g.set_state(s)
        for st, saved in zip(trainer.members, ckpt["members"], strict=True):
            st.epoch, st.step, st.stop = saved["epoch"], saved["step"], finished_stop(saved["stop"])
            st.history = list(saved["history"])
            st.metrics = st.history[-1] if st.history else {}
    torch.set_rng_state(ckpt["torch_rng"])
    if ckpt.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    trainer.state.epoch = ckpt["epoch"]
    trainer.state.step = ckpt["step"]
    trainer.state.history = list(ckpt["history"])
    trainer.state.metrics = trainer.state.history[-1] if trainer.state.history else {}
    trainer.state.stop = finished_stop(ckpt.get("stop"))  # a run a criterion ended stays ended
    _load_callback_states(trainer.callbacks, ckpt.get("callbacks", {}))
    for cbs, saved in zip(trainer.member_callbacks, ckpt.get("member_callbacks", []), strict=False):
        _load_callback_states(cbs, saved)
