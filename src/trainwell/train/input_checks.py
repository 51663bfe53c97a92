"""What inputs a model's floating-point layers cannot take: floating inputs of another dtype than the parameters
(NumPy's float64 against float32 weights) and integer inputs (uint8 pixels) met by a floating-point layer; each
named in one line with the conversion to make."""

from __future__ import annotations

import torch


def check_input_dtype(x: torch.Tensor, param: torch.Tensor | None, what: str) -> None:
    """Refuse floating inputs ``x`` of another dtype than the model's parameter ``param`` (NumPy's float64
    against float32 weights), naming both conversions; integer inputs are not judged here."""
    if not x.is_floating_point() or param is None or param.dtype == x.dtype:
        return
    np_hint = " (NumPy's default)" if x.dtype == torch.float64 else ""
    have, want = (str(t).removeprefix("torch.") for t in (x.dtype, param.dtype))
    numpy = f", or x.astype(np.{want}) for a NumPy array" if want in ("float16", "float32", "float64") else ""
    raise TypeError(f"{what} inputs are {have}{np_hint} but the model's parameters are {want}: convert the "
                    f"inputs (x.to(torch.{want}){numpy}) or the model (model.to(torch.{have}))")


_DTYPE_MISMATCH = ("same dtype", "should be the same", "scalar type")  # torch's words for mixed dtypes


def integer_inputs_hint(x: torch.Tensor, error: RuntimeError, what: str = "train") -> str | None:
    """The one-line message for ``error``, raised by a model's forward on integer inputs ``x`` (uint8 pixels, say)
    when a layer computes in floating point; None for any other error (a model may take integers: an embedding,
    or a forward that converts them itself)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if x.is_floating_point() or x.is_complex() or not any(s in first for s in _DTYPE_MISMATCH):
        return None
    return integer_inputs_message(x, what, f"the model met them in a floating-point layer ({first})",
                                  " or in the model's forward")


def integer_inputs_message(x: torch.Tensor, what: str, met: str, elsewhere: str = "") -> str:
    """``{what} inputs are uint8, and {met}: convert them (x.float() / 255 for 0..255 pixels){elsewhere}``."""
    have = str(x.dtype).removeprefix("torch.")
    pixels = " / 255 for 0..255 pixels" if x.dtype == torch.uint8 else ""
    return f"{what} inputs are {have}, and {met}: convert them (x.float(){pixels}){elsewhere}"
