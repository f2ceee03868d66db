"""Strict checkpoint loading: a checkpoint whose keys do not fit the architecture is
an error naming the file and the missing / unexpected keys, never a model that runs
partly random weights while it is reported as pretrained.

Only the classifier head may be left out of a checkpoint (its features do not
need it). timm's own pretrained path loads non-strictly whenever ``num_classes``
differs from the pretrained config's, so lteval asks it for exactly the number of
classes the checkpoint holds (0 for a headless one), which keeps timm strict, and
removes the classifier afterwards.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from lteval.errors import BackboneError, first_line

SHOWN = 4  # keys named per kind of mismatch


def _few(keys) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def mismatch(model: nn.Module, state: dict, head: tuple[str, ...] = ()) -> tuple[set, set, set]:
    """(missing, unexpected, wrong-shape) keys of ``state`` against ``model``.

    Keys under one of the ``head`` prefixes (the classifier) may be missing.
    """
    want = model.state_dict()
    have = set(state)
    in_head = lambda k: any(k == h or k.startswith(h + ".") for h in head)  # noqa: E731
    missing = {k for k in set(want) - have if not in_head(k)}
    unexpected = have - set(want)
    shapes = {
        k
        for k in have & set(want)
        if hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(want[k].shape)
    }
    return missing, unexpected, shapes


def mismatch_error(path: str | Path, arch: str, bad: tuple[set, set, set]) -> BackboneError:
    """The one-line error for a checkpoint that does not fit ``arch``."""
    missing, unexpected, shapes = bad
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_few(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} keys with other shapes ({_few(shapes)})")
    return BackboneError(
        f"checkpoint {path} does not fit architecture {arch!r}: {'; '.join(parts)}. "
        "Only the classifier head may be left out; give a checkpoint of this architecture "
        "(or name the architecture it was trained with)"
    )


def load_strict(model: nn.Module, state: dict, path, arch: str, head: tuple[str, ...]) -> None:
    """Load ``state`` into ``model``; every key must match except a missing head."""
    bad = mismatch(model, state, head)
    if any(bad):
        raise mismatch_error(path, arch, bad)
    model.load_state_dict(state, strict=False)  # only the allowed head keys can be absent


def read_state_dict(path: str | Path) -> dict:
    """A checkpoint's state dict (safetensors or torch; ``state_dict`` / ``model``
    entries unwrapped), through timm's reader. BackboneError when unreadable."""
    from timm.models import load_state_dict

    try:
        return load_state_dict(str(path))
    except Exception as e:  # a truncated, corrupt or foreign file
        raise unreadable(path, e) from None


def unreadable(path: str | Path, error: Exception) -> BackboneError:
    """The error for a checkpoint file that cannot be read (empty, truncated, foreign)."""
    p = Path(path)
    if p.is_file() and p.stat().st_size == 0:
        return BackboneError(f"checkpoint {path} is empty (0 bytes); copy the file again")
    return BackboneError(
        f"cannot read checkpoint {path} ({type(error).__name__}: {first_line(error)}); "
        "give a PyTorch (.pth/.pt/.bin) or safetensors state dict, e.g. one saved with "
        "torch.save(model.state_dict(), path)"
    )


def _classifiers(full: str) -> tuple[str, ...]:
    """The classifier module name(s) of timm model ``full`` (from its pretrained config)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(full)
    if cfg is None:
        cfg = timm.create_model(full).pretrained_cfg
        c = cfg.get("classifier")
    else:
        c = cfg.classifier
    if not c:
        return ()
    return (c,) if isinstance(c, str) else tuple(c)


def timm_from_file(full: str, path: str | Path, keep_classifier: bool = False) -> nn.Module:
    """``timm.create_model(full, pretrained=True)`` from the local file ``path``, strictly.

    The file is read once; its state dict goes to timm's own pretrained loader
    (which applies the model's checkpoint filter) through the pretrained config. The
    checkpoint's classifier size (0 when it has none) is given both as
    ``num_classes`` and in that config, so the loader stays strict. The classifier is
    removed afterwards unless ``keep_classifier``. A checkpoint that does not fit is
    a BackboneError naming the file and the keys.
    """
    import timm

    heads = _classifiers(full)
    state = read_state_dict(path)
    weight = state.get(f"{heads[0]}.weight") if heads else None
    n_cls = int(weight.shape[0]) if weight is not None and weight.ndim >= 1 else 0
    try:
        model = timm.create_model(
            full,
            pretrained=True,
            num_classes=n_cls,
            pretrained_cfg_overlay={"state_dict": dict(state), "num_classes": n_cls},
        )
    except RuntimeError as e:  # torch's strict load_state_dict
        target = timm.create_model(full, pretrained=False, num_classes=n_cls)
        bad = mismatch(target, state, heads)
        if any(bad):
            raise mismatch_error(path, full, bad) from None
        raise BackboneError(f"checkpoint {path} does not load into {full!r}: {e}") from None
    for cfg in (getattr(model, "pretrained_cfg", None), getattr(model, "default_cfg", None)):
        if isinstance(cfg, dict):
            cfg.pop("state_dict", None)  # do not keep a second copy of the weights alive
    if not keep_classifier:
        model.reset_classifier(0)
    elif n_cls == 0:
        raise BackboneError(f"checkpoint {path} has no classifier head to keep")
    return model


def load_weights_only(path: str | Path):
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain
    containers only, no code from the file runs. torch's note on a pickle protocol
    other than 2 (a checkpoint written by plain ``pickle``) is not passed on: the
    file either loads whole or raises."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def torch_state(path: str | Path) -> dict:
    """A torch checkpoint's state dict (``state_dict`` entry unwrapped), weights only."""
    try:
        state = load_weights_only(path)
    except Exception as e:
        raise unreadable(path, e) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackboneError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return state
