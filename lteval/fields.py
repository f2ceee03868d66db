"""Type and choice checks of a settings dataclass, against its own annotations.

Settings reach the dataclasses from YAML (``--config``), where ``1e3`` is a string,
``true`` a bool and ``[1, 2]`` a list; ``check_fields`` turns a value of the wrong
kind into a ValueError naming the setting, instead of a crash deep in training or
a silent default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing

KIND = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
"""How messages name a setting's type."""


def _fits(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        (item, *_) = typing.get_args(tp)
        return isinstance(value, tuple | list) and all(_fits(v, item) for v in value)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, tp)
    return True  # an annotation this checker does not know: not checked


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(t) for t in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0]).split(' ', 1)[-1]}s"
    return KIND.get(tp, getattr(tp, "__name__", str(tp)))


def check_fields(obj, choices: dict[str, tuple] | None = None) -> None:
    """Raise ValueError for the first field of dataclass ``obj`` whose value does not
    fit its annotation, or is not one of ``choices[field]``."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not _fits(value, hints[f.name]):
            raise ValueError(f"{f.name} = {value!r} takes {_describe(hints[f.name])}")
        if choices and f.name in choices and value not in choices[f.name]:
            raise ValueError(not_a_choice(f.name, value, choices[f.name]))


def not_a_choice(name: str, value, choices: tuple) -> str:
    """The message for setting ``name`` = ``value`` that is not one of ``choices``."""
    return f"{name} = {value!r}; choose one of {', '.join(repr(c) for c in choices)}"
