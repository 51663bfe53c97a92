"""A count with its noun in the number that agrees with it: "1 observed step", "6 observed steps".

Example:
    >>> counted(1, "distinct batch"), counted(6, "distinct batch"), counted(0, "validation")
    ('1 distinct batch', '6 distinct batches', '0 validations')
    >>> counted(2, "parameter tensor"), counted(1, "step recorded", "steps recorded")
    ('2 parameter tensors', '1 step recorded')
"""

from __future__ import annotations


def plural(noun: str) -> str:
    """``noun``'s plural, by its last word's English ending ("batch" -> "batches", "entry" -> "entries")."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def counted(n: int, noun: str, many: str | None = None) -> str:
    """``n`` and ``noun``, made plural unless ``n`` is 1 (``many``: the plural where the noun's last word is not
    the one that changes, "steps recorded")."""
    return f"{n} {noun if n == 1 else many or plural(noun)}"


__all__ = ["counted", "plural"]
