"""DLSA in its own setting, at small scale: does the flow learn clusters, and does
the filter beat the Balanced-Softmax probe? (``make benchmark-replicate``)

For each dataset (fashion-mnist-lt, animal-mnist-lt), imbalance factor (100, 10)
and seed (0, 1, 2): a small CNN is trained with cross-entropy on the long-tailed
train split and frozen (``replicate_features.py``); on its 256-d features run

- DLSA under lteval's default (``scaled_for`` the train size) and under the
  ``paper`` preset (the method page's settings, equally scaled: K and batch),
  recording per stage the untrained flow's kept clusters, the chosen epoch's, the
  three losses per epoch, the many/medium/few make-up of filtered and remaining
  eval samples, and DLSA vs probe accuracy with paired bootstrap intervals;
- every baseline head (default only).

Then the *diagnosis*: stage 1 alone (all active train samples), IF 100, every
seed, one setting changed at a time from the default, to find what makes kept
clusters fall with training. Nothing here looks at eval accuracy to choose a
setting: the diagnosis reads only train-side kept clusters.

Writes ``reports/benchmarks/replicate.json``. ``--quick`` runs one seed, one IF
and 10 flow epochs (a smoke test, not a result).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from replicate_features import features  # noqa: E402

from lteval.dlsa import DLSA, diagnostics  # noqa: E402
from lteval.dlsa.config import DLSAConfig, from_dict, preset, scaled_for  # noqa: E402
from lteval.dlsa.stages import stage_seed  # noqa: E402
from lteval.dlsa.train import fit_stage  # noqa: E402
from lteval.features import versions  # noqa: E402
from lteval.heads import GROUPS, Standardizer, accuracy_report  # noqa: E402
from lteval.rank.scoring import HEADS  # noqa: E402

KEYS = ("overall", "balanced", *GROUPS)
# (name, base settings, run the baseline heads too)
ARMS = (
    ("default", DLSAConfig(), True),
    ("default_no_stage_check", replace(DLSAConfig(), stage_check_fraction=0.0), False),
    ("paper", preset("paper"), False),
)
N_BOOT = 1000
# one change at a time from the default (the candidates of issue 10)
DIAGNOSIS = {
    "default": {},
    "bn_running_stats (paper)": {"bn_recalibrate": False},
    "no_balance_term": {"lambda_bal": 0.0},
    "no_purity_term": {"lambda_pur": 0.0},
    "q=0 (unweighted likelihood)": {"q": 0.0},
    "no_likelihood_term": {"lambda_lh": 0.0},
    "made_default_init (paper)": {"made_init_std": None},
    "sgd lr=0.2 (paper)": {"flow_optimizer": "sgd", "flow_lr": 0.2},
    "sgd lr=0.02": {"flow_optimizer": "sgd", "flow_lr": 0.02},
    "no_grad_clip (paper)": {"flow_grad_clip": None},
    "adam lr=3e-3": {"flow_lr": 3e-3},
    "batch=128": {"flow_batch_size": 128},
    "prior_std=0.5": {"prior_std": 0.5},
    "K=N/100": {"num_clusters": "N/100"},
    "paper (all of the above at once)": "paper",
}


def _round(d: dict, n: int = 4) -> dict:
    return {k: round(float(v), n) for k, v in d.items()}


def _resample(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    parts = [rng.choice(np.flatnonzero(y == c), size=(y == c).sum()) for c in np.unique(y)]
    return np.concatenate(parts)


def paired_bootstrap(y, preds: dict, counts, seed: int) -> dict[str, np.ndarray]:
    """{metric: (N_BOOT, methods)} of ``preds`` on the same stratified resamples of eval."""
    rng = np.random.default_rng(seed)
    out = {k: np.empty((N_BOOT, len(preds))) for k in KEYS}
    for i in range(N_BOOT):
        idx = _resample(y, rng)
        for j, p in enumerate(preds.values()):
            acc = accuracy_report(y[idx], p[idx], counts)
            for k in KEYS:
                out[k][i, j] = acc[k]
    return out


def run_dlsa(cfg: DLSAConfig, splits, C: int, seed: int, heads: bool) -> tuple[dict, dict]:
    (Xtr, ytr), (Xv, yv), (Xe, ye) = (splits[s] for s in ("train", "val", "eval"))
    t0 = time.perf_counter()
    model = DLSA.from_config(cfg, random_state=seed).fit(
        Xtr, ytr, X_val=Xv, y_val=yv, classes=np.arange(C)
    )
    rep = diagnostics(model, Xe, ye)
    preds = {"dlsa": rep["predictions"], "probe": model.predict_regular(Xe)}
    out = {"dlsa_seconds": round(time.perf_counter() - t0, 1), "stages_note": model.stopped_}
    if heads:
        for h, make in HEADS.items():
            preds[h] = (
                make(seed).fit(Xtr, ytr, X_val=Xv, y_val=yv, classes=np.arange(C)).predict(Xe)
            )
    out["accuracy"] = {
        m: _round({k: accuracy_report(ye, p, model.group_counts_)[k] for k in KEYS})
        for m, p in preds.items()
    }
    stages = []
    for st, row in zip(model.stages_, rep["stages"], strict=True):
        keep = {k: v for k, v in row.items() if isinstance(v, int | float | str)}
        keep["selection"] = " | ".join(st.gmf.selection)  # every flow's
        keep["history"] = [_round(h) for h in st.gmf.history[0]]  # the first flow's
        stages.append(keep)
    out["stages"] = stages
    pair = {m: preds[m] for m in ("dlsa", "probe")}
    boot = paired_bootstrap(ye, pair, model.group_counts_, seed)
    return out, {"boot": boot}


def diagnose(name: str, change, X, y, C: int, base: DLSAConfig, seed: int) -> dict:
    if change == "paper":
        cfg = replace(scaled_for(len(y), C, preset("paper")), flow_epochs=base.flow_epochs)
    else:
        change = dict(change)
        if change.get("num_clusters") == "N/100":
            change["num_clusters"] = max(C, len(y) // 100)
        cfg = from_dict({**base.to_dict(), **change})
    t0 = time.perf_counter()
    fit = fit_stage(torch.as_tensor(X), torch.as_tensor(y), cfg, stage_seed(seed, 0))
    hist = fit.history[0] if fit.history else []  # the first flow of the stage's ensemble
    kept = [h["kept"] for h in hist]
    return {
        "setting": name,
        "num_clusters": cfg.num_clusters,
        "flows": fit.members,
        "kept_initial": fit.kept_clusters_initial[0] if fit.members else None,
        "kept_chosen": fit.kept_clusters[0] if fit.members else None,
        "chosen_epoch": fit.epoch[0] if fit.members else None,
        "kept_last": kept[-1] if kept else None,
        "kept_mean_over_epochs": round(float(np.mean(kept)), 1) if kept else None,
        "largest_last": hist[-1]["largest"] if hist else None,
        "epochs_finished": len(kept),
        "selection": fit.selection[0] if fit.members else "every flow diverged",
        "kept_per_epoch": kept,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _share(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)}"


def _ci(values: np.ndarray) -> list[float]:
    lo, hi = np.nanpercentile(values, [2.5, 97.5]) if np.isfinite(values).any() else (np.nan,) * 2
    return [round(float(lo), 4), round(float(hi), 4)]


def summarise(runs: list[dict], arm: str) -> dict:
    """Per (dataset, IF): means over seeds, with 95% intervals of the seed-mean from the
    per-seed paired bootstraps (replicate i of every seed averaged), and per stage the
    mean kept clusters and the group make-up of filtered and remaining eval samples."""
    out = {}
    for key in sorted({(r["dataset"], r["imbalance_factor"]) for r in runs}):
        rs = [r for r in runs if (r["dataset"], r["imbalance_factor"]) == key]
        acc = {
            m: _round({k: np.mean([r[arm]["accuracy"][m][k] for r in rs]) for k in KEYS})
            for m in rs[0][arm]["accuracy"]
        }
        # (seeds, N_BOOT, 2: dlsa, probe) -> mean over seeds per replicate
        boot = {k: np.stack([r[arm]["_boot"][k] for r in rs]).mean(0) for k in KEYS}
        st = [s for r in rs for s in r[arm]["stages"]]
        per_stage = []
        for i in sorted({s["stage"] for s in st}):
            si = [s for s in st if s["stage"] == i]
            row = {"stage": i, "runs": len(si)}
            for k in ("kept_clusters_initial", "kept_clusters", "flow_epoch", "n_filtered"):
                row[k] = round(float(np.mean([s[k] for s in si])), 1)
            for part in ("filtered", "remaining"):
                for g in GROUPS:
                    vals = [s[f"{part}_{g}_share"] for s in si]
                    row[f"{part}_{g}_share"] = (
                        round(float(np.nanmean(vals)), 3) if np.isfinite(vals).any() else None
                    )
            row["remaining_train_imbalance_ratio"] = round(
                float(np.mean([s["remaining_train_imbalance_ratio"] for s in si])), 1
            )
            per_stage.append(row)
        out[f"{key[0]} IF{key[1]:g}"] = {
            "seeds": [r["seed"] for r in rs],
            "accuracy_mean": acc,
            "dlsa_95ci": {k: _ci(boot[k][:, 0]) for k in KEYS},
            "probe_95ci": {k: _ci(boot[k][:, 1]) for k in KEYS},
            "lift_balanced_mean": round(acc["dlsa"]["balanced"] - acc["probe"]["balanced"], 4),
            "lift_balanced_95ci": _ci(boot["balanced"][:, 0] - boot["balanced"][:, 1]),
            "lift_balanced_per_seed": [
                round(
                    r[arm]["accuracy"]["dlsa"]["balanced"]
                    - r[arm]["accuracy"]["probe"]["balanced"],
                    4,
                )
                for r in rs
            ],
            "stages": per_stage,
            "stages_where_chosen_kept_exceeds_initial": _share(
                [s["kept_clusters"] > s["kept_clusters_initial"] for s in st]
            ),
            "stages_where_last_epoch_kept_exceeds_initial": _share(
                [
                    bool(s["history"]) and s["history"][-1]["kept"] > s["kept_clusters_initial"]
                    for s in st
                ]
            ),
            "stages_where_mean_kept_over_epochs_exceeds_initial": _share(
                [
                    bool(s["history"])
                    and np.mean([h["kept"] for h in s["history"]]) > s["kept_clusters_initial"]
                    for s in st
                ]
            ),
            "stage_classifiers_used": _share(
                [bool(s.get("stage_classifier_used", True)) for s in st]
            ),
            "diverged_stages": sum("non-finite" in s["selection"] for s in st),
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="reports/benchmarks/replicate.json")
    p.add_argument("--cache-dir", default="reports/benchmarks/replicate-features")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    seeds, ifs, epochs = ([0], [100.0], 10) if args.quick else ([0, 1, 2], [100.0, 10.0], 50)
    datasets = ["fashion-mnist-lt", "animal-mnist-lt"]
    t_start = time.perf_counter()
    runs, diag = [], []
    for ds in datasets:
        for imb in ifs:
            for seed in seeds:
                splits, info = features(ds, imb, seed, Path(args.cache_dir))
                C = len(info["train_counts"])
                n = len(splits["train"][1])
                run = {"dataset": ds, "imbalance_factor": imb, "seed": seed, "features": info}
                for arm, base, heads in ARMS:
                    cfg = replace(scaled_for(n, C, base), flow_epochs=epochs)
                    res, extra = run_dlsa(cfg, splits, C, seed, heads)
                    res["dlsa_settings"] = cfg.to_dict()
                    res["_boot"] = extra["boot"]
                    run[arm] = res
                    a = res["accuracy"]
                    kept = [(s["kept_clusters_initial"], s["kept_clusters"]) for s in res["stages"]]
                    print(
                        f"{ds} IF{imb:g} seed {seed} {arm}: dlsa {a['dlsa']['balanced']:.4f} "
                        f"probe {a['probe']['balanced']:.4f} kept {kept} ({res['dlsa_seconds']} s)",
                        flush=True,
                    )
                runs.append(run)
                if imb == 100.0:
                    X, y = splits["train"]
                    Xs = Standardizer().fit(X).transform(X)
                    base = replace(scaled_for(n, C), flow_epochs=epochs)
                    for name, change in DIAGNOSIS.items():
                        d = diagnose(name, change, Xs, y, C, base, seed)
                        diag.append({"dataset": ds, "seed": seed, **d})
                        print(
                            f"  diagnosis {ds} seed {seed} {name}: initial {d['kept_initial']} "
                            f"chosen {d['kept_chosen']} last {d['kept_last']} largest "
                            f"{d['largest_last']} ({d['epochs_finished']} epochs)",
                            flush=True,
                        )
    result = {
        "benchmark": "replicate",
        "quick": args.quick,
        "summary": {arm: summarise(runs, arm) for arm, _, _ in ARMS},
        "diagnosis_summary": diagnosis_summary(diag),
        "runs": [
            {
                **r,
                **{a: {k: v for k, v in r[a].items() if k != "_boot"} for a, _, _ in ARMS},
            }
            for r in runs
        ],
        "diagnosis": diag,
        "wall_seconds": round(time.perf_counter() - t_start),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": versions(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    print(json.dumps(result["summary"], indent=1))
    return 0


def diagnosis_summary(diag: list[dict]) -> list[dict]:
    """Per setting and dataset: means over seeds of initial, chosen and last-epoch kept."""
    rows = []
    for name in DIAGNOSIS:
        for ds in sorted({d["dataset"] for d in diag}):
            ds_rows = [d for d in diag if d["setting"] == name and d["dataset"] == ds]
            if not ds_rows:
                continue

            def mean(k: str, rows=ds_rows) -> float:
                return round(float(np.mean([d[k] for d in rows if d[k] is not None])), 1)

            rows.append(
                {
                    "setting": name,
                    "dataset": ds,
                    "kept_initial": mean("kept_initial"),
                    "kept_chosen": mean("kept_chosen"),
                    "kept_last": mean("kept_last"),
                    "kept_mean_over_epochs": mean("kept_mean_over_epochs"),
                    "largest_last": mean("largest_last"),
                    "diverged_runs": sum("non-finite" in d["selection"] for d in ds_rows),
                }
            )
    return rows


if __name__ == "__main__":
    sys.exit(main())
