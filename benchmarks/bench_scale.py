"""lteval at its users' sizes: time per phase and peak memory of scoring one backbone
on seeded synthetic features shaped like CIFAR-100-LT, Places-LT, ImageNet-LT and
iNaturalist 2018, with every default (the flow ensemble included).

Each measured shape runs in its own process, so that its peak RSS is its own:

    python benchmarks/bench_scale.py --out reports/benchmarks/scale.json
    python benchmarks/bench_scale.py --shapes cifar100-lt-d512,cifar100-lt-d2048

Phases: LogME, the closed-form scores (lteval.heads.transfer), the DLSA fit (its
flow epochs timed one by one from the progress callback, and the rest: stage
classifiers, routing), the diagnostics, each head, the ranking bootstrap (1000
replicates, two backbones) and the report (results files and HTML/PNGs). Shapes not
measured are extrapolated from the largest measured one by each phase's arithmetic
(see ``SCALING``), marked ``"extrapolated": true``; the epoch counts (flows and
heads) are assumed equal to the measured ones; an epoch is at most 16,384 rows
(``EPOCH_ROWS``), so above that size its cost stops growing with N.

Features: class means N(0, 1) in a 64-d subspace lifted to D, plus noise of scale 4
and a ReLU, as in ``benchmarks/synthetic.py`` (a Balanced-Softmax probe scores about
0.6 balanced accuracy at CIFAR-100-LT size).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = {
    # name: (classes, train profile, val per class (None: 20% carved), eval per class, D)
    "cifar100-lt-d512": (100, ("exp", 500, 100.0), None, 100, 512),
    "cifar100-lt-d2048": (100, ("exp", 500, 100.0), None, 100, 2048),
    "places-lt-d2048": (365, ("total", 4980, 5, 62500), 20, 100, 2048),
    "imagenet-lt-d512": (1000, ("total", 1280, 5, 115846), 20, 50, 512),
    "imagenet-lt-d2048": (1000, ("total", 1280, 5, 115846), 20, 50, 2048),
    "inat2018-d2048": (8142, ("total", 1000, 2, 437513), 3, 3, 2048),
    "tiny-d64": (10, ("exp", 100, 10.0), None, 20, 64),  # a smoke test of this script
}
"""The shapes of the issue: Places-LT 62.5k train from 4,980 to 5 per class,
ImageNet-LT 115,846 from 1,280 to 5, iNaturalist 2018 437.5k (its val: 3 per class)."""

DEFAULT = ("cifar100-lt-d512", "imagenet-lt-d512")
"""What ``make benchmark-scale`` measures on a 2-core box (about 30 minutes, 6 GB);
the rest is extrapolated from the larger."""

EPOCH_ROWS = 16384
"""``flow_epoch_samples`` and ``LinearConfig.epoch_samples``: n = min(N, this) rows an epoch."""

SCALING = {
    "flow_epoch": "n*D",  # n pairs and a check on n rows; the MADE ensemble is linear in D
    "dlsa_other": "N*D*C",  # stage classifiers (n*D*C an epoch) and full passes over N
    "diagnostics": "N*D",
    "head": "n*D*C",  # linear heads per epoch of n rows; kNN N_query*N*D (see knn)
    "knn": "Nq*N*D",
    "ncm": "N*D",
    "logme": "N*D^2",
    "bootstrap": "Ne",
    "report": "C",
}
"""Each phase's dominant cost, for extrapolating from a measured shape."""


def profile(spec: tuple, classes: int) -> np.ndarray:
    """Per-class train counts, largest first."""
    from lteval.data import long_tailed_counts

    if spec[0] == "exp":
        return long_tailed_counts(spec[1], spec[2], classes)
    _, n_max, n_min, total = spec  # n_c = n_min + (n_max - n_min)(1 - r)^p, sum = total
    r = np.arange(classes) / (classes - 1)
    lo, hi = 0.01, 100.0
    for _ in range(100):
        p = np.sqrt(lo * hi)
        s = (n_min + (n_max - n_min) * (1 - r) ** p).round().sum()
        lo, hi = (p, hi) if s > total else (lo, p)
    return (n_min + (n_max - n_min) * (1 - r) ** p).round().astype(np.int64)


def features(name: str, seed: int = 0) -> tuple[dict, int]:
    """({"train", "val", "eval"}: (X, y)) of shape ``name``, and C."""
    classes, spec, val, evals, dim = SHAPES[name]
    counts = profile(spec, classes)
    rng = np.random.default_rng(seed)
    lift = rng.normal(size=(64, dim)) / np.sqrt(64)
    means = (rng.normal(size=(classes, 64)) @ lift).astype(np.float32)

    def draw(per_class):
        y = np.repeat(np.arange(classes), per_class)
        X = np.empty((len(y), dim), np.float32)
        for s in range(0, len(y), 8192):  # float32 throughout: no N x D float64
            noise = rng.standard_normal((min(8192, len(y) - s), dim), dtype=np.float32)
            X[s : s + 8192] = np.maximum(means[y[s : s + 8192]] + 4 * noise, 0)
        return X, y.astype(np.int64)

    if val is None:
        from lteval.data import carve_validation

        X, y = draw(counts)
        tr, va = carve_validation(np.arange(len(y)), y, 0.2, rng)
        train, valid = (X[tr], y[tr]), (X[va], y[va])
    else:
        train, valid = draw(counts), draw(np.full(classes, val))
    return {"train": train, "val": valid, "eval": draw(np.full(classes, evals))}, classes


def measure(name: str, device: str = "cpu") -> dict:
    """Score one backbone of shape ``name``, phase by phase (run in a fresh process);
    the flows train on ``device``."""
    import numpy as np
    import torch

    from lteval.heads import closed_form_scores, logme
    from lteval.rank import scoring, validate_ranking, write_results
    from lteval.report import render_report

    t0 = time.perf_counter()
    splits, C = features(name)
    gen_s = time.perf_counter() - t0
    ticks: list[tuple[float, int, str]] = []
    real = scoring._advance

    def advance(bar, bb):  # DLSA's progress callback, timed
        inner = real(bar, bb)

        def call(n, what):
            ticks.append((time.perf_counter(), n, what))
            inner(n, what)

        return call

    scoring._advance = advance
    t1 = time.perf_counter()
    t = time.perf_counter()
    logme(*splits["train"])
    logme_s = time.perf_counter() - t
    t = time.perf_counter()  # inside score_features too: timed apart here, as LogME
    (Xtr, ytr), (Xv, yv) = splits["train"], splits["val"]
    counts = np.bincount(ytr, minlength=C) + np.bincount(yv, minlength=C)
    closed_form_scores(Xtr, ytr, X_val=Xv, y_val=yv, group_counts=counts)
    closed_s = time.perf_counter() - t
    start = time.perf_counter()
    s = scoring.score_features("bb", splits, num_classes=C, seed=0, progress=False, device=device)
    total_s = time.perf_counter() - start
    # a tick's time is one flow epoch, except the first of each stage (it holds the
    # probe or the previous stage's classifier): the epoch time is the median of the
    # others, and the flows' time that times the epochs run
    steps = list(zip([(start, 0, "")] + ticks, ticks))
    pure = [b - a for (a, _, wa), (b, n, wb) in steps if n == 1 and wa == wb]
    n_epochs = sum(1 for _, (_, n, _) in steps if n == 1)  # n > 1: epochs an early stop skipped
    epoch_s = float(np.median(pure)) if pure else float("nan")
    flow_s = epoch_s * n_epochs
    twin = scoring.BackboneScore({**s.row, "backbone": "bb2"}, s.stages, s.per_class, s.arrays)
    t = time.perf_counter()
    validity = validate_ranking([s, twin], "separability", n_boot=1000, seed=0)
    boot_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_results(Path(tmp), {"dataset": {"name": name}}, [s, twin], "separability", validity)
        render_report(tmp)
        report_s = time.perf_counter() - t
        html_mb = (Path(tmp) / "index.html").stat().st_size / 2**20
    row = s.row
    heads = dict(row["head_seconds"])
    dlsa_fit = row["dlsa_seconds"]
    return {
        "shape": name,
        "extrapolated": False,
        "classes": C,
        "n_train": len(splits["train"][1]),
        "n_val": len(splits["val"][1]),
        "n_eval": len(splits["eval"][1]),
        "dim": splits["train"][0].shape[1],
        "generate_seconds": round(gen_s, 2),
        "score_seconds": round(total_s, 2),
        "wall_seconds": round(time.perf_counter() - t1, 2),
        "flow_epochs_run": n_epochs,
        "flow_epoch_seconds": round(epoch_s, 3),
        "flow_seconds": round(flow_s, 2),
        "dlsa_other_seconds": round(dlsa_fit - flow_s, 2),
        "head_seconds": heads,
        "logme_seconds": round(logme_s, 2),
        "closed_form_seconds": round(closed_s, 2),
        "bootstrap_seconds": round(boot_s, 2),
        "report_seconds": round(report_s, 2),
        "report_html_mb": round(html_mb, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "separability": row["separability"],
        "dlsa_balanced": row["dlsa_balanced"],
        "probe_balanced": row["probe_balanced"],
        "stages_run": row["stages_run"],
    }


def extrapolate(m: dict, name: str) -> dict:
    """Shape ``name``'s phases scaled from measurement ``m`` by ``SCALING``."""
    classes, spec, val, evals, dim = SHAPES[name]
    n = int(profile(spec, classes).sum() * (0.8 if val is None else 1.0))
    nv = int(profile(spec, classes).sum() * 0.2) if val is None else classes * val
    ne = classes * evals
    rows, rows_m = min(n, EPOCH_ROWS), min(m["n_train"], EPOCH_ROWS)
    r = {
        "n*D": (rows * dim) / (rows_m * m["dim"]),
        "n*D*C": (rows * dim * classes) / (rows_m * m["dim"] * m["classes"]),
        "N*D": (n * dim) / (m["n_train"] * m["dim"]),
        "N*D*C": (n * dim * classes) / (m["n_train"] * m["dim"] * m["classes"]),
        "N*D^2": (n * dim**2) / (m["n_train"] * m["dim"] ** 2),
        "Nq*N*D": ((nv + ne) * n * dim) / ((m["n_val"] + m["n_eval"]) * m["n_train"] * m["dim"]),
        "Ne": ne / m["n_eval"],
        "C": classes / m["classes"],
    }
    heads = {
        h: round(v * r[SCALING.get(h, SCALING["head"])], 1) for h, v in m["head_seconds"].items()
    }
    flow = m["flow_seconds"] * r["n*D"]
    other = m["dlsa_other_seconds"] * r["N*D*C"]
    est = {
        "shape": name,
        "extrapolated": True,
        "from": m["shape"],
        "classes": classes,
        "n_train": n,
        "n_val": nv,
        "n_eval": ne,
        "dim": dim,
        "flow_epoch_seconds": round(m["flow_epoch_seconds"] * r["n*D"], 2),
        "flow_seconds": round(flow, 1),
        "dlsa_other_seconds": round(other, 1),
        "head_seconds": heads,
        "logme_seconds": round(m["logme_seconds"] * r["N*D^2"], 1),
        "closed_form_seconds": round(m.get("closed_form_seconds", 0) * r["N*D^2"], 1),
        "bootstrap_seconds": round(m["bootstrap_seconds"] * r["Ne"], 1),
        "report_seconds": round(m["report_seconds"] * r["C"], 1),
    }
    est["score_seconds"] = round(
        flow + other + sum(heads.values()) + est["logme_seconds"] + est["closed_form_seconds"], 1
    )
    return est


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="reports/benchmarks/scale.json")
    p.add_argument("--shapes", default=",".join(DEFAULT), help=f"of {list(SHAPES)}")
    p.add_argument("--device", default="cpu", help="where the flows train (cpu, cuda)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # a child process: measure one shape
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.device)))
        return 0
    names = [s.strip() for s in args.shapes.split(",") if s.strip()]
    bad = [s for s in names if s not in SHAPES]
    if bad:
        p.error(f"unknown shape(s) {bad}; choose from {list(SHAPES)}")
    rows = []
    for name in names:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        got = subprocess.run(
            [sys.executable, __file__, "--one", name, "--device", args.device],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(got.stdout.strip().splitlines()[-1]))
    base = max(rows, key=lambda r: r["n_train"] * r["dim"])
    rows += [extrapolate(base, s) for s in SHAPES if s not in names and s != "tiny-d64"]
    from lteval.atomic import write_text
    from lteval.features import versions

    targets = {"cifar100-lt-d512": 90, "imagenet-lt-d512": 20 * 60}
    result = {
        "benchmark": "scale" if args.device == "cpu" else f"scale-{args.device}",
        "rows": rows,
        "scaling": SCALING,
        "checks": [
            {
                "what": f"score one backbone at {s} (seconds)",
                "value": r["score_seconds"],
                "target": f"<= {targets[s]}" + (" (extrapolated)" if r["extrapolated"] else ""),
                "met": bool(r["score_seconds"] <= targets[s]),
            }
            for r in rows
            for s in targets
            if r["shape"] == s
        ],
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
        },
        "versions": versions(),
    }
    write_text(args.out, json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result["checks"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
