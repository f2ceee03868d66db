"""A small CNN trained on a dataset's own long-tailed train split (decoupled stage 1,
as in the DLSA paper), with cross-entropy or another long-tailed method
(``method``: see ``lteval.backbones.lt_losses``), then frozen as a feature extractor.

For 28x28 grayscale pools (animal-mnist-lt, fashion-mnist-lt, mnist5k-lt): three
conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool; 32, 64, 128 channels),
global average pooling, a ``width``-d ReLU layer (the features), a linear
classifier. SGD (momentum 0.9, weight decay 5e-4, lr 0.05, cosine), batch 128,
random 2-pixel shifts; seeded and run with deterministic algorithms. The CNN sees
only the train split: validation and eval images are never trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lteval.backbones.lt_losses import LDAM_SCALE, Objective, epoch_order, supcon
from lteval.data import ImageDataset
from lteval.errors import UsageError
from lteval.seeds import seeded_torch, torch_generator


@dataclass(frozen=True)
class SmallCNNConfig:
    """Training settings (``epochs`` is the training length)."""

    epochs: int = 15
    batch: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    wd: float = 5e-4
    width: int = 256
    method: str = "ce"  # one of lt_losses.METHODS

    def to_dict(self) -> dict:
        return asdict(self)


class SmallCNN(nn.Module):
    """``cosine``: the classifier is ``s cos(f, w_c)`` (LDAM's); ``projection``: a
    128-d head for the contrastive loss (not part of the features)."""

    def __init__(
        self, num_classes: int, width: int = 256, cosine: bool = False, projection: bool = False
    ):
        super().__init__()
        blocks, c_in = [], 1
        for c in (32, 64, 128):
            blocks += [
                nn.Conv2d(c_in, c, 3, padding=1),
                nn.BatchNorm2d(c),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c_in = c
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(128, width), nn.ReLU())
        self.fc = nn.Linear(width, num_classes, bias=not cosine)
        self.cosine = cosine
        self.project = (
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 128))
            if projection
            else None
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) standardised images -> (B, width) features."""
        return self.embed(self.body(x))

    def classify(self, f: torch.Tensor) -> torch.Tensor:
        """Logits of features f (B, width)."""
        if self.cosine:
            return LDAM_SCALE * F.normalize(f, dim=1) @ F.normalize(self.fc.weight, dim=1).T
        return self.fc(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def _shift(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (one offset per batch, seeded)."""
    dx, dy = (int(v) for v in torch.randint(-pad, pad + 1, (2,), generator=gen))
    return torch.roll(F.pad(x, (pad,) * 4), (dy, dx), (2, 3))[..., pad:-pad, pad:-pad]


def train_cnn(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int, config: SmallCNNConfig
) -> SmallCNN:
    """Training by ``config.method`` on x (N, 1, H, W), y (N,); returns the model in
    eval mode. ``method="ce"`` runs exactly the cross-entropy loop it always ran."""
    objective = Objective(config.method, torch.bincount(y, minlength=num_classes), config.epochs)
    gen = torch_generator(seed, "batches")  # batch order and shifts
    with seeded_torch(seed, "init"):  # torch's global generator: the layers' init
        model = SmallCNN(
            num_classes,
            config.width,
            cosine=config.method == "ldam-drw",
            projection=config.method == "supcon",
        )
        opt = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.wd
        )
        steps = max(1, config.epochs * -(-len(y) // config.batch))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        model.train()
        for epoch in range(config.epochs):
            order = epoch_order(y, config.method, gen)
            for s in range(0, len(y), config.batch):
                idx = order[s : s + config.batch]
                if len(idx) < 2:
                    continue
                f = model.features(_shift(x[idx], gen))
                loss = objective(model.classify(f), y[idx], epoch)
                if model.project is not None:  # a second view, and the contrastive loss
                    f2 = model.features(_shift(x[idx], gen))
                    z = F.normalize(model.project(torch.cat([f, f2])), dim=1)
                    loss = loss + supcon(z, torch.cat([y[idx], y[idx]]))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        return model.eval()


@torch.no_grad()
def embed(model: SmallCNN, x: torch.Tensor, batch: int = 1024) -> np.ndarray:
    """(N, width) float32 features of x (N, 1, H, W)."""
    return torch.cat([model.features(x[s : s + batch]) for s in range(0, len(x), batch)]).numpy()


def cnn_features(
    dataset: ImageDataset, seed: int, config: SmallCNNConfig | None = None
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], SmallCNN]:
    """Train the CNN on ``dataset``'s train split and return ``{"train", "val",
    "eval"}: (X (N, width) float32, y (N,) int64)`` and the model. Images are scaled
    to [0, 1] and standardised with the train split's mean and std."""
    config = config or SmallCNNConfig()
    images = np.asarray(dataset.images) if not isinstance(dataset.images, list) else None
    if images is None or images.ndim != 3:
        raise UsageError(
            f"the small CNN takes an in-memory grayscale pool (N, H, W); {dataset.name} is not one"
        )
    x = torch.as_tensor(images.astype(np.float32) / 255.0)[:, None]
    sp = dataset.splits
    idx = {"train": sp.train, "val": sp.val, "eval": sp.eval}
    x = (x - x[idx["train"]].mean()) / x[idx["train"]].std()
    labels = torch.as_tensor(dataset.labels)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        model = train_cnn(
            x[idx["train"]], labels[idx["train"]], len(dataset.class_names), seed, config
        )
        splits = {s: (embed(model, x[i]), dataset.labels[i]) for s, i in idx.items()}
    finally:
        torch.use_deterministic_algorithms(previous)
    return splits, model
