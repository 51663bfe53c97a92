"""Generic machinery behind :mod:`trainwell.config`: dataclasses from plain dicts with type checks, dotted
``--set`` overrides, TOML reading and writing. Every failure is a one-line :class:`ConfigError`."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from trainwell.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        return repr(choices[0]) if len(choices) == 1 else "one of " + ", ".join(repr(a) for a in choices)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        plural = {int: "integers", float: "numbers", bool: "booleans", str: "strings", dict: "tables"}.get(item)
        return f"a list of {plural or _type_name(item)}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a table"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


# values people bring from other libraries, and what trainwell calls them
_VALUE_HINTS = {
    ("optim.name", "adamw"): "AdamW is optim.name = 'adam' with optim.decay = 'decoupled'",
    ("optim.name", "nesterov"): "Nesterov is optim.name = 'momentum' with optim.nesterov = true",
}


def suggest(word, choices) -> str:
    """``"did you mean 'x'? "`` for the choice closest to ``word`` (difflib), or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _literal_error(tp, value, key: str) -> ConfigError:
    """The error for ``value`` outside a Literal's choices: the full list of choices, after a hint (a known alias,
    or the nearest choice) when there is one."""
    hint = ""
    if isinstance(value, str):
        hint = _VALUE_HINTS.get((key, value.lower())) or suggest(value, typing.get_args(tp)).rstrip("? ")
    if hint:
        return ConfigError(f"{key} = {shown(value)} is not allowed: {hint}{'? U' if hint.startswith('did') else '; u'}"
                           f"se {_type_name(tp)}")
    return ConfigError(f"{key} = {shown(value)} is not allowed: use {_type_name(tp)}")


def shown(value) -> str:
    """A value as the user wrote it in TOML: ``true``/``false`` for booleans, ``1e+09`` for a large whole float,
    strings quoted, anything else as Python prints it.

    >>> shown(True), shown(1e9), shown("adam"), shown([1, 2])
    ('true', '1e+09', "'adam'", '[1, 2]')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e6:
        return f"{value:g}"
    return repr(value)


def _coerce_union(tp, value, key: str):
    """The first member type of ``tp`` that takes ``value`` (e.g. "auto" or an int, a number or "find"); None for
    ``None`` or "none" when the union allows it."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if type(None) in typing.get_args(tp) and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    for arg in args[:-1]:
        try:
            return _coerce(arg, value, key)
        except ConfigError:
            continue
    try:
        return _coerce(args[-1], value, key)
    except ConfigError:
        raise ConfigError(f"{key} = {shown(value)} is not allowed: use {_type_name(tp)}") from None


def _takes(tp, value) -> bool:
    """Whether a plain type (bool, int, float, str, dict) takes ``value`` as it is (a bool is not a number)."""
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return (tp is dict or typing.get_origin(tp) is dict) and isinstance(value, dict)


def _coerce(tp, value, key: str):
    """Convert ``value`` to type ``tp`` or raise a ConfigError naming ``key`` (and the nearest allowed value)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool):
            raise _literal_error(tp, value, key)
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(tp, value, key)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin is not list and _takes(tp, value):
        return float(value) if tp is float else dict(value) if isinstance(value, dict) else value
    raise ConfigError(f"{key} = {shown(value)} is not allowed: use {_type_name(tp)}")


@functools.cache
def _fields(cls) -> tuple[dict, list[str]]:
    """Dataclass ``cls``'s resolved type hints and field names (resolving the hints is most of a config's parse
    time, and they never change)."""
    return typing.get_type_hints(cls), [f.name for f in dataclasses.fields(cls)]


def to_plain(value):
    """``dataclasses.asdict`` for a config's field types, without its deep copy of immutable values: dataclasses
    become dicts, lists, tuples and dicts are copied, numbers, strings and None are shared, anything else is
    deep-copied as ``asdict`` does."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: to_plain(getattr(value, name)) for name in _fields(type(value))[1]}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple: its fields positionally
        return type(value)(*(to_plain(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    if isinstance(value, dict):
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return copy.deepcopy(value)


def _sections_with(cls, key: str) -> list[str]:
    """The tables of dataclass ``cls`` that have a field ``key`` (``epochs`` -> ``["train"]``)."""
    hints, names = _fields(cls)
    return [n for n in names if dataclasses.is_dataclass(hints[n]) and isinstance(hints[n], type)
            and key in _fields(hints[n])[1]]


def _unknown_key(dotted: str, prefix: str, names: list[str], cls=None) -> ConfigError:
    """``unknown config key 'optim.lrr': did you mean 'optim.lr'? allowed keys in optim are ...``; a table's key
    written outside its table (``epochs = 3`` above ``[train]``) is sent to its table."""
    homes = _sections_with(cls, dotted.rsplit(".", 1)[-1]) if cls is not None else []
    if homes:
        where = " or ".join(f"{h}.{dotted.rsplit('.', 1)[-1]}" for h in homes)
        return ConfigError(f"unknown config key {dotted!r}: it belongs to a table; write {where} (in a file, under "
                           f"its [table] header: a key above the first header belongs to no table)")
    hint = suggest(dotted, [f"{prefix}.{n}" if prefix else n for n in names])
    return ConfigError(f"unknown config key {dotted!r}: {hint}allowed keys in {prefix or 'config'} are "
                       f"{', '.join(names)}")


def check_field(cls, dotted: str) -> None:
    """Refuse a dotted key (``train.epoch``) that names no field of dataclass ``cls`` or of the tables nested in it,
    with the error an unknown key in a config file gets (the nearest key, the allowed ones). What lies inside a
    field that is not a table of fields (``data.options``, a dict of free keys) is not judged here."""
    prefix = ""
    for part in dotted.split("."):
        if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
            return
        hints, names = _fields(cls)
        key = f"{prefix}.{part}" if prefix else part
        if part not in names:
            raise _unknown_key(key, prefix, names, cls)
        cls, prefix = hints[part], key


def from_dict(cls, data, prefix: str = ""):
    """Build dataclass ``cls`` from a plain dict, rejecting unknown keys and wrong types."""
    where = prefix or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} = {data!r} is not allowed: use a table")
    hints, names = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise _unknown_key(dotted, prefix, names, cls)
        kwargs[key] = _coerce(hints[key], value, dotted)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def _merge(base: dict, extra: dict) -> dict:
    """Deep-merge ``extra`` onto a copy of ``base``: tables merge, everything else (lists too) replaces."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


MAX_DEPTH = 32  # tables and arrays nested deeper than this are a mistake (and would exhaust the stack)


def _depth(value, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _loads(text: str, where: str) -> dict:
    """``tomllib.loads`` that refuses values nested deeper than :data:`MAX_DEPTH` with a one-line error."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        data = None
    if data is None or _depth(data) > MAX_DEPTH:
        raise ConfigError(f"{where} nests tables or arrays more than {MAX_DEPTH} levels deep: not allowed")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``"a.b=value"`` into a key path and a TOML-parsed value (bare words stay strings)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r} is not allowed: use key=value, e.g. --set optim.lr=0.01")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r} is not allowed: the key must be dotted names, e.g. model.hidden")
    try:
        value = _loads(f"v = {raw}", f"--set {key}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return ``raw`` with each ``key=value`` override set at its dotted path."""
    out = copy.deepcopy(raw)
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else child
                if not isinstance(child, dict):
                    raise ConfigError(f"--set {item!r}: {part!r} is not a table and has no keys")
                node[part] = child
            node = child
        node[path[-1]] = value
    return out


def read_toml(path: str | Path) -> dict:
    """Read a TOML file, turning I/O and syntax problems into one-line ConfigErrors."""
    p = Path(path)
    if p.suffix.lower() != ".toml":
        _refuse_data_file(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(p)!r} is a folder: give a .toml file (a run folder's config.toml), or "
                          f"continue a run with --resume {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {exc}") from None
    try:
        return _loads(text, f"config file {str(p)!r}")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None


def _refuse_data_file(p: Path) -> None:
    """A data file given where a config goes (``trainwell fit iris.csv``): the settings that train on it."""
    from trainwell.data.file_kinds import READERS

    name = READERS.get(p.suffix.lower())
    if name is not None and p.is_file():
        import shlex

        table = (" --set model.kind=mlp (the label column, a delimiter, id columns and image pixels are data.options: "
                 "README, 'Your own data')") if name == "csv" else ""
        raise ConfigError(f"{str(p)!r} is a data file, not a config (TOML): train on it with --set data.name={name} "
                          f"--set {shlex.quote(f'data.root={p}')}{table}")


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(cfg) -> str:
    """Write the resolved config as TOML that :func:`load_config` reads back to an equal Config."""
    data = cfg.to_dict()
    lines = []
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml_value(value)}")
    for section, values in data.items():
        if not isinstance(values, dict):
            continue
        lines.append(f"\n[{section}]")
        for key, value in values.items():
            if value is None:
                continue  # TOML has no null: an absent key means the default, which is None
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
