"""Does the demo's ranking survive what differs between machines? (``make benchmark-stability``)

On the demo's features (``make demo``'s backbones, dataset, input size and seed;
extracted into the feature cache on a miss), DLSA is scored under each perturbation
that differs between machines or runs, with everything else held:

- ``baseline``: lteval's defaults (float32 flow training, fused Adam, torch's
  default thread count, ``random_state`` 0);
- ``bfloat16``: the flows train under bfloat16 autocast (what ``auto`` picks on a
  CPU with AVX512-BF16 or AMX);
- ``threads-1`` (or ``threads-2`` when the baseline has one thread): another CPU
  thread count;
- ``adam-per-tensor``: Adam's per-tensor loop instead of the fused kernel (other
  rounding, the same algorithm);
- ``seeds-1``: another set of flow seeds (``random_state`` 1; the classifiers'
  seeds change too, which separability does not see).

Each run bootstraps its own ranking (1000 replicates, seed 0: eval split and flows
resampled). Per backbone: separability, ``separability_sd``, the standard error of
the ensemble mean (sd / sqrt(R)) and the spread over the runs. Per pair of
backbones and run: whether its order differs from the baseline's (a *flip*), and
whether that flip is *outside a tie*: the baseline or the perturbed run calls the
pair ordered (its paired interval excludes 0) and they disagree. Targets: 0 flips
outside a tie under every perturbation; no more tied pairs in the baseline than the
single-flow score's 1 of 10 (issue 21); each ensemble mean's standard error
<= 0.01. ``--single-flow`` adds, for contrast, the same table under seeds 0 and 1
for one flow per stage at the former defaults (MADE width D, all 50 epochs) and
for one flow at lteval's width and early stop.
Usage::

    python benchmarks/bench_stability.py [--out reports/benchmarks/stability.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lteval.data import load_dataset
from lteval.features import backbone_features, versions
from lteval.rank.bootstrap import validate_ranking
from lteval.rank.scoring import score_features

DEMO = [
    "torchvision:mobilenet_v2/IMAGENET1K_V1",
    "timm:tf_efficientnet_lite0",
    "timm:tf_efficientnet_lite1",
    "timm:tf_efficientnet_lite2",
    "random:torchvision:mobilenet_v2/IMAGENET1K_V1",
]
DATASET, INPUT_SIZE, SEED = "animal-mnist-lt", 128, 0
CONTRASTS = {
    # issue 21's score: one flow per stage at the published width, every epoch
    "single_flow_width_D": {"flow_seeds": 1, "hidden": None, "flow_patience": None},
    # one flow at lteval's width and early stop: what the ensemble adds over it
    "single_flow_width_64": {"flow_seeds": 1},
}


@contextlib.contextmanager
def threads(n: int | None):
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def perturbations(base_threads: int) -> dict[str, dict]:
    other = 1 if base_threads > 1 else 2
    return {
        "baseline": {},
        "bfloat16": {"dlsa": {"flow_autocast": "bfloat16"}},
        f"threads-{other}": {"threads": other},
        "adam-per-tensor": {"dlsa": {"flow_optimizer": "adam-per-tensor"}},
        "seeds-1": {"seed": 1},
    }


def score_all(feats: dict, num_classes: int, p: dict, extra: dict) -> tuple[list, float]:
    scores, t0 = [], time.perf_counter()
    with threads(p.get("threads")):
        for name, splits in feats.items():
            s = score_features(
                name,
                splits,
                num_classes=num_classes,
                seed=p.get("seed", SEED),
                heads=[],
                dlsa_overrides={**extra, **p.get("dlsa", {})} or None,
            )
            if not s.ok:
                raise RuntimeError(f"{name}: {s.row['error']}")
            scores.append(s)
    return scores, time.perf_counter() - t0


def summarise(name: str, scores: list, validity: dict, seconds: float) -> dict:
    rows = {s.row["backbone"]: s.row for s in scores}
    return {
        "run": name,
        "seconds": round(seconds, 1),
        "flow_precision": scores[0].row["flow_precision"],
        "flow_seeds": scores[0].row["flow_seeds"],
        "backbones": {
            b: {
                "separability": r["separability"],
                "separability_sd": r["separability_sd"],
                "se": r["separability_sd"] / np.sqrt(r["flow_seeds"])
                if r["flow_seeds"] > 1
                else None,
                "lo": validity["intervals"][b]["separability"][0],
                "hi": validity["intervals"][b]["separability"][1],
            }
            for b, r in rows.items()
        },
        "pairs": {(p["a"], p["b"]): p for p in validity["pairs"]},
    }


def compare(base: dict, other: dict) -> list[dict]:
    out = []
    for key, p in base["pairs"].items():
        q = other["pairs"][key]
        flip = np.sign(p["difference"]) != np.sign(q["difference"])
        outside = bool(flip and not (p["tie"] and q["tie"]))
        out.append(
            {
                "a": key[0],
                "b": key[1],
                "baseline_difference": p["difference"],
                "difference": q["difference"],
                "baseline_tie": p["tie"],
                "tie": q["tie"],
                "flip": bool(flip),
                "flip_outside_tie": outside,
            }
        )
    return out


def study(feats, num_classes, runs: dict[str, dict], extra: dict) -> dict:
    results = {}
    for name, p in runs.items():
        scores, secs = score_all(feats, num_classes, p, extra)
        validity = validate_ranking(scores, "separability", n_boot=1000, seed=SEED)
        results[name] = summarise(name, scores, validity, secs)
        if name == next(iter(runs)):  # the ties the eval split's noise alone gives
            fixed = validate_ranking(
                scores, "separability", n_boot=1000, seed=SEED, resample_flows=False
            )
            results[name]["ties_eval_only"] = [[p["a"], p["b"]] for p in fixed["pairs"] if p["tie"]]
        seps = {b: round(v["separability"], 4) for b, v in results[name]["backbones"].items()}
        print(f"{name}: {secs:.0f} s, {seps}", file=sys.stderr, flush=True)
    base = results[next(iter(runs))]
    table = []
    for b in base["backbones"]:
        vals = [r["backbones"][b]["separability"] for r in results.values()]
        table.append(
            {
                "backbone": b,
                **{n: r["backbones"][b]["separability"] for n, r in results.items()},
                "separability_sd": base["backbones"][b]["separability_sd"],
                "se": base["backbones"][b]["se"],
                "lo": base["backbones"][b]["lo"],
                "hi": base["backbones"][b]["hi"],
                "spread": float(max(vals) - min(vals)),
                "sd_over_runs": float(np.std(vals, ddof=1)),
            }
        )
    flips = {n: compare(base, r) for n, r in results.items() if r is not base}
    return {
        "runs": {
            n: {k: r[k] for k in ("seconds", "flow_precision", "flow_seeds")}
            for n, r in results.items()
        },
        "table": table,
        "tied_pairs_baseline": sum(p["tie"] for p in base["pairs"].values()),
        "ties_baseline": [list(k) for k, p in base["pairs"].items() if p["tie"]],
        "ties_baseline_eval_only_bootstrap": base["ties_eval_only"],
        "pairs": len(base["pairs"]),
        "flips": {n: sum(c["flip"] for c in v) for n, v in flips.items()},
        "flips_outside_tie": {n: sum(c["flip_outside_tie"] for c in v) for n, v in flips.items()},
        "pair_table": [{"perturbation": n, **c} for n, v in flips.items() for c in v if c["flip"]],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="reports/benchmarks/stability.json")
    p.add_argument("--single-flow", action="store_true", help="add the one-flow contrast")
    args = p.parse_args()
    data = load_dataset(DATASET, seed=SEED)
    feats = {}
    for name in DEMO:
        f, _, _ = backbone_features(name, data, seed=SEED, input_size=INPUT_SIZE, progress=False)
        feats[name] = {k: (np.asarray(X), y) for k, (X, y) in f.items()}
    C = len(data.class_names)
    base_threads = torch.get_num_threads()
    ensemble = study(feats, C, perturbations(base_threads), {})
    result = {
        "benchmark": "stability",
        "dataset": DATASET,
        "input_size": INPUT_SIZE,
        "seed": SEED,
        "ensemble": ensemble,
    }
    if args.single_flow:
        runs = {"seed-0": {}, "seed-1": {"seed": 1}}
        result["contrasts"] = {n: study(feats, C, runs, c) for n, c in CONTRASTS.items()}
    worst = max(ensemble["flips_outside_tie"].values())
    ses = [r["se"] for r in ensemble["table"] if r["se"] is not None]
    result["checks"] = [
        {
            "what": "pairs whose order flips outside a tie, worst perturbation",
            "value": worst,
            "target": "0",
            "met": bool(worst == 0),
        },
        {
            "what": "tied pairs in the baseline",
            "value": f"{ensemble['tied_pairs_baseline']} of {ensemble['pairs']}",
            "target": "<= 1 of 10",
            "met": bool(ensemble["tied_pairs_baseline"] <= 1),
        },
        {
            "what": "largest standard error of an ensemble mean",
            "value": round(max(ses), 4) if ses else None,
            "target": "<= 0.01",
            "met": bool(ses and max(ses) <= 0.01),
        },
    ]
    result["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": base_threads,
        "bf16_native": bool(torch.cpu._is_avx512_bf16_supported())
        if hasattr(torch.cpu, "_is_avx512_bf16_supported")
        else None,
    }
    result["versions"] = versions()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float))
    print(
        json.dumps({"checks": result["checks"], "flips": ensemble["flips"]}, indent=1, default=str)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
