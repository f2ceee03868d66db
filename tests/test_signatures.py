"""Every estimator's parameters are written out, documented and in step with its
settings dataclass: the ``__init__`` signature (what ``help()``, an editor and
``get_params`` read), the numpydoc "Parameters" section and ``LinearConfig`` /
``DLSAConfig`` name the same parameters, with the same defaults."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re

import pytest

from lteval.dlsa import DLSA, DLSAConfig
from lteval.heads import (
    CRT,
    KNN,
    LWS,
    NCM,
    BalancedSoftmaxProbe,
    LinearConfig,
    LinearProbe,
    LogitAdjusted,
    TauNorm,
)
from lteval.heads.zoo import LINEAR_SKIPPED

ESTIMATORS = [LinearProbe, BalancedSoftmaxProbe, LogitAdjusted, CRT, TauNorm, LWS, NCM, KNN, DLSA]


def _signature(cls) -> dict[str, object]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert all(p.kind is p.KEYWORD_ONLY for p in params), cls.__name__
    return {p.name: p.default for p in params}


def _documented(cls) -> dict[str, object]:
    """{name: documented default (or ... when the entry gives none)} from the
    "Parameters" section of the docstring of the class that defines ``__init__``."""
    owner = next(c for c in cls.__mro__ if "__init__" in vars(c))
    doc = inspect.getdoc(owner) or ""
    m = re.search(r"^Parameters\n-+\n(.*?)(?:\n\n|\Z)", doc, re.S | re.M)  # to a blank line
    assert m, f"{owner.__name__} has no numpydoc Parameters section"
    out = {}
    for line in m.group(1).splitlines():
        if not line or line.startswith(" "):
            continue  # a description line
        names, _, rest = line.partition(" : ")
        names = [n.strip() for n in names.split(",")]
        default = re.search(r"default=(.*)$", rest)
        values = (...,) * len(names)
        if default:
            values = ast.literal_eval(f"({default.group(1)},)")
        assert len(values) == len(names), line
        out.update(zip(names, values, strict=True))
    return out


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_signature_and_docstring_name_the_same_parameters(cls):
    signature, documented = _signature(cls), _documented(cls)
    assert set(documented) == set(signature), cls.__name__
    for name, default in documented.items():
        if default is not ...:
            assert default == signature[name], (cls.__name__, name)
    assert set(cls._get_param_names()) == set(signature)  # what get_params lists


def _fields(config_cls) -> dict[str, object]:
    return {
        f.name: (None if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(config_cls)
    }


@pytest.mark.parametrize("cls", [LinearProbe, LogitAdjusted, CRT], ids=lambda c: c.__name__)
def test_linear_heads_take_linear_config_with_its_defaults(cls):
    signature = _signature(cls)
    own = {"random_state", "probe", "validation_fraction"}
    expected = {k: v for k, v in _fields(LinearConfig).items() if k not in LINEAR_SKIPPED}
    if cls is CRT:
        expected.pop("sampling")  # always class-balanced
    assert {k: v for k, v in signature.items() if k not in own} == expected


def test_dlsa_takes_dlsa_config_with_its_defaults():
    signature = _signature(DLSA)
    assert signature.pop("random_state") == 0
    assert signature == _fields(DLSAConfig)  # classifier: None means LinearConfig()
    assert DLSA().get_params()["classifier"] is None
    assert DLSA.from_config(DLSAConfig()).get_params()["classifier"] == LinearConfig()


def test_help_shows_every_parameter():
    text = pydoc_text(DLSA)
    for name in _signature(DLSA):
        assert f"{name}:" in text or f"{name} :" in text or f" {name}," in text, name


def pydoc_text(obj) -> str:
    import pydoc

    return pydoc.render_doc(obj, renderer=pydoc.plaintext)
