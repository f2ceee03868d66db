"""The one jinja2 environment behind every HTML page lteval writes: the rank report,
the validation study, the run comparison and the benchmarks' index
(``benchmarks/collect.py``). Templates live in ``lteval/report/templates/``;
autoescaping is on for all of them."""

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
