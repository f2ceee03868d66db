"""Score one backbone's features: DLSA separability and accuracy next to the
Balanced-Softmax probe. Pure array code."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from lteval.dlsa import DLSA, DLSAConfig, scaled_for
from lteval.errors import UsageError
from lteval.heads import GROUPS, accuracy_report, logme, shot_groups

Split = tuple[np.ndarray, np.ndarray]

METRICS = [
    "separability",
    *(f"{m}_{k}" for m in ("dlsa", "probe") for k in ("overall", "balanced", *GROUPS)),
    "lift_balanced",
    "logme",
]
"""The metric columns every row carries; ``--by`` may name any of them."""


@dataclass
class BackboneScore:
    """One backbone's results: a summary row, per-stage rows, per-class rows."""

    row: dict
    stages: list[dict] = field(default_factory=list)
    per_class: list[dict] = field(default_factory=list)


def score_features(
    name: str,
    splits: dict[str, Split],
    *,
    num_classes: int,
    seed: int = 0,
    config: DLSAConfig | None = None,
    class_names: list[str] | None = None,
    device: str = "cpu",
) -> BackboneScore:
    """Run DLSA and the probe on ``{"train", "val", "eval"}: (X (N, D), y (N,))``.

    ``config`` defaults to the method's defaults scaled for the train size
    (``lteval.dlsa.scaled_for``); the settings used are returned in the row.
    ``device`` is where the flows train ("cuda" on a GPU machine).
    """
    (Xtr, ytr), (Xv, yv), (Xe, ye) = (splits[s] for s in ("train", "val", "eval"))
    cfg = replace(config or scaled_for(len(ytr), num_classes), device=device)
    t0 = time.perf_counter()
    dlsa = DLSA(cfg, seed=seed).fit(Xtr, ytr, Xv, yv, num_classes=num_classes)
    rep = dlsa.report(Xe, ye)
    t_dlsa = time.perf_counter() - t0
    # DLSA's regular classifier is, by construction, the Balanced-Softmax probe
    # (same standardisation, head, seed and validation): reuse it, do not retrain.
    probe_acc = accuracy_report(ye, dlsa.predict_regular(Xe), dlsa.class_counts_)
    acc = rep["accuracy"]
    row = {"backbone": name, "separability": rep["separability"]}
    for k in ("overall", "balanced", *GROUPS):
        row[f"dlsa_{k}"] = acc[k]
    for k in ("overall", "balanced", *GROUPS):
        row[f"probe_{k}"] = probe_acc[k]
    row["lift_balanced"] = acc["balanced"] - probe_acc["balanced"]
    row["logme"] = logme(Xtr, ytr)  # training-free transferability, train split only
    row.update(
        feature_dim=int(Xtr.shape[1]),
        n_train=len(ytr),
        n_val=len(yv),
        n_eval=len(ye),
        stages_run=len(dlsa.stages_),
        stages_note=dlsa.stopped_,
        score_seconds=round(time.perf_counter() - t0, 3),
        dlsa_seconds=round(t_dlsa, 3),
        dlsa_settings=cfg.to_dict(),
    )
    stages = [{"backbone": name, **r} for r in rep["stages"]]
    groups = shot_groups(dlsa.class_counts_)
    names = class_names or [str(c) for c in range(num_classes)]
    per_class = [
        {
            "backbone": name,
            "class": c,
            "class_name": names[c],
            "train_count": int(dlsa.class_counts_[c]),
            "group": str(groups[c]),
            "dlsa_accuracy": float(acc["per_class"][c]),
            "probe_accuracy": float(probe_acc["per_class"][c]),
        }
        for c in range(num_classes)
    ]
    return BackboneScore(row, stages, per_class)


def check_metric(by: str) -> None:
    """Raise UsageError unless ``by`` is one of ``METRICS``."""
    if by not in METRICS:
        raise UsageError(f"--by {by!r} is not a metric column; choose one of {METRICS}")


def rank_rows(rows: list[dict], by: str) -> list[dict]:
    """Rows sorted best first by column ``by`` (NaN last), each given its ``rank``."""
    check_metric(by)
    key = [(-(r[by]) if np.isfinite(r[by]) else np.inf) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: (key[i], rows[i]["backbone"]))
    return [{"rank": n + 1, **rows[i]} for n, i in enumerate(order)]
