"""One seed derivation (lteval.seeds): its properties, that every generator in the
package is made through it, and that every purpose is documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lteval.seeds import SEED_BITS, derive_seed, derived_rng, seeded_torch, torch_generator

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lteval"
HELPERS = {"derive_seed", "derived_rng", "torch_generator", "seeded_torch"}
RAW = {"default_rng", "manual_seed", "Generator", "fork_rng", "seed", "RandomState"}
"""Calls that make or seed a generator from a raw number: only lteval/seeds.py may."""


def test_derived_seeds_are_deterministic_in_range_and_distinct():
    seeds = {derive_seed(s, p, r) for s in range(20) for p in ("flow", "pairs") for r in range(5)}
    assert len(seeds) == 200
    assert all(0 <= s < 2**SEED_BITS for s in seeds)
    assert derive_seed(3, "flow", 1) == derive_seed(np.int64(3), "flow", np.int64(1))
    # the parts are typed and ordered: "1" is not 1, ("a", "b") is not ("b", "a") or "ab"
    assert derive_seed(0, "x", 1) != derive_seed(0, "x", "1")
    assert len({derive_seed(0, *p) for p in [("a", "b"), ("b", "a"), ("ab",), ("a",)]}) == 4
    # seeds whose 32-bit words would concatenate alike still differ
    assert derive_seed(2**32, "a") != derive_seed(1, "a")
    assert derive_seed(7) == 7  # no purpose: the root stream


def test_a_derived_seed_is_the_same_on_every_machine():
    """numpy documents SeedSequence's algorithm as stable; these test vectors (as a
    hash has them) are what a rerun elsewhere must derive, so rankings agree."""
    assert derive_seed(0, "stage", 0) == 2133984605840323600
    assert derive_seed(2**32 - 1, "bootstrap", "samples") == 5467561818621067063


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_a_bad_seed_is_refused(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        derive_seed(bad, "x")


def test_a_bad_purpose_is_refused():
    with pytest.raises(TypeError, match="str and int parts"):
        derive_seed(0, 1.5)


def test_the_helpers_draw_from_the_derived_seed():
    a = derived_rng(4, "bootstrap").integers(0, 2**31, 5)
    b = np.random.default_rng(derive_seed(4, "bootstrap")).integers(0, 2**31, 5)
    np.testing.assert_array_equal(a, b)
    g = torch.Generator().manual_seed(derive_seed(4, "pairs"))
    assert torch.equal(
        torch.rand(5, generator=torch_generator(4, "pairs")), torch.rand(5, generator=g)
    )
    torch.manual_seed(11)
    state = torch.get_rng_state()
    with seeded_torch(4, "init"):
        inside = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(derive_seed(4, "init"))
    assert torch.equal(inside, torch.rand(3))


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            yield name, node


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "seeds.py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_generator_is_made_through_lteval_seeds(path):
    """No module but lteval/seeds.py seeds a generator from a number; a helper called
    without a purpose (the root stream) is the dataset draw, in lteval/data only."""
    for name, node in _calls(path):
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        assert name not in RAW or name == "seed" and not _is_random(node), (
            f"{where} calls {name}(): use lteval.seeds"
        )
        if name in HELPERS:
            purpose = node.args[1:]
            if not purpose:
                assert path.relative_to(PACKAGE).parts[0] == "data", (
                    f"{where}: {name}() without a purpose is the dataset's root stream"
                )


def _is_random(node: ast.Call) -> bool:
    """``random.seed(...)`` / ``np.random.seed(...)``, not a method named seed of ours."""
    f = node.func
    return isinstance(f, ast.Attribute) and ast.unparse(f.value).endswith("random")


def _purposes() -> set[str]:
    out = set()
    for path in _modules():
        for name, node in _calls(path):
            if name in HELPERS and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                out.add(node.args[1].value)
    return out


def test_every_purpose_is_in_the_documented_table():
    doc = (ROOT / "docs" / "method.md").read_text()
    start = doc.index("## Seeds")
    section = doc[start : doc.index("\n## ", start)]
    listed = set(re.findall(r"^\| `([a-z-]+)`", section, re.M))
    found = _purposes()
    assert len(found) >= 10  # the derivations the package makes
    assert found == listed, f"undocumented {found - listed}, stale {listed - found}"
