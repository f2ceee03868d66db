"""The documentation's generated parts are current, and the README stays short."""

from pathlib import Path

from lteval.rank.schema import ROW, markdown

ROOT = Path(__file__).resolve().parents[1]


def test_columns_doc_is_generated_from_the_schema():
    doc = (ROOT / "docs" / "columns.md").read_text()
    assert doc == markdown(), "docs/columns.md is stale: run `make docs`"
    assert all(f"| `{column}` |" in doc for column in ROW)


def test_readme_is_short_and_its_doc_links_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for target in ("docs/usage.md", "docs/report.md", "docs/columns.md", "docs/api.md",
                   "docs/method.md", "docs/validation.md", "docs/results.md", "LICENSE",
                   "CITATION.cff"):  # fmt: skip
        assert f"({target}" in readme, target
        assert (ROOT / target).is_file(), target
