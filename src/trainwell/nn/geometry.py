"""Geometry of convolution and pooling layers (cs231n, "Convolutional Neural Networks").

A layer with input size W, filter size F, stride S and zero padding P has (W - F + 2P)/S + 1 outputs along that
axis. When that is not an integer the filters do not tile the input: the lecture calls the configuration invalid;
torch floors it and drops the last input columns. trainwell floors too by default (standard architectures such as
a ResNet stem, 7x7 stride 2 padding 3 on 224, do this) and the doctor names the layer; ``model.geometry =
"strict"`` makes it an error.
"""

from __future__ import annotations

import numbers

from trainwell.errors import TrainwellError


class GeometryError(TrainwellError):
    """A convolution or pooling configuration whose output size is not a positive integer."""


def _suggest(W: int, F: int, P: int) -> str:
    span = W - F + 2 * P
    strides = [s for s in range(1, span + 1) if span % s == 0]
    hint = f"strides that fit with P={P}: {strides}" if strides else "no stride fits"
    return f"{hint}; 'same' size needs S=1 and P=(F-1)/2 with an odd F"


def conv_output_size(W: int, F: int, S: int = 1, P: int = 0, *, where: str = "conv", strict: bool = True) -> int:
    """Return (W - F + 2P)/S + 1, or raise GeometryError if it is not a positive integer.

    With ``strict=False`` a fractional size is floored, as torch does (the last (W - F + 2P) mod S input
    rows/columns are then never seen: the doctor warns about it).

    Example:
        >>> conv_output_size(227, 11, 4, 0)  # AlexNet conv1
        55

    Raises:
        GeometryError: with the lecture's formula filled in and the strides that would fit.
        TypeError: a size that is not an integer (a float such as 32.5 or 32.0, a bool).
    """
    bad = next((f"{n}={v!r}" for n, v in (("W", W), ("F", F), ("S", S), ("P", P))
                if isinstance(v, bool) or not isinstance(v, numbers.Integral)), None)
    if bad is not None:
        raise TypeError(f"{where}: {bad} is not allowed: W, F, S and P are whole numbers of pixels (integers; "
                        f"a size read from a tensor's shape is one)")
    if S < 1 or F < 1 or P < 0 or W < 1:
        raise GeometryError(f"{where}: W={W}, F={F}, S={S}, P={P} is not allowed: need W, F, S >= 1 and P >= 0")
    span = W - F + 2 * P
    if span < 0:
        raise GeometryError(
            f"{where}: filter size F={F} is larger than the padded input W+2P={W + 2 * P}: use a smaller filter "
            f"or more padding"
        )
    if span % S != 0 and strict:
        value = span / S + 1
        raise GeometryError(
            f"{where}: output size (W-F+2P)/S+1 = ({W}-{F}+2*{P})/{S}+1 = {value:g} is not an integer: "
            f"change stride or padding ({_suggest(W, F, P)})"
        )
    return span // S + 1


def same_padding(F: int, S: int = 1) -> int:
    """Zero padding that keeps the spatial size: P = (F - 1) / 2 with stride 1 and an odd filter.

    Raises:
        GeometryError: for an even filter or a stride other than 1 (no padding keeps the size then).
    """
    if S != 1:
        raise GeometryError(f"'same' padding needs stride 1, got S={S}: the output shrinks by a factor of S")
    if F % 2 == 0:
        raise GeometryError(f"'same' padding needs an odd filter size, got F={F}: use F={F - 1} or F={F + 1}")
    return (F - 1) // 2
