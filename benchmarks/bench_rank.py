"""End-to-end timing of the embedded default (``make demo``'s run), cold and warm.

Writes ``reports/benchmarks/rank.json`` (and the cold run's report to
``reports/benchmarks/rank-report/``): wall seconds of a cold run (empty feature
cache: extraction + scoring) and a warm run (cache hit: scoring only), per-backbone
extraction and scoring seconds, and the machine it ran on. Usage::

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

DEMO = (
    "timm:resnet18,timm:vit_tiny_patch16_224,torchvision:resnet18,"
    "torchvision:mobilenet_v3_small,open_clip:ViT-B-32/openai"
)


def timed_run(backbones: str, out: Path, cache: Path) -> tuple[float, dict]:
    env = {**os.environ, "LTEVAL_CACHE": str(cache)}
    cmd = [
        sys.executable,
        "-m",
        "lteval.rank",
        "--dataset",
        "mnist5k-lt",
        "--allow-random-init",
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
        shutil.rmtree(report, ignore_errors=True)
        shutil.copytree(Path(tmp) / "cold", report)
    result = {
        "benchmark": "rank-embedded-default",
        "dataset": "mnist5k-lt",
        "cold_wall_seconds": round(cold, 2),
        "warm_wall_seconds": round(warm, 2),
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
                    "pretrained",
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
