"""PNG plots of a run's results (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

GROUPS = ("many", "medium", "few")


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path.name


def ranking_bar(rows: list[dict], by: str, out: Path) -> str:
    """Horizontal bars of the ranking metric, best on top."""
    names = [r["backbone"] for r in rows][::-1]
    vals = [np.nan if r.get(by) is None else r[by] for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    ax.barh(names, vals, color="#4477aa")
    ax.set_xlabel(by)
    ax.set_title(f"Backbones ranked by {by}")
    return _save(fig, out / "ranking.png")


def group_bars(rows: list[dict], out: Path) -> str:
    """Many/medium/few/balanced accuracy per backbone, DLSA and the BSM probe."""
    keys = [*GROUPS, "balanced"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(keys))
    for ax, method in zip(axes, ("dlsa", "probe"), strict=True):
        for i, r in enumerate(rows):
            vals = [np.nan if r.get(f"{method}_{k}") is None else r[f"{method}_{k}"] for k in keys]
            ax.bar(x + i * width, vals, width, label=r["backbone"])
        ax.set_xticks(x + width * (len(rows) - 1) / 2, keys)
        ax.set_title("DLSA" if method == "dlsa" else "Balanced-Softmax probe")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy on the eval split")
    axes[1].legend(fontsize=7, loc="lower right")
    return _save(fig, out / "groups.png")


def stage_curves(stages: list[dict], out: Path) -> str:
    """Share of many/medium/few eval samples among those filtered at each stage."""
    df = pd.DataFrame(stages)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, g in zip(axes, GROUPS, strict=True):
        for name, sub in df.groupby("backbone", sort=False) if len(df) else []:
            ax.plot(sub["stage"], sub[f"filtered_{g}_share"], marker="o", label=name)
        ax.set_title(f"{g}-shot share of filtered samples")
        ax.set_xlabel("stage")
        if len(df):
            ax.set_xticks(sorted(df["stage"].unique()))
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("share")
    if len(df):
        axes[2].legend(fontsize=7)
    return _save(fig, out / "stages.png")


def accuracy_vs_frequency(per_class: list[dict], out: Path) -> str:
    """Per-class DLSA accuracy against the class's train count (log scale)."""
    df = pd.DataFrame(per_class)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, sub in df.groupby("backbone", sort=False) if len(df) else []:
        sub = sub.sort_values("train_count")
        ax.plot(sub["train_count"], sub["dlsa_accuracy"], marker="o", alpha=0.8, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("train images in the class")
    ax.set_ylabel("DLSA accuracy")
    ax.set_ylim(0, 1.02)
    if len(df):
        ax.legend(fontsize=7)
    return _save(fig, out / "per_class.png")
