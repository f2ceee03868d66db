"""End-to-end timing of the embedded default (``make demo``'s run), cold and warm.

Writes ``reports/benchmarks/rank.json`` (and the cold run's report to
``reports/benchmarks/rank-report/``): wall seconds of a cold run (empty feature
cache: extraction + scoring) and a warm run (cache hit: scoring only), per-backbone
extraction and scoring seconds, and the machine it ran on. Targets: the cold run
within 300 s on this 2-core box; at least 4 pretrained rows; the random-init control
below every pretrained backbone on ``probe_balanced``. Usage::

    python benchmarks/bench_rank.py [--out reports/benchmarks/rank.json] [--backbones ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lteval import atomic
from lteval.study.panels import demo_backbones

DEMO = ",".join(demo_backbones())
"""The demo's backbones (``make demo``'s): the packaged ImageNet ones and a control."""
DATASET, INPUT_SIZE, WALL_TARGET = "animal-mnist-lt", "128", 300


def timed_run(backbones: str, out: Path, cache: Path) -> tuple[float, dict]:
    env = {**os.environ, "LTEVAL_CACHE": str(cache)}
    cmd = [
        sys.executable,
        "-m",
        "lteval.rank",
        "--dataset",
        DATASET,
        "--input-size",
        INPUT_SIZE,
        "--seed",
        "0",
        "--backbones",
        backbones,
        "--out",
        str(out),
        "--quiet",
        "--device",
        "cpu",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    return wall, json.loads((out / "results.json").read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="reports/benchmarks/rank.json")
    p.add_argument("--backbones", default=DEMO)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cold, res = timed_run(args.backbones, Path(tmp) / "cold", cache)
        warm, _ = timed_run(args.backbones, Path(tmp) / "warm", cache)
        report = Path(args.out).parent / "rank-report"  # the cold run's report, kept
        with atomic.folder(report) as new:  # never over a user's file
            shutil.copytree(Path(tmp) / "cold", new, dirs_exist_ok=True)
    rows = [r for r in res["backbones"] if r.get("status", "ok") == "ok"]
    real = [r for r in rows if r.get("pretrained")]
    controls = [r for r in rows if r.get("control")]
    below = all(c["probe_balanced"] < r["probe_balanced"] for c in controls for r in real)
    result = {
        "benchmark": "rank-embedded-default",
        "dataset": DATASET,
        "input_size": int(INPUT_SIZE),
        "cold_wall_seconds": round(cold, 2),
        "warm_wall_seconds": round(warm, 2),
        "wall_seconds": round(cold, 2),
        "targets": {"wall_seconds": WALL_TARGET},
        "checks": [
            {
                "what": "pretrained rows",
                "value": len(real),
                "target": ">= 4",
                "met": len(real) >= 4,
            },
            {
                "what": "control below every pretrained backbone on probe_balanced",
                "value": below,
                "target": "true",
                "met": bool(controls) and below,
            },
        ],
        "backbones": [
            {
                k: r[k]
                for k in (
                    "backbone",
                    "extract_seconds",
                    "score_seconds",
                    "separability",
                    "dlsa_balanced",
                    "probe_balanced",
                    "probe_few",
                    "logme",
                    "pretrained",
                    "control",
                    "weights_package",
                    "weights_sha256",
                )
            }
            for r in res["backbones"]
        ],
        "tied_pairs": sum(p["tie"] for p in res["validity"]["pairs"]),
        "pairs": len(res["validity"]["pairs"]),
        "correlations": [
            c
            for c in res["validity"]["correlations"]
            if c["metric"] in ("dlsa_balanced", "probe_few")
        ],
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": res["run"]["torch_threads"],
            "device": res["run"]["device"],
        },
        "versions": res["run"]["versions"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("cold_wall_seconds", "warm_wall_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
