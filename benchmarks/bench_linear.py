"""Which optimiser trains the linear heads to convergence? (the choice of defaults)

On the CIFAR-100-LT-shaped synthetic features (benchmarks/synthetic.py), trains the
Balanced-Softmax linear head with each candidate and records wall time, the final
training loss, the epoch chosen on validation, and validation / test balanced
accuracy. Writes ``reports/benchmarks/linear.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import cifar100_lt_like  # noqa: E402

from lteval.data import carve_validation  # noqa: E402
from lteval.heads import LinearConfig, Standardizer, accuracy_report, train_balanced_softmax  # noqa: E402

CANDIDATES = {
    "reference: sgd lr 1e-2, batch 128": LinearConfig(
        optimizer="sgd", lr=1e-2, patience=None, lr_grid=None
    ),
    "sgd momentum 0.9 lr 1e-2, batch 128": LinearConfig(
        optimizer="sgd-momentum", lr=1e-2, patience=None, lr_grid=None
    ),
    "adam lr 1e-3, batch 128": LinearConfig(optimizer="adam", lr=1e-3, patience=None, lr_grid=None),
    "adam lr 1e-2, batch 128": LinearConfig(optimizer="adam", lr=1e-2, patience=None, lr_grid=None),
    "adam lr 1e-2, batch 512": LinearConfig(
        optimizer="adam", lr=1e-2, batch_size=512, patience=None, lr_grid=None
    ),
    "lbfgs full batch, 150 iterations": LinearConfig(
        optimizer="lbfgs", lr=1.0, patience=None, lr_grid=None
    ),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="reports/benchmarks/linear.json")
    p.add_argument("--epochs", type=int, default=150)
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    Xtr, ytr, Xte, yte = cifar100_lt_like(seed=0)
    tr, va = carve_validation(np.arange(len(ytr)), ytr, 0.2, np.random.default_rng(0))
    sc = Standardizer().fit(Xtr[tr])
    X, y, Xv, yv, Xt = (
        sc.transform(Xtr[tr]),
        ytr[tr],
        sc.transform(Xtr[va]),
        ytr[va],
        sc.transform(Xte),
    )
    counts = np.bincount(y, minlength=100)
    rows = []
    for name, cfg in CANDIDATES.items():
        cfg.epochs = args.epochs
        t0 = time.perf_counter()
        head = train_balanced_softmax(X, y, 100, X_val=Xv, y_val=yv, config=cfg, seed=0)
        sec = time.perf_counter() - t0
        with torch.no_grad():
            logits = head.module(torch.as_tensor(X)) + torch.log(torch.as_tensor(counts).float())
            loss = float(F.cross_entropy(logits, torch.as_tensor(y)))
        acc = accuracy_report(yte, head.predict(Xt), counts)
        row = {
            "optimizer": name,
            "seconds": round(sec, 2),
            "train_loss_at_chosen_epoch": round(loss, 4),
            "chosen_epoch": head.best_epoch,
            "val_balanced": round(head.val_balanced, 4),
            **{f"test_{k}": round(acc[k], 4) for k in ("balanced", "many", "medium", "few")},
        }
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"benchmark": "linear-head optimisers", "epochs": args.epochs, "rows": rows}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
