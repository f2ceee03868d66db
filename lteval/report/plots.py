"""PNG plots of a run's results (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lteval.atomic import writing

GROUPS = ("many", "medium", "few")
PNGS = ("ranking.png", "groups.png", "separability_vs_tail.png", "stages.png", "per_class.png")
"""The plots a report holds."""


LABEL_MAX = 40
"""Longest backbone name a plot shows whole; longer ones keep their start and end
(the tables show them whole)."""


def literal(fn):
    """Run plotting function ``fn`` with mathtext off: a backbone named ``net$x$``
    is drawn as those characters, never parsed as TeX (which could fail)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context({"text.parse_math": False}):
            return fn(*args, **kwargs)

    return wrapper


def shown(name: str) -> str:
    """``name`` as a plot shows it: at most ``LABEL_MAX`` characters (the middle
    replaced by an ellipsis)."""
    if len(name) <= LABEL_MAX:
        return name
    half = (LABEL_MAX - 1) // 2
    return name[:half] + "\u2026" + name[-(LABEL_MAX - 1 - half) :]


def legend(ax, handles: list, names: list[str], **kwargs) -> None:
    """A legend of ``handles`` labelled ``names`` as given: matplotlib's own legend
    skips labels that start with "_", which a backbone's may."""
    if handles:
        ax.legend(handles, [shown(n) for n in names], **kwargs)


def _save(fig, path: Path) -> str:
    with warnings.catch_warnings():
        # long labels can leave tight_layout nothing to fit; bbox_inches="tight"
        # below still keeps every label inside the image
        warnings.filterwarnings("ignore", "Tight layout not applied", UserWarning)
        fig.tight_layout()
    try:
        with writing(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return path.name


def _v(r: dict, key: str) -> float:
    v = r.get(key)
    return np.nan if v is None else float(v)


def _err(rows: list[dict], key: str) -> np.ndarray | None:
    """(2, n) distances to the interval ends for matplotlib, or None without intervals."""
    if not rows or f"{key}_lo" not in rows[0]:
        return None
    mid = np.array([_v(r, key) for r in rows])
    lo = np.array([_v(r, f"{key}_lo") for r in rows])
    hi = np.array([_v(r, f"{key}_hi") for r in rows])
    return np.nan_to_num(np.stack([mid - lo, hi - mid]).clip(min=0))


@literal
def ranking_bar(rows: list[dict], by: str, out: Path) -> str:
    """Horizontal bars of the ranking metric, best on top, with the 95% intervals;
    random-weight backbones (controls, or weights that were missing) in grey."""
    rows = rows[::-1]
    names = [shown(r["backbone"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    err = _err(rows, by)
    random = [r.get("pretrained") is False for r in rows]
    colors = ["#bbbbbb" if rnd else "#4477aa" for rnd in random]
    y = np.arange(len(rows))  # positions, not names: two long names may look alike
    ax.barh(y, [_v(r, by) for r in rows], xerr=err, color=colors, capsize=4)
    ax.set_yticks(y, names)
    note = "\ngrey: random weights" if any(random) else ""
    ax.set_xlabel(by + (" (bars: 95% bootstrap interval)" if err is not None else "") + note)
    ax.set_title(f"Backbones ranked by {by}")
    return _save(fig, out / "ranking.png")


@literal
def group_bars(rows: list[dict], out: Path) -> str:
    """Many/medium/few accuracy grouped per backbone, DLSA and the BSM probe, with intervals."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    width = 0.27
    x = np.arange(len(rows))
    colors = {"many": "#4477aa", "medium": "#ccbb44", "few": "#ee6677"}
    for ax, method in zip(axes, ("dlsa", "probe"), strict=True):
        for i, g in enumerate(GROUPS):
            key = f"{method}_{g}"
            vals = [_v(r, key) for r in rows]
            ax.bar(
                x + (i - 1) * width,
                vals,
                width,
                yerr=_err(rows, key),
                capsize=2,
                color=colors[g],
                label=g,
            )
        ax.set_xticks(x, [shown(r["backbone"]) for r in rows], rotation=30, ha="right", fontsize=7)
        ax.set_title("DLSA" if method == "dlsa" else "Balanced-Softmax probe")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy on the eval split")
    axes[1].legend(fontsize=8, title="shot group")
    return _save(fig, out / "groups.png")


@literal
def separability_vs_tail(rows: list[dict], correlations: list[dict], out: Path) -> str:
    """Separability against few-shot accuracy (DLSA and probe), with Kendall's tau."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    taus = {c["metric"]: c for c in correlations}
    for method, marker in (("dlsa", "o"), ("probe", "s")):
        key = f"{method}_few"
        c = taus.get(key)
        label = f"{method} few-shot"
        if c and c.get("kendall_tau") is not None:
            label += f" (tau {c['kendall_tau']:.2f}"
            if c.get("kendall_lo") is not None:
                label += f", 95% [{c['kendall_lo']:.2f}, {c['kendall_hi']:.2f}]"
            label += ")"
        ax.errorbar(
            [_v(r, "separability") for r in rows],
            [_v(r, key) for r in rows],
            xerr=_err(rows, "separability"),
            yerr=_err(rows, key),
            fmt=marker,
            capsize=3,
            label=label,
        )
    for r in rows:
        ax.annotate(
            shown(r["backbone"]),
            (_v(r, "separability"), _v(r, "dlsa_few")),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("separability score")
    ax.set_ylabel("few-shot accuracy (classes with < 20 images in train + val)")
    ax.set_title("Does head/tail separability predict tail accuracy?")
    ax.legend(fontsize=7)
    return _save(fig, out / "separability_vs_tail.png")


@literal
def stage_curves(stages: list[dict], out: Path) -> str:
    """Share of many/medium/few eval samples among those filtered at each stage."""
    df = pd.DataFrame(stages)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    handles, names = [], []
    for ax, g in zip(axes, GROUPS, strict=True):
        handles, names = [], []
        for name, sub in df.groupby("backbone", sort=False) if len(df) else []:
            (line,) = ax.plot(sub["stage"], sub[f"filtered_{g}_share"], marker="o")
            handles.append(line)
            names.append(name)
        ax.set_title(f"{g}-shot share of filtered samples")
        ax.set_xlabel("stage")
        if len(df):
            ax.set_xticks(sorted(df["stage"].unique()))
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("share")
    legend(axes[2], handles, names, fontsize=7)
    return _save(fig, out / "stages.png")


BINS = 20
"""Frequency bins of the per-class plot when there are more classes: the classes in
order of train count, cut into 20 groups of (nearly) equal size, as the DLSA paper's
Fig. 1 bins them."""


@literal
def accuracy_vs_frequency(per_class: list[dict], out: Path) -> str:
    """Per-class DLSA accuracy against the class's long-tailed train count (train plus
    validation, the count that sets its shot group; log scale). Above ``BINS``
    classes, the mean accuracy of each of ``BINS`` frequency bins, at the bin's
    median count, so that 1,000 classes read as 20 points per backbone."""
    df = pd.DataFrame(per_class)
    col = "lt_count" if "lt_count" in df else "train_count"  # older results lack lt_count
    fig, ax = plt.subplots(figsize=(7, 4))
    binned = len(df) and df.groupby("backbone").size().max() > BINS
    handles, names = [], []
    for name, sub in df.groupby("backbone", sort=False) if len(df) else []:
        names.append(name)
        sub = sub.sort_values([col, "class"], ascending=[True, True])
        if binned:
            parts = np.array_split(np.arange(len(sub)), BINS)
            x = [float(np.median(sub[col].to_numpy()[p])) for p in parts]
            acc = [float(sub["dlsa_accuracy"].to_numpy()[p].mean()) for p in parts]
            handles += ax.plot(x, acc, marker="o", alpha=0.8)
        else:
            handles += ax.plot(sub[col], sub["dlsa_accuracy"], marker="o", alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(
        f"images per class in train + validation ({BINS} frequency bins: median)"
        if binned
        else "images of the class in train + validation"
    )
    ax.set_ylabel("DLSA accuracy" + (" (bin mean)" if binned else ""))
    ax.set_ylim(0, 1.02)
    legend(ax, handles, names, fontsize=7)
    return _save(fig, out / "per_class.png")
