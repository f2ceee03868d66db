"""HTML/PNG reports rendered from a run's results files (the rightmost layer)."""

from lteval.report.render import RUN_FOLDER, render_report

__all__ = ["RUN_FOLDER", "render_report"]
