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


def conv_output_size(W: int, F: int, S: int = 1, P: int = 0, *, D: int = 1, where: str = "conv",
                     strict: bool = True) -> int:
    """Return (W - F + 2P)/S + 1, or raise GeometryError if it is not a positive integer.

    A dilation ``D`` (torch's ``dilation``) spreads the F taps D pixels apart: the filter spans D(F - 1) + 1
    pixels, and that span takes F's place in the formula.

    With ``strict=False`` a fractional size is floored, as torch does (the last (W - F + 2P) mod S input
    rows/columns are then never seen: the doctor warns about it).

    Example:
        >>> conv_output_size(227, 11, 4, 0)  # AlexNet conv1
        55

    Raises:
        GeometryError: with the lecture's formula filled in and the strides that would fit.
        TypeError: a size that is not an integer (a float such as 32.5 or 32.0, a bool).
    """
    bad = next((f"{n}={v!r}" for n, v in (("W", W), ("F", F), ("S", S), ("P", P), ("D", D))
                if isinstance(v, bool) or not isinstance(v, numbers.Integral)), None)
    if bad is not None:
        raise TypeError(f"{where}: {bad} is not allowed: W, F, S and P are whole numbers of pixels, D the "
                        f"taps' spacing (integers; a size read from a tensor's shape is one)")
    if S < 1 or F < 1 or P < 0 or W < 1 or D < 1:
        raise GeometryError(f"{where}: W={W}, F={F}, S={S}, P={P}, D={D} is not allowed: need W, F, S, D >= 1 and "
                            f"P >= 0")
    if D > 1:  # the dilated filter's span stands for F in the formula and the messages
        F = D * (F - 1) + 1
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


def same_padding(F: int, S: int = 1, *, D: int = 1) -> int:
    """Zero padding that keeps the spatial size: P = D(F - 1) / 2 with stride 1, for a filter of F taps dilated by
    D (its span D(F - 1) + 1 must be odd: an odd F, or an even dilation). torch's ``padding="same"`` gives the same.

    Raises:
        GeometryError: for a filter whose span is even or a stride other than 1 (no padding keeps the size then),
            or a dilation below 1.
    """
    if S != 1:
        raise GeometryError(f"'same' padding needs stride 1, got S={S}: the output shrinks by a factor of S")
    if isinstance(D, bool) or not isinstance(D, numbers.Integral) or D < 1:
        raise GeometryError(f"same_padding: D={D!r} is not allowed: the dilation is a whole number >= 1")
    if D * (F - 1) % 2 != 0:
        if D == 1:
            raise GeometryError(f"'same' padding needs an odd filter size, got F={F}: use F={F - 1} or F={F + 1}")
        raise GeometryError(f"'same' padding needs a filter spanning an odd number of pixels, got F={F} dilated by "
                            f"D={D}, spanning {D * (F - 1) + 1}: use an odd F or an even D")
    return D * (F - 1) // 2
