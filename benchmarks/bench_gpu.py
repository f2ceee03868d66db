"""Extraction throughput on one GPU: ResNet-50 with random weights at 224 px, as
lteval extracts on CUDA (bf16 autocast, channels_last, pinned memory, workers).

Two numbers, img/s:
- ``forward``: the model alone on a batch already on the device (the ceiling);
- ``lteval``: ``backbone_features`` on an in-memory image set into an empty cache
  (decode, transform, transfer, forward, cache write).

    python benchmarks/bench_gpu.py --out reports/benchmarks/gpu.json
    python benchmarks/bench_gpu.py --smoke --out /tmp/gpu.json   # CPU, tiny: checks the script

Run by ``benchmarks/gpu_check.sh`` on a lent GPU machine; target >= 3,000 img/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np


def forward_throughput(device: str, batch: int, iters: int) -> float:
    """img/s of ResNet-50's forward pass alone, as lteval runs it on ``device``."""
    import timm
    import torch

    model = timm.create_model("resnet50", pretrained=False, num_classes=0).eval().to(device)
    cuda = device.startswith("cuda")
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device=device)
    if cuda:
        x = x.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    with torch.no_grad(), torch.autocast(device.split(":")[0], dtype=dtype, enabled=cuda):
        for _ in range(3):
            model(x)
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(iters):
            model(x)
        if cuda:
            torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - t)


def lteval_throughput(device: str, n: int, batch: int, workers: int) -> dict:
    """img/s of ``backbone_features`` on ``n`` random 224 px images, cold cache."""
    from lteval.data import ImageDataset
    from lteval.data.profiles import Splits
    from lteval.features import RunOptions, backbone_features, resolve_device

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 224, 224, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    idx = np.arange(n)
    splits = Splits(idx[: n - 20], idx[n - 20 : n - 10], idx[n - 10 :], np.arange(10))
    ds = ImageDataset("gpu-check", images, labels, [str(c) for c in range(10)], splits, "random")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LTEVAL_CACHE"] = cache
        t = time.perf_counter()
        _, manifest, _ = backbone_features(
            "random:timm:resnet50",
            ds,
            allow_random_init=True,
            run=RunOptions(device=resolve_device(device), batch_size=batch, num_workers=workers),
            progress=False,
        )
        wall = time.perf_counter() - t
    return {"images": n, "wall_seconds": round(wall, 2), "img_per_s": round(n / wall, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="reports/benchmarks/gpu.json")
    p.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: checks the script")
    args = p.parse_args()
    import torch

    from lteval.atomic import write_text
    from lteval.features import versions

    cuda = torch.cuda.is_available() and not args.smoke
    device = "cuda" if cuda else "cpu"
    batch, iters, n = (256, 30, 20_000) if cuda else (8, 2, 64)
    workers = min(12, os.cpu_count() or 1) if cuda else 0
    fwd = forward_throughput(device, batch, iters)
    ext = lteval_throughput(device, n, batch, workers)
    result = {
        "benchmark": "gpu-extract",
        "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else None,
        "smoke": args.smoke,
        "batch_size": batch,
        "workers": workers,
        "forward_img_per_s": round(fwd, 1),
        "lteval": ext,
        "checks": [
            {
                "what": "lteval extraction, ResNet-50 224 px (img/s)",
                "value": ext["img_per_s"],
                "target": ">= 3000 on one H100/H200",
                "met": bool(cuda and ext["img_per_s"] >= 3000),
            }
        ],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "versions": versions(),
    }
    write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("device", "forward_img_per_s", "lteval")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
