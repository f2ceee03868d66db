"""The one jinja2 environment behind every HTML page lteval writes: the rank report,
the validation study, the run comparison and the benchmarks' index
(``benchmarks/collect.py``). Templates live in ``lteval/report/templates/``;
autoescaping is on for all of them. ``fmt`` writes a value in a table cell."""

from __future__ import annotations

import functools

import jinja2


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("lteval.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )


def render_page(template: str, **context) -> str:
    """``template`` (a file name under templates/) rendered with ``context``."""
    return environment().get_template(template).render(**context)


def fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1e4 else f"{v:.3g}"
    if isinstance(v, int) and v >= 10_000:
        return f"{v / 1e6:.2f}M"
    if isinstance(v, list | tuple):  # e.g. one value per flow
        return " ".join(fmt(x) for x in v)
    return str(v)
