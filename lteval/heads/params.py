"""Flat scikit-learn parameters built from a settings dataclass.

A settings dataclass (``LinearConfig``, ``DLSAConfig``) holds the defaults, their
types and the checks, once. ``keyword_init`` turns its fields into an estimator's
keyword-only ``__init__`` parameters, each stored unchanged (scikit-learn's rule),
so ``get_params`` lists them, ``set_params`` and ``GridSearchCV`` reach each one,
and ``settings`` rebuilds the dataclass from them at ``fit``, where they are checked.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable


def field_defaults(config_cls, skip: tuple[str, ...] = ()) -> dict[str, object]:
    """{field: default} of dataclass ``config_cls``; a ``default_factory`` field
    (a nested settings object) defaults to None, meaning "its defaults"."""
    out = {}
    for f in dataclasses.fields(config_cls):
        if f.name not in skip:
            out[f.name] = None if f.default is dataclasses.MISSING else f.default
    return out


def keyword_init(defaults: dict[str, object]) -> Callable:
    """An ``__init__`` taking exactly ``defaults``' names as keyword-only parameters,
    storing each value unchanged; its signature (what ``get_params`` reads) lists
    them with their defaults."""

    def __init__(self, **params):
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}"
            )
        for name, default in defaults.items():
            setattr(self, name, params.get(name, default))

    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature(
        [self_param]
        + [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d)
            for n, d in defaults.items()
        ]
    )
    return __init__


def settings(est, config_cls, **fixed):
    """A ``config_cls`` from ``est``'s parameters of the same names, with ``fixed``
    values overriding; fields that are not parameters keep their defaults."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    values = {n: v for n, v in est.get_params(deep=False).items() if n in names}
    return config_cls(**{**values, **fixed})


class ParamsMixin:
    """``get_params`` / ``set_params`` for a settings dataclass, so that scikit-learn
    reaches its fields as nested parameters (``classifier__lr``) and ``clone`` copies
    it field by field."""

    def get_params(self, deep: bool = True) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def set_params(self, **params):
        names = {f.name for f in dataclasses.fields(self)}
        for name, value in params.items():
            if name not in names:
                raise ValueError(
                    f"{name!r} is not a setting of {type(self).__name__}; "
                    f"choose one of {sorted(names)}"
                )
            setattr(self, name, value)
        return self
