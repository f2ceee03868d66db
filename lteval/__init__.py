"""lteval: which frozen image backbone for a long-tailed task, and why."""

__version__ = "0.1.0"
