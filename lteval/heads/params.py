"""Flat scikit-learn parameters and the settings dataclass they come from.

A settings dataclass (``LinearConfig``, ``DLSAConfig``) holds the defaults, their
types and the checks, once. Each estimator writes its keyword-only ``__init__`` out
(so that ``help()`` and an editor show every parameter), storing each value
unchanged (scikit-learn's rule); ``settings`` rebuilds the dataclass from them at
``fit``, where they are checked. ``tests/test_signatures.py`` keeps the signature,
the docstring and the dataclass naming the same parameters with the same defaults.
"""

from __future__ import annotations

import dataclasses


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
