"""The validation study: does a score order feature sets by their tail accuracy?

``run_study`` (``runner.py``) scores the feature sets of a panel (``panels.py``:
the demo's backbones, small CNNs trained on each dataset's own long-tailed split,
the lt-methods CNNs) with ``lteval.rank.score_features`` and correlates every
score with the ground truth (``stats.py``). ``lteval validate`` is its program.
"""

from lteval.study.runner import StudyResult, run_study

__all__ = ["StudyResult", "run_study"]
