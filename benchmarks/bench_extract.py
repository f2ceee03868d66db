"""Extraction throughput against the pure forward pass, and the cost of a cached rerun.

Writes ``reports/benchmarks/extract.json``. For each backbone, on the same device
and batch size and the same in-memory decoded images (mnist5k-lt):

- ``forward_images_per_s``: the model alone on batches already transformed;
- ``extract_images_per_s``: ``lteval.features.extract`` (transform, batching,
  device copies, forward, gathering) on the same images;
- ``ratio`` = extract / forward (target >= 0.9 on CPU);
- ``cached_rerun``: a second ``get_features`` on a warm cache: wall seconds and
  forward passes (must be 0).

Usage: ``python benchmarks/bench_extract.py [--backbones ...] [--images 256] [--device auto]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lteval.backbones import load_backbone
from lteval.data import load_dataset
from lteval.features import RunOptions, extract, get_features, resolve_device, versions


def forward_rate(backbone, dataset, positions, run) -> float:
    """Images/s of the model alone, on batches transformed beforehand."""
    cuda = run.device.type == "cuda"
    model = backbone.model.to(run.device)
    batches = [
        torch.stack(
            [backbone.transform(dataset.image(int(i))) for i in positions[s : s + run.batch_size]]
        )
        for s in range(0, len(positions), run.batch_size)
    ]
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    with torch.inference_mode(), torch.autocast(run.device.type, dtype=dtype, enabled=cuda):
        model(batches[0].to(run.device))  # warm-up
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for b in batches:
            model(b.to(run.device)).float().cpu()
        if cuda:
            torch.cuda.synchronize()
    model.to("cpu")
    return len(positions) / (time.perf_counter() - t0)


def extract_rate(backbone, dataset, positions, run) -> float:
    extract(backbone, dataset, positions[: run.batch_size], run=run)  # warm-up
    t0 = time.perf_counter()
    extract(backbone, dataset, positions, run=run)
    return len(positions) / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backbones", default="timm:resnet18,timm:vit_tiny_patch16_224")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="reports/benchmarks/extract.json")
    args = p.parse_args()
    device = resolve_device(args.device)
    ds = load_dataset("mnist5k-lt")
    positions = np.arange(args.images)
    run = RunOptions(device=device, batch_size=args.batch_size)
    rows = []
    for name in args.backbones.split(","):
        bb = load_backbone(name, allow_random_init=True)
        fwd = forward_rate(bb, ds, positions, run)
        ext = extract_rate(bb, ds, positions, run)
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["LTEVAL_CACHE"] = tmp
            cold_stats, warm_stats = {}, {}
            t0 = time.perf_counter()
            get_features(bb, ds, run=run, stats=cold_stats)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            get_features(bb, ds, run=run, stats=warm_stats)
            warm = time.perf_counter() - t0
        row = {
            "backbone": name,
            "pretrained": bb.pretrained,
            "batch_size": args.batch_size,
            "images": args.images,
            "forward_images_per_s": round(fwd, 2),
            "extract_images_per_s": round(ext, 2),
            "ratio": round(ext / fwd, 3),
            "cold_run": {
                "seconds": round(cold, 2),
                "forward_batches": cold_stats.get("forward_batches", 0),
                "images": cold_stats.get("images", 0),
            },
            "cached_rerun": {
                "seconds": round(warm, 3),
                "forward_batches": warm_stats.get("forward_batches", 0),
            },
        }
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    result = {
        "benchmark": "extract",
        "device": str(device),
        "dataset": "mnist5k-lt (in-memory decoded)",
        "target_ratio": 0.9,
        "rows": rows,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        },
        "versions": versions(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
