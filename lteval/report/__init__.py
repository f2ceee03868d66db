"""HTML/PNG reports rendered from a run's results files (the rightmost layer)."""

from lteval.report.render import render_report

__all__ = ["render_report"]
