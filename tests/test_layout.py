"""The package's layout rules (docs/layout.md): a module imports only from its left
in the pipeline, programs and argparse live in ``lteval/cli/``, modules stay small."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lteval"
PIPELINE = ["data", "backbones", "features", "heads", "dlsa", "rank", "study", "report", "cli"]
BASE = {
    "errors",
    "atomic",
    "fields",
    "packaged",
    "constraints",
    "seeds",
}  # under every layer; import no layer
ALIASES = {"__main__.py", "extract.py", "compare.py", "validate.py"}
"""The documented ``python -m lteval.X`` entry points: 3-line aliases of cli commands."""


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_layers(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out |= {n.split(".")[1] for n in names if n.startswith("lteval.") and n.count(".") >= 1}
    return out


def _is_alias(path: Path) -> bool:
    return path.name in ALIASES and len(path.read_text().splitlines()) <= 10


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_from_its_left(path):
    layer = _layer(path)
    if _is_alias(path):
        assert _imported_layers(path) <= {"cli"}
        return
    used = _imported_layers(path) & (set(PIPELINE) | BASE)
    if layer in BASE:
        assert not used & set(PIPELINE), f"{path.name} is a base module: {used}"
    elif layer in PIPELINE:
        right = {u for u in used if u in PIPELINE and PIPELINE.index(u) > PIPELINE.index(layer)}
        assert not right, f"{path} imports {right}, to the right of {layer}"


def test_programs_live_in_cli_and_modules_stay_small():
    argparse_users = {
        str(p.relative_to(PACKAGE)) for p in _modules() if "import argparse" in p.read_text()
    }
    assert argparse_users and all(u.startswith("cli/") for u in argparse_users), argparse_users
    big = {
        str(p.relative_to(PACKAGE)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not big, f"modules over 400 lines: {big}"


def test_one_file_hash():
    """Every file's sha256 comes from ``lteval.atomic.file_sha256`` (manifests, cache
    checksums, packaged assets, weights ids): no second implementation to drift."""
    from lteval import atomic, backbones, packaged
    from lteval.features import cache

    hashing = {  # a file hashed: file_digest, or an empty sha256 fed block by block
        str(p.relative_to(PACKAGE))
        for p in _modules()
        if re.search(r"file_digest\(|hashlib\.sha256\(\)|sha256\([^)]*read_bytes", p.read_text())
    }
    assert hashing == {"atomic.py"}, hashing
    assert backbones.file_sha256 is atomic.file_sha256
    assert packaged.file_sha256 is cache.file_sha256 is atomic.file_sha256
