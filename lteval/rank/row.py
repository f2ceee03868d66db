"""One backbone's results row, typed.

``Row`` is a frozen dataclass whose fields are the schema's columns (``schema.ROW``
and the interval columns): a column the schema does not declare cannot be set, and
a column a row does not carry is ``MISSING`` (absent from ``to_dict`` and the
files). ``Row.of(mapping)`` builds one, once per backbone, when the results are
written or read; it keeps the columns' order, so the files stay byte for byte what
they were. The state a reader acts on is typed: ``status`` a ``Status``,
``weights_kind`` a ``WeightsKind`` (``kind``: PRECOMPUTED for h5 features), and
``evidence`` an ``Evidence`` decided from the numbers, never from display text.
A Row reads like a mapping too (``row["separability"]``, ``row.get(col)``,
iteration over the columns it carries, equality with a dict of them), as
templates and plots expect; like a dict, it is not hashable.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from dataclasses import field, make_dataclass
from typing import Any

from lteval.backbones import WeightsKind
from lteval.rank.schema import INTERVALS, ROW


class Status(enum.StrEnum):
    """Whether a backbone was scored (``error``, ``phase`` and ``error_kind`` say
    why not)."""

    OK = "ok"
    FAILED = "failed"


class Evidence(enum.StrEnum):
    """A backbone's separability against its permutation null."""

    SEPARATED = "separated"  # p <= NO_EVIDENCE_P
    NONE = "none"  # p > NO_EVIDENCE_P: no evidence of head/tail separation
    UNDEFINED = "undefined"  # no stage with a permutation null


NO_EVIDENCE_P = 0.05
"""Above this permutation p-value a backbone shows no evidence of head/tail separation."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""The value of a column a row does not carry."""

COLUMNS = (*ROW, *sorted(INTERVALS))
"""Every field of ``Row``: the schema's columns."""
TYPED = {"status": Status, "weights_kind": WeightsKind}


def is_ok(row: Mapping) -> bool:
    """True for a scored backbone's row (a Row, or a mapping; no status: scored)."""
    return Status(row.get("status", Status.OK)) is Status.OK


class _RowBase(Mapping):
    """The mapping view and the typed readings of a ``Row``."""

    order: tuple[str, ...]

    @classmethod
    def of(cls, row: Mapping) -> Row:
        """The Row of ``row``'s columns, in its order; ValueError naming a column
        the schema does not declare, or a status / weights kind outside its enum."""
        extra = [k for k in row if k not in ROW and k not in INTERVALS]
        if extra:
            raise ValueError(
                f"results column(s) {extra} are not declared in lteval.rank.schema; "
                "declare them there (with their meaning) before writing them"
            )
        values = {k: TYPED[k](v) if k in TYPED and v is not None else v for k, v in row.items()}
        return cls(**values, order=tuple(row))

    def to_dict(self) -> dict[str, Any]:
        """The columns this row carries, in order, enums as their plain values."""
        return {k: _plain(getattr(self, k)) for k in self.order}

    def __getitem__(self, key: str):
        if key not in self.order:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.order[:6])
        more = f", ... {len(self.order) - 6} more" if len(self.order) > 6 else ""
        return f"Row({shown}{more})"

    @property
    def ok(self) -> bool:
        return is_ok(self)

    @property
    def kind(self) -> WeightsKind | None:
        """The weights the backbone ran with (PRECOMPUTED for h5 features; None for a
        row that does not say)."""
        if self.get("precomputed"):
            return WeightsKind.PRECOMPUTED
        return self.get("weights_kind")

    @property
    def evidence(self) -> Evidence:
        """SEPARATED, NONE or UNDEFINED, from ``separability_p``."""
        p = self.get("separability_p")
        if p is None or not math.isfinite(p):
            return Evidence.UNDEFINED
        return Evidence.NONE if p > NO_EVIDENCE_P else Evidence.SEPARATED


def _plain(v):
    return v.value if isinstance(v, enum.Enum) else v


Row = make_dataclass(
    "Row",
    [(c, Any, field(default=MISSING)) for c in COLUMNS]
    + [("order", tuple, field(default=(), repr=False, compare=False))],
    bases=(_RowBase,),
    frozen=True,
    eq=False,  # equal as mappings (Mapping.__eq__): Row.of(d) == d
    repr=False,
)
Row.__module__ = __name__  # pickles and reprs as lteval.rank.row.Row
Row.__doc__ = """A backbone's results row: one field per schema column (see the module)."""
